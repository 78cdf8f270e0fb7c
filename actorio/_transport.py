"""What a transport reports about its traffic, for metrics: messages sent and received, and
errors; and the block around each operation its client makes and waits for (a remote ask), for
a span and its duration. A transport calls `report` and opens `operation`; telemetry listens
(`add_transport_listener`) and sets the block (`set_operation_hook`). With neither (the default),
a report or a block is one test of a module global.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

__all__ = [
    "Operation",
    "TransportListener",
    "add_transport_listener",
    "operation",
    "remove_transport_listener",
    "report",
    "set_operation_hook",
]

TransportListener = Callable[[str, str, str], None]
"""``listener(transport, event, detail)``: ``event`` is ``"sent"``, ``"received"`` or ``"error"``;
``detail`` says more (``"tell"``, ``"ask"``; for an error, its kind: ``"invalid"``,
``"overflow"``, ``"reply_too_large"``, ``"reply_failed"``)."""

_listeners: tuple[TransportListener, ...] = ()


def report(transport: str, event: str, detail: str = "") -> None:
    """Tell the listeners that ``transport`` (``"nats"``) saw ``event``."""
    if _listeners:
        for listener in _listeners:
            listener(transport, event, detail)


def add_transport_listener(listener: TransportListener) -> None:
    """Call ``listener`` for every report from now on; adding it twice adds it once."""
    global _listeners
    if listener not in _listeners:
        _listeners = (*_listeners, listener)


def remove_transport_listener(listener: TransportListener) -> None:
    """Stop calling ``listener``; nothing happens if it was not added."""
    global _listeners
    _listeners = tuple(each for each in _listeners if each != listener)  # ==: bound methods


Operation = Callable[[str, str, str, str], AbstractContextManager[object]]
"""``hook(transport, name, destination, template)``: the block around one operation (see
`operation`). It must not raise for the operation's sake: what it raises ends the operation."""

_operation: Operation | None = None
_NO_BLOCK: AbstractContextManager[object] = nullcontext()


def set_operation_hook(hook: Operation | None) -> Operation | None:
    """Make ``hook`` the block around every transport operation (``None``: none); return the
    previous one."""
    global _operation
    previous, _operation = _operation, hook
    return previous


def operation(transport: str, name: str, destination: str, template: str) -> AbstractContextManager[object]:
    """The block a transport (``"nats"``) opens around one operation its client makes and waits
    for: ``name`` is ``"ask"`` (a request and its reply, read and checked), ``destination`` what
    the user addressed (a published name, ``Type/key``, a sender's address) and ``template`` the
    same in few values, for metrics (the published name, the entity type; ``""`` for a sender's
    address, which has one per sender). A context propagated from inside the block (`inject`)
    is the operation's; what raises out of it is the operation's error. An empty block without a
    hook."""
    if _operation is None:
        return _NO_BLOCK
    return _operation(transport, name, destination, template)
