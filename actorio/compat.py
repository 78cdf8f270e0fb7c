"""Compatibility between two versions of an actor's protocol.

A protocol that crosses processes changes over time: the receiving actor is deployed before or
after the programs that send to it. Given an OLD and a NEW version of a protocol (actor classes,
``module:Class`` targets, or documents printed by ``python -m actorio schema``),
`check_compatibility` says, listing each breaking change:

- **backward**: whether receivers on NEW still accept what senders written against OLD send, and
  whether those senders can still read NEW's replies (deploy the receivers first);
- **forward**: whether receivers on OLD understand what senders written against NEW send, and
  whether those senders can read OLD's replies (deploy the senders first).

Breaking changes: a message (a wire name) removed, a wire name renamed without keeping the old one
as an alias (``wire_aliases``), a new required field or one that became required, a field removed
(actorio refuses fields a message does not declare), a field narrowed (a smaller range, a shorter
length, fewer values, a pattern) or retyped, a reply type changed so that the other side cannot
read it. Additive changes (a new message, an optional field) are backward compatible; they are
forward changes, since receivers on OLD refuse what they do not know.

The comparison reads JSON Schema structurally (types, ``anyOf``/``oneOf``, ``enum``/``const``,
bounds, lengths, patterns, arrays, objects, ``$ref`` to ``$defs``): every payload valid under the
sender's version must be valid under the receiver's. What it cannot compare (``allOf``, ``not``,
conditionals, a changed ``pattern``) it reports as a change rather than pass silently.

``python -m actorio compat OLD NEW`` prints the report and exits with status 0 when compatible in
the required direction (``--require backward``, the default; ``forward``; ``full``: both), 1 when
not, and 2 on an error (an input that cannot be read). In a test, `assert_compatible` does the
same and fails with the list of breaking changes.
"""

# pyright: reportUnknownVariableType=false, reportUnknownMemberType=false, reportUnknownArgumentType=false
# This module reads JSON documents and the objects a caller passes: their values are checked with
# isinstance as they are read, and pyright's narrowing of such values leaves their parts unknown.

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from ._log_limit import printable
from ._schema_diff import compare_schemas

__all__ = [
    "Change",
    "Compatibility",
    "ProtocolError",
    "ProtocolVersion",
    "assert_compatible",
    "check_compatibility",
    "load_protocol",
]

Direction = Literal["backward", "forward"]
Requirement = Literal["backward", "forward", "full"]


class ProtocolError(ValueError):
    """An input that is not a protocol: its message is the one line the command prints."""


# -- the two sides ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MessageVersion:
    """One message type of a protocol version: its wire name, class, aliases and schemas."""

    wire_name: str
    class_name: str | None
    aliases: tuple[str, ...]
    payload: Mapping[str, Any]
    reply: Mapping[str, Any]


@dataclass(frozen=True)
class ProtocolVersion:
    """A protocol as `check_compatibility` compares it: read from a schema document or an actor."""

    name: str
    messages: Mapping[str, MessageVersion]

    def find(self, wire_name: str) -> MessageVersion | None:
        """The message accepted under ``wire_name``: its wire name or one of its aliases."""
        found = self.messages.get(wire_name)
        if found is None:
            found = next((m for m in self.messages.values() if wire_name in m.aliases), None)
        return found

    def by_class(self, class_name: str | None) -> MessageVersion | None:
        """The message of the same class name (the module may differ between versions)."""
        if class_name is None:
            return None
        short = class_name.rsplit(".", 1)[-1]
        return next(
            (m for m in self.messages.values() if m.class_name and m.class_name.rsplit(".", 1)[-1] == short),
            None,
        )


