"""What a transport reports about its traffic, for metrics: messages sent and received, and
errors. A transport calls `report`; metrics listen (`add_transport_listener`). With no listener
(the default), a report is one test of a module global.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["TransportListener", "add_transport_listener", "remove_transport_listener", "report"]

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
