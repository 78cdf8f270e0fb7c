"""The wire rules of ``actorio.nats``, without a server: the address rule for replies and
senders, the bounds of error replies, reading any error body, and the ``Actorio-Timeout`` header."""

from __future__ import annotations

import pytest

from actorio.nats._addresses import Destinations, check_subject_prefix


def test_the_address_rule() -> None:
    rule = Destinations(["_INBOX", "actorio", "billing.replies."])
    for allowed in ("_INBOX.abc.def", "actorio.node.n1.t1", "actorio.actor.x", "billing.replies.7"):
        assert rule.refusal(allowed) is None, allowed
    refused = {
        "$JS.API.STREAM.DELETE.ORDERS": "'$'",
        "$KV.orders.x": "'$'",
        "$SYS.REQ.SERVER.PING": "'$'",
        "other.service.billing": "not under a prefix",
        "actorio": "not under a prefix",
        "actorioX.node.y": "not under a prefix",
        "billing.other": "not under a prefix",
        "a b": "' '",
        "actorio.node. x": "' '",
        "actorio.node.x\r\nPUB x 1": "'\\r'",
        "actorio.node.x\x00": "'\\x00'",
        "actorio..node": "empty token",
        "actorio.node.": "empty token",
        "actorio.*": "'*'",
        "actorio.>": "'>'",
        "_INBOX.é": "'é'",
        "": "empty",
        "actorio." + "x" * 300: "longer than",
    }
    for subject, why in refused.items():
        problem = rule.refusal(subject)
        assert problem is not None, subject
        assert why in problem, (subject, problem)


def test_reply_prefixes_are_checked() -> None:
    assert check_subject_prefix("billing") == "billing."
    assert check_subject_prefix("billing.replies.") == "billing.replies."
    for bad in ("$JS.API", "$", "a b", "a.*", ">", "", "a..b", 7):
        with pytest.raises(ValueError, match=r"invalid reply prefix|is a string"):
            check_subject_prefix(bad)