def _from_document(document: Mapping[str, Any], where: str) -> ProtocolVersion:
    metadata = document.get("x-actorio")
    if isinstance(metadata, Mapping):
        metadata = cast("Mapping[str, Any]", metadata)
        entries = metadata.get("messages")
        if not isinstance(entries, Mapping):
            raise ProtocolError(f"{where}: x-actorio.messages is missing")
        messages: dict[str, MessageVersion] = {}
        for wire_name, entry in cast("Mapping[str, Any]", entries).items():
            if not isinstance(entry, Mapping):
                raise ProtocolError(f"{where}: x-actorio.messages.{wire_name} is not an object")
            entry = cast("Mapping[str, Any]", entry)
            payload, reply = entry.get("payload"), entry.get("reply")
            if not isinstance(payload, Mapping):
                raise ProtocolError(f"{where}: x-actorio.messages.{wire_name} has no payload schema")
            class_name = entry.get("class")
            aliases = entry.get("aliases") or ()
            messages[str(wire_name)] = MessageVersion(
                str(wire_name),
                class_name if isinstance(class_name, str) else None,
                tuple(str(alias) for alias in cast("list[Any]", aliases)),
                cast("Mapping[str, Any]", payload),
                cast("Mapping[str, Any]", reply) if isinstance(reply, Mapping) else {},
            )
        return ProtocolVersion(str(metadata.get("actor", document.get("title", where))), messages)
    # The first layout: {"messages": {...}, "union": {...}, "replies": {...}}.
    payloads, replies = document.get("messages"), document.get("replies")
    if isinstance(payloads, Mapping) and isinstance(replies, Mapping) and "union" in document:
        payloads = cast("Mapping[str, Any]", payloads)
        replies = cast("Mapping[str, Any]", replies)
        title = str(document.get("title", where)).removesuffix(" protocol")
        return ProtocolVersion(
            title,
            {
                str(name): MessageVersion(str(name), None, (), schema, replies.get(name, {}))
                for name, schema in payloads.items()
            },
        )
    raise ProtocolError(f"{where} is not a protocol schema printed by `python -m actorio schema`")


def load_protocol(source: object) -> ProtocolVersion:
    """Read one version of a protocol from ``source``: an actor class, its ``protocol``, a schema
    document (a dict, as ``python -m actorio schema`` prints it; the first layout, with top-level
    ``messages``, ``union`` and ``replies``, is read too), the path of a JSON file holding one, or a
    ``module:Class`` target naming an actor class.

    Raises ``ValueError`` (a `ProtocolError`) if it is none of these.
    """
    from . import Actor
    from ._protocol import ActorProtocol

    given: Any = source  # checked here, whatever it is
    if isinstance(given, ProtocolVersion):
        return given
    if isinstance(given, type) and issubclass(given, Actor):
        given = given.protocol
    if isinstance(given, ActorProtocol):
        protocol: ActorProtocol[Any] = given
        return _from_document(protocol.json_schema(), protocol.name)
    source = given
    if isinstance(source, Mapping):
        return _checked_document(cast("Mapping[str, Any]", source), "the document")
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(cast("str | os.PathLike[str]", source))
        path = Path(text)
        if path.is_file():
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
                raise ProtocolError(f"cannot read {text}: {type(error).__name__}: {error}") from None
            if not isinstance(document, Mapping):
                raise ProtocolError(f"{text} is not a protocol schema printed by `python -m actorio schema`")
            return _checked_document(cast("Mapping[str, Any]", document), text)
        if ":" in text:
            from ._cli import CommandError, load_actor

            try:
                return load_protocol(load_actor(text))
            except CommandError as error:
                raise ProtocolError(str(error)) from None
        raise ProtocolError(f"{text}: no such file, and not a module:Actor target")
    raise ProtocolError(f"cannot read a protocol from {type(given).__name__}")


_MALFORMED = (TypeError, ValueError, KeyError, AttributeError, IndexError, RecursionError)
"""What reading a schema document of wrong shapes raises (fields of the wrong types, too deep)."""


def _checked_document(document: Mapping[str, Any], where: str) -> ProtocolVersion:
    """`_from_document`, its errors on a malformed document (fields of the wrong types, nesting
    too deep: a document may come from anywhere) turned into a `ProtocolError`."""
    try:
        return _from_document(document, where)
    except ProtocolError:
        raise
    except _MALFORMED as error:
        raise ProtocolError(
            f"{where} is not a protocol schema printed by `python -m actorio schema` "
            f"({type(error).__name__}: {str(error)[:200]})"
        ) from None


