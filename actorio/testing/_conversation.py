"""Pictures of a test: who told or asked what to whom, in order, as a Mermaid sequence diagram
(`Conversation`), and a tree of actors as a Mermaid graph (`tree_diagram`).

A `Conversation` records through the seams of ``actorio.lowlevel``: a send hook sees every tell
and ask (in any task), a handler wrapper knows which actor is speaking (the sender of what a
handler sends) and sees the replies. Message classes are recorded, never field values.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from actorio import NO_REPLY, Actor, BaseRef
from actorio.lowlevel import (
    AskRef,
    Handler,
    add_handler_wrapper,
    add_send_hook,
    remove_handler_wrapper,
    remove_send_hook,
    snapshot,
)

__all__ = ["Arrow", "Conversation", "current_conversation", "tree_diagram"]

_speaker: ContextVar[str | None] = ContextVar("actorio_conversation_speaker", default=None)
_open: list[Conversation] = []


@dataclass(frozen=True)
class Arrow:
    """One step of a conversation: ``sender`` did ``kind`` (``tell``, ``ask``, ``forward``,
    ``reply``, ``raise``) with a ``what`` (a message class name, or a reply's or an error's
    type) to ``recipient``."""

    sender: str
    recipient: str
    kind: str
    what: str


def current_conversation() -> Conversation | None:
    """The `Conversation` opened last and still open, if any."""
    return _open[-1] if _open else None


class Conversation:
    """Records who told or asked what to whom, in order, while the block is open:
    ``with Conversation() as conversation: ...``, then `sequence_diagram`.

    The code outside any actor (the test) is ``outside`` in the diagram. While a conversation is
    open, a failed `TestProbe` expectation adds its diagram so far to the error.
    """

    def __init__(self, *, outside: str = "test", limit: int = 500) -> None:
        self.outside = outside
        """The name of the code that is not an actor (the test)."""
        self.limit = limit
        """At most this many arrows are kept (the first ones); the rest are counted."""
        self.arrows: list[Arrow] = []
        self.dropped = 0
        """Arrows past ``limit``, not kept."""
        self._askers: dict[int, str] = {}

    def __enter__(self) -> Conversation:
        add_send_hook(self._sent)
        add_handler_wrapper(self._wrap)
        _open.append(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        remove_handler_wrapper(self._wrap)
        remove_send_hook(self._sent)
        if self in _open:
            _open.remove(self)

    def _add(self, arrow: Arrow) -> None:
        if len(self.arrows) < self.limit:
            self.arrows.append(arrow)
        else:
            self.dropped += 1

    def _sent(self, recipient: BaseRef, message: Any, asked: bool) -> None:
        sender = _speaker.get() or self.outside
        carries_ask = type(message.sender) is AskRef
        kind = "ask" if asked else ("forward" if carries_ask else "tell")
        if asked or (carries_ask and id(message) not in self._askers):
            self._askers[id(message)] = sender
        self._add(Arrow(sender, recipient.identifier, kind, type(message).__name__))

    def _wrap(self, actor_class: type, message_type: type | None, handler: Handler) -> Handler:
        async def speaking(actor: Any, message: Any) -> Any:
            token = _speaker.set(actor.identifier)
            ask = message.sender if type(message.sender) is AskRef else None
            try:
                result = await handler(actor, message)
            except Exception as error:
                if ask is not None:
                    asker = self._askers.pop(id(message), self.outside)
                    self._add(Arrow(actor.identifier, asker, "raise", type(error).__name__))
                raise
            finally:
                _speaker.reset(token)
            if ask is not None and result is not NO_REPLY:
                asker = self._askers.pop(id(message), self.outside)
                future = ask.future
                answered = future.result() if future.done() and not future.exception() else result
                self._add(Arrow(actor.identifier, asker, "reply", type(answered).__name__))
            return result

        speaking.__name__ = getattr(handler, "__name__", "speaking")
        speaking.__qualname__ = getattr(handler, "__qualname__", speaking.__name__)
        return speaking

    def sequence_diagram(self) -> str:
        """The conversation as a Mermaid sequence diagram: tells ``-)`` (asynchronous), asks and
        forwards ``->>``, replies and errors ``-->>``."""
        names: dict[str, str] = {}
        lines = ["sequenceDiagram"]
        for arrow in self.arrows:
            for name in (arrow.sender, arrow.recipient):
                if name not in names:
                    names[name] = f"p{len(names)}"
                    lines.append(f"    participant {names[name]} as {_label(name)}")
        style = {"tell": "-)", "ask": "->>", "forward": "->>", "reply": "-->>", "raise": "--x"}
        for arrow in self.arrows:
            what = arrow.what if arrow.kind == "reply" else f"{arrow.kind} {arrow.what}"
            lines.append(
                f"    {names[arrow.sender]}{style[arrow.kind]}{names[arrow.recipient]}: {_label(what)}"
            )
        if self.dropped:
            if not names:  # none kept (a limit of 0): a note needs a participant
                names["..."] = "p0"
                lines.append("    participant p0 as ...")
            lines.append(f"    Note over {next(iter(names.values()))}: {self.dropped} more not shown")
        return "\n".join(lines) + "\n"


def tree_diagram(root: Actor[Any]) -> str:
    """The tree of actors from ``root`` as a Mermaid graph: each actor's identifier and class,
    and its mailbox depth when messages are queued."""
    lines = ["graph TD"]
    counter = iter(range(1_000_000))

    def walk(node: dict[str, Any], parent: str | None) -> None:
        name = f"n{next(counter)}"
        parts = [node["identifier"], node["actor_class"].rsplit(".", 1)[-1]]
        if node["queued"]:
            parts.append(f"{node['queued']} queued")
        if node["restarts"]:
            parts.append(f"{node['restarts']} restarts")
        label = "<br/>".join(_label(part) for part in parts)
        shape = f'{name}["{label}"]'
        lines.append(f"    {parent} --> {shape}" if parent else f"    {shape}")
        for child in node["children"]:
            walk(child, name)

    walk(snapshot(root), None)
    return "\n".join(lines) + "\n"


_UNSAFE = re.compile(r"[^\w .,()\-/=+*\[\]@$%&!?|]")


def _label(text: str) -> str:
    """``text`` safe in a Mermaid label: characters that Mermaid reads as syntax (``;``, ``:``,
    ``#``, ``<``, quotes, newlines) become ``_``; at most 80 characters."""
    text = _UNSAFE.sub("_", text)
    return text if len(text) <= 80 else text[:77] + "..."
