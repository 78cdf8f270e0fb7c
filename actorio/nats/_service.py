"""A node as a NATS service: it answers the micro protocol's ``$SRV.PING``, ``$SRV.INFO`` and
``$SRV.STATS`` (with no name, with the service name, and with name and node id), each published
actor an endpoint, so that standard NATS tooling lists the nodes on a server and what they serve.

The responses are nats-py's own micro types (``nats.micro.service``), so their form is the
protocol's. An endpoint's metadata carries the actor's class and its protocol's JSON Schema (cut
to `MAX_SCHEMA` characters); its statistics are the actor's (`Actor.statistics`): requests are
the messages it handled and errors those whose handler raised, counted while handler counting
is on (``actorio.telemetry.count_handlers``), else 0.

What a request costs is bounded: the reply subject is checked before anything is built (the
node's rule for what it publishes on behalf of a message, and no token of `DELIVERED_SPACES`); a
class's schema is made once; the INFO body is made again only when the publications change, and
the STATS body (every published actor's statistics) at most every `STATS_FRESH_FOR` seconds;
INFO and STATS replies leave at most `REPLY_BYTES_PER_SECOND` a second (a token bucket: a
request beyond goes unanswered, as a lost one), so that a small request cannot make the node
send its large INFO body thousands of times a second; an INFO body larger than the server's
payload limit leaves the schemas out (``{"error": "too large"}``).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from time import monotonic
from typing import TYPE_CHECKING, Any

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.micro.service import (
    EndpointInfo,
    EndpointStats,
    ServiceInfo,
    ServicePing,
    ServiceStats,
    ServiceVerb,
    control_subject,
)

from ..lowlevel import LogLimit
from ._addresses import RESERVED_SPACES

if TYPE_CHECKING:
    from .. import Actor
    from ._addresses import Destinations
    from ._node import Node
    from ._publication import Publication

__all__ = ["DELIVERED_SPACES", "MAX_SCHEMA", "REPLY_BYTES_PER_SECOND", "STATS_FRESH_FOR", "NodeService"]

_logger = logging.getLogger("actorio.nats")


def _version() -> str:
    try:
        return version("actorio")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "0.0.0"


VERSION = _version()
"""The version the services announce: the installed actorio's."""

DELIVERED_SPACES = ("actor", "entity", "node", "reply")
"""The subject spaces under a node's prefix whose messages reach actors (published ones, entities,
sender addresses, asks' replies). A service request's reply subject with a token that names one
of them, or one of `RESERVED_SPACES` (stored or control data), is not answered, whatever the
prefix before it (another node's, on a prefix this node replies under): a durable actor stores
what comes, and a tool's inbox (``_INBOX.``, ``shop.tools.``) is never there."""
_SPACES = frozenset((*DELIVERED_SPACES, *RESERVED_SPACES))
MAX_SCHEMA = 65536
"""The longest JSON Schema an endpoint's metadata carries (the whole INFO reply must fit the
server's payload limit)."""

STATS_FRESH_FOR = 0.25
"""Seconds a STATS body is reused for (as the snapshot endpoint reuses its answer)."""

REPLY_BYTES_PER_SECOND = 4 * 1024 * 1024
"""The bytes of INFO and STATS replies a node sends a second at most, on average (bursts of as
many). An operator's tools ask a few times a second; a flood beyond goes unanswered."""

_TOO_LARGE = '{"error": "too large"}'


