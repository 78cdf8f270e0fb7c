"""`Node.publish` and `Node.connect` return once the server has their subscriptions: a message
that another connection publishes right after reaches them.

Between the node and the server stands a `SlowLink`, which delays each command of the node's until
the node sends a PING (the protocol promises nothing more): a node that returned from a flush whose
PING went out before its SUB fails these tests every time, whatever the machine's load.
"""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request
from collections.abc import Iterator

import pytest

from actorio.lowlevel import encode_wire
from actorio.nats import LocalServer, Node
from tests.nats_support.actors import Greeter, Record, Report
from tests.nats_support.link import SlowLink, publish_and_ping

pytestmark = pytest.mark.asyncio(loop_scope="function")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Monitored:
    """A nats-server with its monitoring port, which lists the subscriptions it has."""

    def __init__(self, server: LocalServer, monitoring: int) -> None:
        self.server = server
        self.monitoring = monitoring

    async def subscriptions(self, subject: str) -> list[str]:
        """The subjects of the server's subscriptions that match ``subject``, now."""
        url = f"http://127.0.0.1:{self.monitoring}/subsz?subs=1&test={subject}"

        def get() -> list[str]:
            with urllib.request.urlopen(url, timeout=5) as response:
                found = json.loads(response.read())
            return [entry["subject"] for entry in found.get("subscriptions_list", [])]

        return await asyncio.to_thread(get)


@pytest.fixture(scope="module")
def monitored() -> Iterator[Monitored]:
    monitoring = _free_port()
    with LocalServer(jetstream=False, args=["-m", str(monitoring)]) as server:
        yield Monitored(server, monitoring)


async def test_a_core_publication_is_live_when_publish_returns(monitored: Monitored) -> None:
    port = monitored.server.port
    async with (
        SlowLink(port).running() as link,
        await Node.connect(link.url) as node,
        await Node.connect(monitored.server.url) as other,
    ):
        for n in range(5):
            name = f"live-{n}"
            link.hold()
            await node.publish(name, Greeter())
            # From another connection, right away: the server routes it to the subscriptions it has.
            await publish_and_ping(port, f"actorio.actor.{name}", encode_wire(Record(n=n)))
            link.release()
            assert await other.ref(name, Greeter).ask(Report(), timeout=10) == [n]


async def test_the_nodes_own_subscriptions_are_live_when_connect_returns(monitored: Monitored) -> None:
    async with SlowLink(monitored.server.port).running() as link:
        link.hold()
        async with await Node.connect(link.url) as node:
            exports = await monitored.subscriptions(f"actorio.node.{node.node_id}.token")
            replies = await monitored.subscriptions(f"actorio.reply.{node.node_id}.token")
            link.release()
        assert exports == [f"actorio.node.{node.node_id}.*"]
        assert replies == [f"actorio.reply.{node.node_id}.*"]
