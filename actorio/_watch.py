"""Death watch: a `Terminated` notice to every watcher when an actor stops for good."""

# pyright: reportPrivateUsage=false
# Watching reads and writes the mailbox behind a reference (``_mailbox``): they are one unit.

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict

from ._message import Message
from ._sender import Sender

if TYPE_CHECKING:
    from ._mailbox import MailboxLike
    from ._ref import ActorRef

__all__ = ["Terminated", "notify_watchers", "unwatch", "watch"]


class Terminated(Message[None]):
    """The notice a watcher receives when the actor it watches has stopped for good.

    Sent after the actor's teardown (its children stopped too); a supervised child that is
    restarted has not stopped, and one that stops for good is watched through the reference its
    supervisor gave out. Handle it like any message: ``@handles(Terminated)``. A watcher may
    receive it ahead of messages the actor told it just before stopping (it is a system message).
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    ref: Any
    """The `ActorRef` of the actor that stopped (compare it with the reference you watched)."""
    identifier: str
    """The stopped actor's identifier."""
    reason: BaseException | None = None
    """The error it failed with, or ``None`` if it stopped cleanly."""

    @property
    def failed(self) -> bool:
        """True if the actor failed (``reason`` is its error)."""
        return self.reason is not None


def watch(ref: ActorRef[Any], watcher: Sender) -> None:
    """Tell ``watcher`` a `Terminated` notice when the actor behind ``ref`` stops for good (at once,
    if it has). ``watcher`` is any reference: an actor's gets it as a system message. Watching
    twice sends one notice. Raises ``TypeError`` for a reference with no mailbox in this process."""
    mailbox: MailboxLike | None = getattr(ref, "_mailbox", None)
    if mailbox is None:  # a remote reference has no mailbox here
        raise TypeError(f"{ref!r} has no local actor to watch: death watch is for actors in this process")
    if mailbox.termination is not None:
        _notify(watcher, Terminated(ref=ref, identifier=ref.identifier, reason=mailbox.termination[0]))
        return
    watchers = mailbox.watchers
    if watchers is None:
        mailbox.watchers = [watcher]
    elif len(watchers) < _PRUNE_FROM:
        if watcher not in watchers:
            watchers.append(watcher)
    else:
        # Past 64 watchers, no search at each watch: at each power of two, the list drops the
        # watchers that stopped for good (a notice to them would be dropped) and the repeats,
        # so that short-lived watchers of a long-lived actor do not pile up.
        if len(watchers) & (len(watchers) - 1) == 0:
            watchers[:] = _distinct(w for w in watchers if not _stopped(w))
        watchers.append(watcher)


_PRUNE_FROM = 64
"""The number of watchers from which `watch` stops searching for a repeat (see `watch`)."""


def _stopped(watcher: Sender) -> bool:
    return getattr(getattr(watcher, "_mailbox", None), "termination", None) is not None


def _distinct(watchers: Iterable[Sender]) -> list[Sender]:
    """``watchers`` without repeats, in order: two references to one mailbox are one watcher
    (compared by mailbox when told: a reference made in ``__init__`` gets its mailbox after);
    any other watcher by its own equality."""
    seen: set[object] = set()
    kept: list[Sender] = []
    for watcher in watchers:
        mailbox = getattr(watcher, "_mailbox", None)
        key: object = ("mailbox", id(mailbox)) if mailbox is not None else ("watcher", watcher)
        try:
            hash(key)
        except TypeError:  # a watcher of the user's that cannot be hashed: itself only
            key = ("id", id(watcher))
        if key not in seen:
            seen.add(key)
            kept.append(watcher)
    return kept


def unwatch(ref: ActorRef[Any], watcher: Sender) -> None:
    """Forget ``watcher``; a notice already queued for it is still delivered."""
    mailbox: MailboxLike | None = getattr(ref, "_mailbox", None)
    if mailbox is not None and mailbox.watchers is not None and watcher in mailbox.watchers:
        mailbox.watchers[:] = [w for w in mailbox.watchers if w != watcher]


def notify_watchers(mailbox: MailboxLike, ref: ActorRef[Any], reason: BaseException | None) -> None:
    """The actor behind ``mailbox`` stopped for good: tell every watcher, once. (The notice is made
    only if someone watches: most actors stop unwatched, and a notice costs microseconds.)"""
    if mailbox.termination is not None:
        return
    mailbox.termination = _CLEAN if reason is None else (reason,)
    watchers, mailbox.watchers = mailbox.watchers, None
    if watchers:
        notice = Terminated(ref=ref, identifier=ref.identifier, reason=reason)
        # Once per watcher: two references to one mailbox are one watcher (a supervised child's
        # incarnations each watched through a reference to it).
        for watcher in _distinct(watchers):
            _notify(watcher, notice)


_CLEAN: tuple[BaseException | None] = (None,)


def _notify(watcher: Sender, notice: Terminated) -> None:
    target = getattr(watcher, "_mailbox", None)
    if target is None:
        watcher.tell_nowait(notice)
        return
    # An actor (or a test probe): straight into its mailbox, whatever its protocol; for an
    # actor as a system message, ahead of its user messages and never refused.
    if not target.closed:
        put = getattr(target, "put_system", None) or target.put
        put(notice)