class NodeService:
    """A node answering the micro protocol (see `Node.serve_as_service`): ``name`` is the
    service name, the node's id its instance id."""

    def __init__(self, node: Node, name: str, description: str, destinations: Destinations) -> None:
        self.node = node
        self._destinations = destinations
        """The node's rule for the subjects it publishes to on behalf of a message."""
        self.name = name
        self.description = description
        self.started = datetime.now(timezone.utc)
        self._subscriptions: list[Subscription] = []
        self._schemas: dict[type, str] = {}
        """Each published class's schema, as the metadata carries it (made once per class)."""
        self._info: tuple[tuple[tuple[str, type, str], ...], bytes] | None = None
        """The last INFO body, and the publications it was made for."""
        self._stats: tuple[float, bytes] | None = None
        """The last STATS body, and when it was made."""
        self._failures = LogLimit(_logger)
        self._budget, self._refilled = float(REPLY_BYTES_PER_SECOND), monotonic()

    async def start(self) -> None:
        """Subscribe to the protocol's subjects: ``$SRV.<VERB>``, ``$SRV.<VERB>.<name>`` and
        ``$SRV.<VERB>.<name>.<node id>`` for PING, INFO and STATS."""
        # nats-py leaves a parameter of subscribe() unannotated (``future: Future``).
        subscribe = self.node.client.subscribe  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        for verb in (ServiceVerb.PING, ServiceVerb.INFO, ServiceVerb.STATS):
            for subject in (
                control_subject(verb),
                control_subject(verb, self.name),
                control_subject(verb, self.name, self.node.node_id),
            ):
                self._subscriptions.append(await subscribe(subject, cb=self._answer))

    async def stop(self) -> None:
        """Stop answering."""
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            await subscription.unsubscribe()

    def _identity(self) -> dict[str, Any]:
        return {"id": self.node.node_id, "name": self.name, "version": VERSION, "metadata": {"url": ""}}

    async def _answer(self, msg: Msg) -> None:
        reply = msg.reply
        if not reply or not _SPACES.isdisjoint(reply.split(".")) or self._destinations.refusal(reply):
            # None, or one chosen to make this node write elsewhere ($KV..., $JS.API..., or what
            # nodes deliver to actors or store, under any prefix: a tool's inbox is not there).
            return
        verb = msg.subject.split(".")[1]
        if verb == "PING":
            data = json.dumps(ServicePing(**self._identity()).to_dict()).encode()
        elif not self._may_send():
            return
        else:
            data = self._info_body() if verb == "INFO" else self._stats_body()
            self._budget -= len(data)
        try:
            await self.node.client.publish(reply, data)
        except nats.errors.MaxPayloadError:
            self._failures.log(
                logging.WARNING,
                "the service's %s reply (%d bytes) is larger than the server's max_payload: not sent",
                verb,
                len(data),
            )

    def _may_send(self) -> bool:
        """True while the reply budget (`REPLY_BYTES_PER_SECOND`, refilled continuously) is not
        spent: the reply then goes whole, and what it takes is owed."""
        now = monotonic()
        rate = REPLY_BYTES_PER_SECOND
        self._budget = min(float(rate), self._budget + (now - self._refilled) * rate)
        self._refilled = now
        return self._budget > 0

    def _stats_body(self) -> bytes:
        """The STATS reply, made again once it is `STATS_FRESH_FOR` seconds old."""
        now = monotonic()
        if self._stats is None or now - self._stats[0] >= STATS_FRESH_FOR:
            body = ServiceStats(**self._identity(), started=self.started, endpoints=self._endpoint_stats())
            self._stats = (now, json.dumps(body.to_dict(), default=str).encode())
        return self._stats[1]

    def _info_body(self) -> bytes:
        """The INFO reply, made again only when the publications changed."""
        published = self.node.publications()
        key = tuple((p.name, type(actor), str(p.durable)) for p, actor in published)
        if self._info is not None and self._info[0] == key:
            return self._info[1]
        data = self._info_of(published, with_schemas=True)
        if len(data) > self.node.client.max_payload:
            data = self._info_of(published, with_schemas=False)
        self._info = (key, data)
        return data

    def _info_of(self, published: list[tuple[Publication, Actor[Any]]], *, with_schemas: bool) -> bytes:
        found: list[EndpointInfo] = []
        for publication, actor in published:
            cls = type(actor)
            metadata = {
                "actorio.durable": str(publication.durable).lower(),
                "actorio.actor.class": f"{cls.__module__}.{cls.__qualname__}",
                "actorio.schema": self._schema(cls) if with_schemas else _TOO_LARGE,
            }
            found.append(EndpointInfo(publication.name, publication.subject, publication.subject, metadata))
        body = ServiceInfo(**self._identity(), description=self.description, endpoints=found).to_dict()
        return json.dumps(body, default=str).encode()

    def _schema(self, cls: type[Actor[Any]]) -> str:
        schema = self._schemas.get(cls)
        if schema is None:
            try:
                schema = json.dumps(cls.protocol.json_schema())
            except Exception as error:  # a protocol without a JSON Schema
                schema = json.dumps({"error": str(error)[:200]})
            schema = self._schemas[cls] = schema if len(schema) <= MAX_SCHEMA else _TOO_LARGE
        return schema

    def _endpoint_stats(self) -> list[EndpointStats]:
        found: list[EndpointStats] = []
        for publication, actor in self.node.publications():
            statistics = actor.statistics()
            handled = statistics.handled or 0
            seconds = statistics.handler_seconds or 0.0
            found.append(
                EndpointStats(
                    name=publication.name,
                    subject=publication.subject,
                    queue_group=publication.subject,
                    num_requests=handled,
                    num_errors=statistics.failed or 0,
                    processing_time=int(seconds * 1e9),
                    average_processing_time=int(seconds * 1e9 / handled) if handled else 0,
                    data={"queued": statistics.queued},
                )
            )
        return found
