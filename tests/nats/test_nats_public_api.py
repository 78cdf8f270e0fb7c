"""The public door of ``actorio.nats``: its exported names, each documented."""

from __future__ import annotations

import inspect

import pytest

import actorio.nats

EXPECTED = {
    "ActorNotFound",
    "BucketFull",
    "HostFull",
    "DeliveryLimitReached",
    "Durable",
    "Entities",
    "EntityFenced",
    "EntityHost",
    "EntityRef",
    "Host",
    "LocalServer",
    "Node",
    "NodeUnreachable",
    "NotAuthorized",
    "Publication",
    "Reminders",
    "RemoteError",
    "RemoteRef",
    "ReplyTooLarge",
    "StoredDeadLetter",
    "fencing_token",
    "find_nats_server",
    "NodeService",
    "least_loaded",
    "rendezvous",
}


def test_exported_names() -> None:
    assert set(actorio.nats.__all__) == EXPECTED
    for name in actorio.nats.__all__:
        assert hasattr(actorio.nats, name), name


def test_public_names_and_methods_have_docstrings() -> None:
    for name in actorio.nats.__all__:
        value = getattr(actorio.nats, name)
        assert inspect.getdoc(value), name
        if inspect.isclass(value):
            for attribute, member in vars(value).items():
                if attribute.startswith("_") or not callable(getattr(member, "__get__", None)):
                    continue
                assert inspect.getdoc(getattr(value, attribute)), f"{name}.{attribute}"


def test_remote_references_are_actor_references() -> None:
    assert issubclass(actorio.nats.RemoteRef, actorio.ActorRef)
    assert issubclass(actorio.nats.ActorNotFound, actorio.ActorStopped)
    assert issubclass(actorio.nats.RemoteError, actorio.ActorioException)
    assert issubclass(actorio.nats.NodeUnreachable, ConnectionError)
    assert issubclass(actorio.nats.NotAuthorized, actorio.nats.NodeUnreachable)


@pytest.mark.parametrize(
    ("statement", "what"),
    [
        ("import actorio.nats", "actorio.nats"),
        ("from actorio.persistence import JetStreamJournal", "JetStreamJournal"),
    ],
)
def test_without_nats_py_the_import_error_says_what_to_install(statement: str, what: str) -> None:
    import subprocess
    import sys

    code = f"import sys; sys.modules['nats'] = None; {statement}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    # What to install, and nothing from PyPI's actorio (the original 0.1.4, which has no nats extra).
    assert f"{what} needs the nats-py client: pip install 'nats-py>=2.9,<3' nkeys" in result.stderr
    assert "'.[nats]'" in result.stderr
    assert "actorio[nats]" not in result.stderr