# -- the result ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One breaking change: in which ``direction``, for which message (its wire name), of which
    ``kind``, and what it is (``detail``, a sentence)."""

    direction: Direction
    message: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.message}: {self.detail}"


@dataclass(frozen=True)
class Compatibility:
    """The result of `check_compatibility`: the breaking changes in each direction."""

    old: str
    new: str
    backward: tuple[Change, ...]
    """Receivers on NEW, senders written against OLD (and their reading of NEW's replies)."""
    forward: tuple[Change, ...]
    """Receivers on OLD, senders written against NEW (and their reading of OLD's replies)."""

    @property
    def backward_compatible(self) -> bool:
        return not self.backward

    @property
    def forward_compatible(self) -> bool:
        return not self.forward

    def compatible(self, require: Requirement = "backward") -> bool:
        """Whether the versions are compatible in the required direction (``full``: both)."""
        if require == "backward":
            return self.backward_compatible
        if require == "forward":
            return self.forward_compatible
        return self.backward_compatible and self.forward_compatible

    def report(self) -> str:
        """The result as text: one line per direction, then one per breaking change."""
        lines = [f"old: {self.old}", f"new: {self.new}"]
        for direction, changes, meaning in (
            ("backward", self.backward, "receivers on new, senders on old"),
            ("forward", self.forward, "receivers on old, senders on new"),
        ):
            verdict = (
                "compatible"
                if not changes
                else f"{len(changes)} breaking change" + ("" if len(changes) == 1 else "s")
            )
            lines.append(f"{direction} ({meaning}): {verdict}")
            lines.extend(f"  - {change}" for change in changes)
        # Names and texts come from the documents, which may come from anywhere: no escape
        # sequence of theirs reaches a terminal.
        return "\n".join(printable(line) for line in lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data."""
        return {
            "old": self.old,
            "new": self.new,
            "backward_compatible": self.backward_compatible,
            "forward_compatible": self.forward_compatible,
            "changes": [
                {"direction": c.direction, "message": c.message, "kind": c.kind, "detail": c.detail}
                for c in (*self.backward, *self.forward)
            ],
        }


# -- the check -------------------------------------------------------------------------------------


def _direction(
    direction: Direction, receivers: ProtocolVersion, senders: ProtocolVersion
) -> Iterator[Change]:
    """The changes that break senders on ``senders`` talking to receivers on ``receivers``."""
    receiver_side = "new" if direction == "backward" else "old"
    for name, sent in senders.messages.items():
        accepted = receivers.find(name)
        if accepted is None:
            renamed = receivers.by_class(sent.class_name)
            if renamed is not None:
                if direction == "backward":
                    detail = (
                        f"wire name renamed to {renamed.wire_name!r} without an alias: add {name!r} "
                        f"to {renamed.wire_name}'s wire_aliases"
                    )
                else:
                    detail = (
                        f"receivers on old know it as {renamed.wire_name!r}: senders on new write {name!r}"
                    )
                yield Change(direction, name, "renamed-without-alias", detail)
            elif direction == "backward":
                yield Change(
                    direction, name, "removed-message", "message removed: receivers on new refuse it"
                )
            else:
                yield Change(direction, name, "new-message", "new message: receivers on old refuse it")
            continue
        backward = direction == "backward"
        for _path, kind, detail in compare_schemas(
            accepted.payload, sent.payload, payload=True, reader_is_new=backward
        ):
            yield Change(direction, name, kind, detail)
        # Replies travel the other way: the sender reads what the receiver answers.
        for _path, _kind, detail in compare_schemas(
            sent.reply, accepted.reply, payload=False, reader_is_new=not backward
        ):
            yield Change(
                direction,
                name,
                "changed-reply",
                f"reply: {detail} (askers on {_other(receiver_side)} cannot read it)",
            )


def _other(side: str) -> str:
    return "old" if side == "new" else "new"


def check_compatibility(old: object, new: object) -> Compatibility:
    """Compare two versions of a protocol (each anything `load_protocol` reads); see the module's
    documentation for what counts as a breaking change in each direction."""
    old_version, new_version = load_protocol(old), load_protocol(new)
    try:
        backward = tuple(_direction("backward", new_version, old_version))
        forward = tuple(_direction("forward", old_version, new_version))
    except _MALFORMED as error:  # a schema of wrong shapes (a document may come from anywhere)
        raise ProtocolError(
            f"{old_version.name} or {new_version.name} has a schema that cannot be compared "
            f"({type(error).__name__}: {str(error)[:200]})"
        ) from None
    return Compatibility(old_version.name, new_version.name, backward, forward)


def assert_compatible(old: object, new: object, *, require: Requirement = "backward") -> Compatibility:
    """In a test: fail (``AssertionError``, listing each breaking change) unless ``new`` is
    compatible with ``old`` in the required direction (``backward``, the default: receivers on
    ``new`` accept senders on ``old``; ``forward``; ``full``: both). Returns the `Compatibility`.

    For example, against a schema committed with the previous release::

        def test_the_protocol_stays_compatible():
            assert_compatible("schemas/greeter-1.0.json", Greeter)
    """
    result = check_compatibility(old, new)
    if not result.compatible(require):
        raise AssertionError(f"the protocol is not {require} compatible:\n{result.report()}")
    return result
