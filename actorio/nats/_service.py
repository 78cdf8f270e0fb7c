"""A node as a NATS service: it answers the micro protocol's ``$SRV.PING``, ``$SRV.INFO`` and
``$SRV.STATS`` (with no name, with the service name, and with name and node id), each published
actor an endpoint, so that standard NATS tooling lists the nodes on a server and what they serve.

The responses are nats-py's own micro types (``nats.micro.service``), so their form is the
protocol's. An endpoint's metadata carries the actor's class and its protocol's JSON Schema (cut
to `MAX_SCHEMA` characters); its statistics are the actor's (`Actor.statistics`): requests are
the messages it handled and errors those whose handler raised, counted while handler counting
is on (``actorio.telemetry.count_handlers``), else 0.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from ._addresses import Destinations
    from ._node import Node

__all__ = ["MAX_SCHEMA", "NodeService"]


def _version() -> str:
    try:
        return version("actorio")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "0.0.0"


VERSION = _version()
"""The version the services announce: the installed actorio's."""

MAX_SCHEMA = 65536
"""The longest JSON Schema an endpoint's metadata carries (the whole INFO reply must fit the
server's payload limit)."""


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
        if not msg.reply:
            return
        verb = msg.subject.split(".")[1]
        if verb == "PING":
            body = ServicePing(**self._identity()).to_dict()
        elif verb == "INFO":
            body = ServiceInfo(
                **self._identity(), description=self.description, endpoints=self._endpoints()
            ).to_dict()
        else:
            body = ServiceStats(**self._identity(), started=self.started, endpoints=self._stats()).to_dict()
        if self._destinations.refusal(msg.reply) is not None:
            return  # a reply subject chosen to make this node write elsewhere ($KV..., $JS.API...)
        await self.node.client.publish(msg.reply, json.dumps(body, default=str).encode())

    def _endpoints(self) -> list[EndpointInfo]:
        found: list[EndpointInfo] = []
        for publication, actor in self.node.publications():
            cls = type(actor)
            try:
                schema = json.dumps(cls.protocol.json_schema())
            except Exception as error:  # a protocol without a JSON Schema
                schema = json.dumps({"error": str(error)[:200]})
            metadata = {
                "actorio.durable": str(publication.durable).lower(),
                "actorio.actor.class": f"{cls.__module__}.{cls.__qualname__}",
                "actorio.schema": schema if len(schema) <= MAX_SCHEMA else '{"error": "too large"}',
            }
            found.append(EndpointInfo(publication.name, publication.subject, publication.subject, metadata))
        return found

    def _stats(self) -> list[EndpointStats]:
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
