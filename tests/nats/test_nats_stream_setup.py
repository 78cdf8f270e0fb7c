"""A node's streams made beforehand (`Node.provision`, or an operator's own) on a real
nats-server: a stream that fits is used as it is, without a request to make or update it; one
whose settings would lose, move or expire stored messages is updated to the node's."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import (
    DiscardPolicy,
    Placement,
    RePublish,
    RetentionPolicy,
    StorageType,
    StoreCompression,
    StreamConfig,
    StreamConsumerLimits,
    StreamSource,
    SubjectTransform,
)

from actorio.nats import Durable, Node
from actorio.nats._dead_letter_stream import dead_letter_stream
from actorio.nats._durable import stream_name
from actorio.nats._stream_setup import differences, made_or_kept
from tests.nats_support.actors import Greeter, Record, Report

MAILBOX = StreamConfig(
    name="M",
    subjects=["p.actor.jobs"],
    retention=RetentionPolicy.WORK_QUEUE,
    storage=StorageType.FILE,
    duplicate_window=120.0,
)


def test_the_settings_that_decide_what_a_stream_keeps_are_differences() -> None:
    unfit: dict[str, Any] = {
        "max_age": 60.0,
        "max_msgs": 10,
        "max_bytes": 1_000,
        "max_msgs_per_subject": 1,
        "discard": DiscardPolicy.NEW,
        "storage": StorageType.MEMORY,
        "retention": RetentionPolicy.LIMITS,
        "subjects": ["p.actor.>"],
        "duplicate_window": 60.0,
        "no_ack": True,
        "allow_rollup_hdrs": True,
        "allow_msg_ttl": True,
        "republish": RePublish(src=">", dest="$JS.API.STREAM.PURGE.X"),
        "subject_transform": SubjectTransform(src=">", dest="other.>"),
        "sources": [StreamSource(name="S")],
        "max_msg_size": 1 << 20,  # (a dead letter too large would go round for good)
        "discard_new_per_subject": True,
        "subject_delete_marker_ttl": 60.0,  # (the server then keeps TTLs and rollups on)
        "consumer_limits": StreamConsumerLimits(inactive_threshold=2.0),  # (the consumer deleted)
    }
    for name, value in unfit.items():
        found = dataclasses.replace(MAILBOX, **{name: value})
        assert [d.split()[0] for d in differences(found, MAILBOX)] == [name], name
    # The operator's choices are not differences; nor is what the server fills in by default.
    kept = dataclasses.replace(
        MAILBOX,
        num_replicas=3,
        placement=Placement(cluster="east"),
        description="the operator's",
        compression=StoreCompression.S2,
        consumer_limits=StreamConsumerLimits(),  # (as nats-py reads the server's {})
        deny_delete=True,
        deny_purge=True,
        subjects=["p.actor.jobs"],
        discard=DiscardPolicy.OLD,
        max_msgs=-1,
        max_age=0.0,
        metadata={"_nats.ver": "2.12.0", "other": "x"},
    )
    assert differences(kept, MAILBOX) == []
    noted = dataclasses.replace(MAILBOX, metadata={"actorio.shards": "4"})
    assert differences(dataclasses.replace(noted, metadata={"actorio.shards": "2"}), noted) == [
        "metadata actorio.shards '2' (wanted '4')"
    ]
    assert differences(MAILBOX, noted) == ["metadata actorio.shards None (wanted '4')"]


class Requests:
    """The JetStream API requests to make or update a stream, as a spy on the server sees them."""

    def __init__(self) -> None:
        self.subjects: list[str] = []

    async def on(self, msg: Msg) -> None:
        self.subjects.append(msg.subject)


@pytest_asyncio.fixture
async def requests(raw: Client) -> AsyncIterator[Requests]:
    spy = Requests()
    subscription = await raw.subscribe("$JS.API.STREAM.*.>", cb=spy.on)
    await raw.flush()
    yield spy
    await subscription.unsubscribe()


async def operator_made(raw: Client, node: Node, name: str, **settings: Any) -> str:
    """Make the stream of ``node``'s durable name ``name`` as an operator would: the node's
    settings, and ``settings``. Returns its name."""
    stream = stream_name(node.prefix, name)
    config = dataclasses.replace(MAILBOX, name=stream, subjects=[f"{node.prefix}.actor.{name}"], **settings)
    await raw.jetstream().add_stream(config)  # pyright: ignore[reportUnknownMemberType]
    return stream


@pytest.mark.asyncio
async def test_streams_made_beforehand_that_fit_are_used_as_they_are(
    node: Node, raw: Client, requests: Requests
) -> None:
    # The node's settings, with a description, compression and deny_delete.
    stream = await operator_made(
        raw, node, "kept", description="the operator's", compression=StoreCompression.S2, deny_delete=True
    )
    await node.provision("kept")  # the dead-letter stream, as the node makes it
    await raw.flush()
    made = list(requests.subjects)
    assert f"$JS.API.STREAM.CREATE.{dead_letter_stream(stream)}" in made
    assert not any(".UPDATE." in subject for subject in made), made

    publication = await node.publish("kept", Greeter(), durable=True)
    ref = node.ref("kept", Greeter, durable=True)
    await ref.tell(Record(n=1))
    assert await ref.ask(Report(), timeout=10) == [1]
    await publication.unpublish()
    await raw.flush()
    later = requests.subjects[len(made) :]
    assert not [s for s in later if ".CREATE." in s or ".UPDATE." in s], later
    info = await raw.jetstream().stream_info(stream)
    assert info.config.description == "the operator's"
    assert info.config.deny_delete


@pytest.mark.asyncio
async def test_a_stream_whose_settings_lose_messages_is_updated_to_the_node_s(
    node: Node, raw: Client, requests: Requests
) -> None:
    operators = {"description": "the operator's", "compression": StoreCompression.S2, "deny_delete": True}
    stream = await operator_made(raw, node, "aged", max_age=600.0, **operators)
    await node.provision("aged", Durable(dedupe_window=30))
    await raw.flush()
    assert f"$JS.API.STREAM.UPDATE.{stream}" in requests.subjects
    config = (await raw.jetstream().stream_info(stream)).config
    assert not config.max_age
    assert config.duplicate_window == 30
    assert (config.description, config.compression, config.deny_delete) == tuple(operators.values())


@pytest.mark.asyncio
async def test_what_cannot_be_kept_nor_updated_is_an_error(node: Node, raw: Client) -> None:
    js = raw.jetstream()
    # A dead-letter stream denying deletes would keep replayed letters: refused, with the reason.
    stream = stream_name(node.prefix, "denied")
    dead = StreamConfig(
        name=dead_letter_stream(stream), subjects=[f"{node.prefix}.dlq.denied"], deny_delete=True
    )
    await js.add_stream(dead)  # pyright: ignore[reportUnknownMemberType]
    with pytest.raises(
        ValueError,
        match=r"deny_delete True \(wanted False\)\), and it could not be updated \(.*deny message deletes",
    ):
        await node.provision("denied")
    # Subject delete markers: the server keeps TTLs and rollups on.
    await operator_made(
        raw, node, "markers", max_age=600.0, subject_delete_marker_ttl=60.0, allow_msg_ttl=True
    )
    with pytest.raises(ValueError, match=r"stream \w+ (was updated, but the server kept|exists with other)"):
        await node.provision("markers")
    # A stream another node noted other shards in (made meanwhile) is not rewritten.
    noted = dataclasses.replace(MAILBOX, name="NOTED", subjects=["noted.>"], metadata={"actorio.shards": "4"})
    await js.add_stream(noted)  # pyright: ignore[reportUnknownMemberType]
    wanted = dataclasses.replace(noted, metadata={"actorio.shards": "8"})
    with pytest.raises(ValueError, match=r"NOTED notes other settings \(actorio.shards '4' \(wanted '8'\)\)"):
        await made_or_kept(js, wanted, "a test")
    assert (await js.stream_info("NOTED")).config.metadata["actorio.shards"] == "4"  # type: ignore[index]


@pytest.mark.asyncio
async def test_a_change_the_server_refuses_is_an_error_with_its_reason(node: Node, raw: Client) -> None:
    await operator_made(raw, node, "memory", storage=StorageType.MEMORY)
    with pytest.raises(
        ValueError, match=r"storage 'memory' \(wanted 'file'\).*could not be updated \(.*storage"
    ):
        await node.provision("memory")
    # Another stream takes the name's subject: the server refuses to make its stream.
    await raw.jetstream().add_stream(  # pyright: ignore[reportUnknownMemberType]
        StreamConfig(name="SQUATTER", subjects=[f"{node.prefix}.actor.squatted"])
    )
    with pytest.raises(ValueError, match=r"there is no stream \w+, and it could not be made \(.*overlap"):
        await node.provision("squatted")


@pytest.mark.asyncio
async def test_provision_refuses_what_publish_refuses(node: Node) -> None:
    with pytest.raises(ValueError, match="durable must be True or a Durable"):
        await node.provision("jobs", False)
    with pytest.raises(ValueError, match="name"):
        await node.provision("a b")


@pytest.mark.asyncio
async def test_a_deleted_consumer_is_made_again_and_the_stored_tells_are_handled(
    node: Node, raw: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """Nobody answers the fetches of a consumer that was deleted (by an operator, or another
    process with the right): the pump makes it again, and nothing stored is left behind."""
    publication = await node.publish("orphan", Greeter(), durable=True)
    ref = node.ref("orphan", Greeter, durable=True)
    await ref.tell(Record(n=1))
    assert await ref.ask(Report(), timeout=10) == [1]
    with caplog.at_level(logging.WARNING, logger="actorio.nats"):
        await raw.jetstream().delete_consumer(stream_name(node.prefix, "orphan"), "actorio")
        await ref.tell(Record(n=2))  # stored: the stream does not need the consumer
        assert await ref.ask(Report(), timeout=20) == [1, 2]
    assert "'orphan': its consumer was deleted, and is made again" in caplog.text
    await publication.unpublish()
