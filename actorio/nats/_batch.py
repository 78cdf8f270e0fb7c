"""Batches: several tells to one subject travelling as one NATS message.

Owns the batch's wire form and its limits, for both ends:

- the outbox joins the wire forms of tells queued together for one subject (``tell_nowait``
  bursts) with newlines (compact JSON has none of its own) into one body, with an
  ``Actorio-Batch: <count>`` header (and no other: a tell with a sender or a trace context
  leaves alone): one publish, one delivery and one callback for up to
  `MAX_BATCH` tells, instead of one each. Only what is already queued is joined: a batch never
  waits for more;
- the receiver splits a batch back into its pieces (`pieces`), each validated and told as a
  message of its own. A batch is data from the wire: a count that is not a number, above
  `MAX_BATCH`, or not the number of pieces, or an ``Actorio-Sender`` header (which no piece
  would get, and no check would see), refuses the whole batch before anything is split.
"""

from __future__ import annotations

from collections.abc import Mapping

from .. import PayloadError
from ._codec import SENDER

__all__ = ["BATCH", "MAX_BATCH", "MAX_BATCH_BYTES", "batch_headers", "joinable", "pieces", "tells_of"]

BATCH = "Actorio-Batch"
"""A batch's header: how many tells its body holds, one wire form per line."""
MAX_BATCH = 256
"""The most tells one batch holds (sent and accepted)."""
MAX_BATCH_BYTES = 64 * 1024
"""The most bytes of wire forms one batch joins (within the server's ``max_payload`` too)."""

_HEADERS = {count: {BATCH: str(count)} for count in range(2, MAX_BATCH + 1)}


def joinable(body: bytes) -> bool:
    """Whether ``body`` can be a line of a batch: a raw payload may hold a newline of its own."""
    return b"\n" not in body


def batch_headers(count: int) -> dict[str, str]:
    """The headers of a batch of ``count`` (2 to `MAX_BATCH`) tells."""
    return _HEADERS[count]


def pieces(data: bytes, headers: Mapping[str, str]) -> list[bytes] | PayloadError:
    """The wire forms a batch holds, or why it is refused as a whole (a batch carrying a sender
    too: tells with one leave alone)."""
    if SENDER in headers:
        return PayloadError(
            (), f"a batch of tells carries no {SENDER}: tells with a sender travel alone", "invalid_batch"
        )
    declared = headers.get(BATCH, "")
    if not (declared.isascii() and declared.isdigit() and len(declared) <= 4):
        return PayloadError((), f"{BATCH} is not a count of messages: {declared[:20]!r}", "invalid_batch")
    count = int(declared)
    if not 2 <= count <= MAX_BATCH:
        return PayloadError((), f"a batch holds 2 to {MAX_BATCH} messages, not {count}", "invalid_batch")
    lines = data.count(b"\n") + 1  # counted before anything is split: no allocation for a lie
    if lines != count:
        return PayloadError(
            (), f"the batch declares {count} messages and holds {lines} lines", "invalid_batch"
        )
    return data.split(b"\n")


def tells_of(data: bytes, headers: Mapping[str, str] | None) -> list[bytes]:
    """The payloads of the tells a NATS message holds, for recording them as dead letters: each
    piece of a batch, else the message's payload whole (one tell, or a batch refused whole)."""
    found = pieces(data, headers) if headers and BATCH in headers else None
    return found if isinstance(found, list) else [data]
