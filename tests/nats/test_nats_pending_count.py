"""How a subscription's pending bytes count what a message holds beyond its payload
(``actorio.nats._connection.count_whole_messages``), without a server: headers as held in
memory, and a message that cannot be counted dropped rather than counted for good."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from nats.aio.msg import Msg

from actorio.nats._connection import HEADER_COST, count_whole_messages


class Pending:
    """What nats-py's subscription keeps of its pending messages."""

    def __init__(self, limit: int) -> None:
        self._pending_queue: asyncio.Queue[Msg] = asyncio.Queue()
        self._pending_size = 0
        self._pending_bytes_limit = limit


class Unreadable(dict[str, str]):
    """Headers that fail when read (nats-py 2.9 could leave an object of its own as a value)."""

    def items(self) -> Any:
        raise TypeError("object of type 'Header' has no len()")

    def __iter__(self) -> Iterator[str]:
        raise TypeError("object of type 'Header' has no len()")


def _message(headers: dict[str, str] | None) -> Msg:
    return Msg(None, subject="s", reply="r", data=b"x", headers=headers)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_headers_count_as_held_in_memory_and_come_back_when_taken() -> None:
    pending = Pending(limit=1_000_000)
    count_whole_messages(pending)  # type: ignore[arg-type]
    queue = pending._pending_queue
    queue.put_nowait(_message({"X-Pad": "a" * 1000}))
    latin = pending._pending_size
    assert latin >= 2 + HEADER_COST + 1000
    queue.put_nowait(_message({"X-Pad": "\U0001f600" * 1000}))  # four bytes a character
    assert pending._pending_size - latin >= 2 + HEADER_COST + 4000
    await queue.get()
    await queue.get()
    assert pending._pending_size == 0


@pytest.mark.asyncio
async def test_a_message_that_cannot_be_counted_is_refused_not_counted_for_good() -> None:
    pending = Pending(limit=1_000_000)
    count_whole_messages(pending)  # type: ignore[arg-type]
    with pytest.raises(asyncio.QueueFull):  # nats-py then gives the payload's count back
        pending._pending_queue.put_nowait(_message(Unreadable({"X": "v"})))
    assert pending._pending_size == 0
    assert pending._pending_queue.empty()


@pytest.mark.asyncio
async def test_a_header_value_that_is_no_string_is_refused() -> None:
    """nats-py 2.9 can leave an ``email.header.Header`` as a value (an inline status line):
    ``sys.getsizeof`` of it is 56 bytes whatever it holds, so it cannot be counted."""
    from email.header import Header

    pending = Pending(limit=1_000_000)
    count_whole_messages(pending)  # type: ignore[arg-type]
    with pytest.raises(asyncio.QueueFull):
        pending._pending_queue.put_nowait(_message({"X": Header("\u00e9" * 10_000)}))  # type: ignore[dict-item]
    assert pending._pending_size == 0
