"""A node as a NATS service: it answers $SRV.PING, $SRV.INFO and $SRV.STATS as the micro protocol
says (nats-py's own micro types read the replies), each published actor an endpoint."""

from __future__ import annotations

import asyncio
import json

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.micro.service import EndpointStats, ServiceInfo, ServicePing, ServiceStats

import actorio.nats._service as service
from actorio import Actor, Message, handles
from actorio.nats import Node
from actorio.telemetry import count_handlers, stop_counting_handlers

pytestmark = pytest.mark.asyncio(loop_scope="function")


class Add(Message[int]):
    a: int
    b: int


class Calculator(Actor[Add]):
    @handles(Add)
    async def add(self, message: Add) -> int:
        return message.a + message.b


async def _gather(client: Client, subject: str, wanted: int) -> list[dict[str, object]]:
    """Replies to one request from every service that answers (``wanted`` of them, 10 s at most)."""
    inbox = client.new_inbox()
    replies: asyncio.Queue[dict[str, object]] = asyncio.Queue()

    async def take(msg: Msg) -> None:
        await replies.put(json.loads(msg.data))

    subscription = await client.subscribe(inbox, cb=take)
    await client.publish(subject, b"", reply=inbox)
    try:
        return [await asyncio.wait_for(replies.get(), 10) for _ in range(wanted)]
    finally:
        await subscription.unsubscribe()


async def test_nodes_answer_ping_info_and_stats(nats_url: str) -> None:
    count_handlers()
    try:
        nodes = (await Node.connect(nats_url), await Node.connect(nats_url))
        async with nodes[0] as one, nodes[1] as two, Calculator() as calculator:
            await one.publish("calculator", calculator)
            await one.serve_as_service()
            await two.serve_as_service()
            assert await two.ref("calculator", Calculator).ask(Add(a=2, b=3)) == 5
            client = await nats.connect(nats_url)
            try:
                pings = [ServicePing.from_dict(r) for r in await _gather(client, "$SRV.PING.actorio", 2)]
                assert {ping.id for ping in pings} == {one.node_id, two.node_id}
                infos = await _gather(client, f"$SRV.INFO.actorio.{one.node_id}", 1)
                (info,) = [ServiceInfo.from_dict(reply) for reply in infos]
                every = await _gather(client, "$SRV.STATS", 2)
                (stats,) = [ServiceStats.from_dict(reply) for reply in every if reply["id"] == one.node_id]
            finally:
                await client.close()
    finally:
        stop_counting_handlers()
    (endpoint,) = info.endpoints
    assert endpoint.name == "calculator"
    assert endpoint.subject == "actorio.actor.calculator"
    assert endpoint.metadata is not None
    assert endpoint.metadata["actorio.actor.class"] == f"{__name__}.Calculator"
    schema = json.loads(endpoint.metadata["actorio.schema"])
    assert "Add" in json.dumps(schema)
    (counted,) = stats.endpoints
    assert counted.num_requests == 1
    assert counted.num_errors == 0
    assert counted.average_processing_time > 0


async def test_a_service_request_cannot_aim_the_answer_at_stored_data(nats_url: str) -> None:
    """A $SRV request whose reply subject names a key-value entry, the JetStream API, a journal or
    the node's own actors (a durable one stored each answer: a client allowed to publish on
    $SRV.> only filled its stream) is answered nowhere: the node never writes where a requester
    points it."""
    async with await Node.connect(nats_url) as node:
        await node.publish("calculator", Calculator())
        await node.serve_as_service()
        client = await nats.connect(nats_url)
        try:
            captured: list[str] = []

            async def capture(msg: Msg) -> None:
                captured.append(msg.subject)

            targets = [
                "$KV.actorio_states_T.x",
                "$JS.API.STREAM.DELETE.X",
                f"{node.prefix}.events.T.x",
                f"{node.prefix}.actor.calculator",
                f"{node.prefix}.node.x",
                f"{node.prefix}.entity.T.x",
                f"{node.prefix}.reply.x",
            ]
            for target in targets:
                await client.subscribe(target, cb=capture)
            await client.flush()
            await client.flush()
            for target in targets:
                await client.publish("$SRV.INFO", b"", reply=target)
            assert await _gather(client, "$SRV.INFO", 1)  # answered after the ones above
            await client.flush()
            await client.flush()
            assert captured == []
            # An inbox under the node's prefix elsewhere (a tenant's tool) is answered.
            tool = f"{node.prefix}.tools.inbox"
            await client.subscribe(tool, cb=capture)
            await client.flush()
            await client.publish("$SRV.PING", b"", reply=tool)
            assert await _gather(client, "$SRV.PING", 1)
            await client.flush()
            await client.flush()
            assert captured == [tool]
        finally:
            await client.close()


