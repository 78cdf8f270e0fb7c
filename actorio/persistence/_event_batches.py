"""The JetStream journal's message format: one message holds one append's batch of events.

``AE1``, the first event's sequence (8 bytes), the count (4), the time written (a double), then
per event its wire name's length (2), its version (4), its payload's length (4), the name and the
payload. A message is written whole or not at all, so a batch is all or nothing.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from ._errors import JournalCorrupted
from ._records import EventData, EventRecord, PersistenceId

__all__ = ["batch_header", "decode_batch", "encode_batch"]

_MAGIC = b"AE1"
_HEAD = struct.Struct(">3sQId")  # magic, first sequence, count, written
_EVENT = struct.Struct(">HII")  # name length, version, payload length


def encode_batch(first: int, events: Sequence[EventData], written: float) -> bytes:
    """One message holding a batch of events: the unit that JetStream writes atomically."""
    parts = [_HEAD.pack(_MAGIC, first, len(events), written)]
    for event in events:
        name = event.name.encode()
        parts += (_EVENT.pack(len(name), event.version, len(event.payload)), name, event.payload)
    return b"".join(parts)


def decode_batch(persistence_id: PersistenceId, data: bytes) -> list[EventRecord]:
    """The events of one message; `JournalCorrupted` for anything that is not such a message."""
    try:
        magic, first, count, written = _HEAD.unpack_from(data)
        if magic != _MAGIC:
            raise ValueError("not an actorio event batch")
        offset = _HEAD.size
        records: list[EventRecord] = []
        for index in range(count):
            name_length, version, payload_length = _EVENT.unpack_from(data, offset)
            offset += _EVENT.size
            name = data[offset : offset + name_length].decode()
            offset += name_length
            payload = data[offset : offset + payload_length]
            offset += payload_length
            if len(payload) != payload_length:
                raise ValueError("truncated")
            records.append(EventRecord(persistence_id, first + index, name, version, payload, written))
        if offset != len(data):
            raise ValueError("trailing bytes")
    except (struct.error, ValueError) as error:
        raise JournalCorrupted(
            f"{persistence_id}: a stored message is not an event batch ({error})"
        ) from None
    return records


def batch_header(persistence_id: PersistenceId, data: bytes) -> tuple[int, int]:
    """(first sequence, count) of a batch: at least one event, numbered from 1 or later."""
    try:
        magic, first, count, _ = _HEAD.unpack_from(data)
    except struct.error:
        magic, first, count = b"", 0, 0
    if magic != _MAGIC or first < 1 or count < 1:
        raise JournalCorrupted(f"{persistence_id}: the last stored message is not an event batch")
    return first, count