async def test_a_flood_of_info_and_stats_requests_is_answered_from_bodies_made_once(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """200 INFO and 200 STATS requests (a hostile client's flood stalled the node for seconds,
    each INFO making every schema again): all answered, from one INFO body (the schema made
    once) and one STATS body; a STATS body ``STATS_FRESH_FOR`` seconds old is made again."""
    now = [1000.0]
    monkeypatch.setattr(service, "monotonic", lambda: now[0])
    made: list[str] = []
    schema, endpoint_stats = service.NodeService._schema, service.NodeService._endpoint_stats

    def counted_schema(self: service.NodeService, cls: type[Actor[Add]]) -> str:
        made.append("schema")
        return schema(self, cls)

    def counted_stats(self: service.NodeService) -> list[EndpointStats]:
        made.append("stats")
        return endpoint_stats(self)

    monkeypatch.setattr(service.NodeService, "_schema", counted_schema)
    monkeypatch.setattr(service.NodeService, "_endpoint_stats", counted_stats)
    async with await Node.connect(nats_url) as node:
        await node.publish("calculator", Calculator())
        await node.serve_as_service()
        client = await nats.connect(nats_url)
        try:
            answers: dict[str, list[bytes]] = {"INFO": [], "STATS": []}

            async def take(msg: Msg) -> None:
                answers[msg.subject.rsplit(".", 1)[-1]].append(msg.data)

            inbox = client.new_inbox()
            await client.subscribe(f"{inbox}.*", cb=take)
            await client.flush()
            for verb in ("INFO", "STATS"):
                for _ in range(200):
                    await client.publish(f"$SRV.{verb}", b"", reply=f"{inbox}.{verb}")
                # After the 200 (one subscription a subject takes them in order): all handled.
                assert await _gather(client, f"$SRV.{verb}", 1)
            await client.flush()
            await client.flush()  # the answers sent before have reached this client too
            assert [len(answers["INFO"]), len(answers["STATS"])] == [200, 200]
            assert len(set(answers["INFO"])) == len(set(answers["STATS"])) == 1
            assert ServiceInfo.from_dict(json.loads(answers["INFO"][0])).endpoints[0].name == "calculator"
            assert made == ["schema", "stats"]
            now[0] += service.STATS_FRESH_FOR
            assert await _gather(client, "$SRV.STATS", 1)
            assert made == ["schema", "stats", "stats"]
        finally:
            await client.close()


async def test_an_info_body_over_the_payload_limit_leaves_the_schemas_out(nats_url: str) -> None:
    async with await Node.connect(nats_url) as node:
        await node.publish("calculator", Calculator())
        service_ = await node.serve_as_service()
        client = await nats.connect(nats_url)
        try:
            (full,) = await _gather(client, "$SRV.INFO", 1)
            schema = ServiceInfo.from_dict(full).endpoints[0].metadata["actorio.schema"]
            assert "Add" in schema
            # A limit between the body without schemas and the one with them (as a server's
            # max_payload would be): the next body made leaves them out, and still goes.
            node.client._max_payload = len(json.dumps(full)) - len(schema) // 2  # pyright: ignore[reportPrivateUsage]
            service_._info = None  # pyright: ignore[reportPrivateUsage]
            (cut,) = await _gather(client, "$SRV.INFO", 1)
            endpoint = ServiceInfo.from_dict(cut).endpoints[0]
            assert endpoint.name == "calculator"
            assert endpoint.metadata["actorio.schema"] == '{"error": "too large"}'
        finally:
            await client.close()


async def test_a_service_request_cannot_aim_the_answer_at_actors_under_another_prefix(nats_url: str) -> None:
    """A node that replies under another prefix (``reply_prefixes``) or whose prefix holds
    another node's: a reply subject that names actors there (``billing.actor.jobs``) is
    answered nowhere, as under the node's own prefix."""
    async with await Node.connect(nats_url, reply_prefixes=["billing"]) as node:
        await node.serve_as_service()
        client = await nats.connect(nats_url)
        try:
            captured: list[str] = []

            async def capture(msg: Msg) -> None:
                captured.append(msg.subject)

            targets = [
                "billing.actor.jobs",
                "billing.mailbox.T.0.x",
                f"{node.prefix}.shop.actor.jobs",
                f"{node.prefix}.shop.dlq.jobs",
            ]
            for target in targets:
                await client.subscribe(target, cb=capture)
            await client.subscribe("billing.tools.inbox", cb=capture)
            await client.flush()
            await client.flush()
            for target in targets:
                await client.publish("$SRV.PING", b"", reply=target)
            await client.publish("$SRV.PING", b"", reply="billing.tools.inbox")  # a tool's
            assert await _gather(client, "$SRV.PING", 1)
            await client.flush()
            await client.flush()
            assert captured == ["billing.tools.inbox"]
        finally:
            await client.close()


async def test_info_and_stats_replies_leave_within_a_byte_budget(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small request must not make the node send its large INFO body without end (a client
    sending 5,000 got 648 MB out of a node with 150 actors). With a budget of one byte a second:
    of 50 INFO requests at one instant the first goes whole and the others get nothing; the next
    is answered once the time to pay its bytes back has passed. PING is not in the budget."""
    monkeypatch.setattr(service, "REPLY_BYTES_PER_SECOND", 1)
    # The service reads the clock once when made, then once per INFO request: these instants.
    times = iter([1000.0] * 51 + [11000.0])
    monkeypatch.setattr(service, "monotonic", lambda: next(times))
    async with await Node.connect(nats_url) as node:
        await node.publish("calculator", Calculator())
        await node.serve_as_service()
        client = await nats.connect(nats_url)
        try:
            answers: list[bytes] = []

            async def take(msg: Msg) -> None:
                answers.append(msg.data)

            inbox = client.new_inbox()
            await client.subscribe(inbox, cb=take)
            await client.flush()
            for _ in range(50):
                await client.publish("$SRV.INFO", b"", reply=inbox)
            assert await _gather(client, "$SRV.PING", 1)
            # 10,000 s later, after the 50 (one subscription takes them in order): answered.
            assert await _gather(client, "$SRV.INFO", 1)
            await client.flush()
            await client.flush()  # the answers sent before have reached this client too
            assert len(answers) == 1
            assert len(answers[0]) < 10_000  # (paid back within the 10,000 s)
        finally:
            await client.close()
