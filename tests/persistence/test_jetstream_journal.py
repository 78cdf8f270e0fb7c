"""What is particular to the JetStream journal: what it reads back from the server is checked
before it is believed (a message that is not an event batch is a clear error)."""

from __future__ import annotations

import pytest

from actorio.persistence import EventData, JournalCorrupted, PersistenceId
from actorio.persistence._jetstream import decode_batch, encode_batch

ACCOUNT = PersistenceId("account", "a")


def test_a_batch_reads_back_as_it_was_written() -> None:
    events = [EventData("Deposited", 2, b'{"amount":1}'), EventData("Withdrawn", 1, b"{}")]
    records = decode_batch(ACCOUNT, encode_batch(7, events, 12.5))
    assert [(r.sequence, r.name, r.version, r.payload, r.written) for r in records] == [
        (7, "Deposited", 2, b'{"amount":1}', 12.5),
        (8, "Withdrawn", 1, b"{}", 12.5),
    ]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a batch at all, but long enough to unpack",
        encode_batch(1, [EventData("E", 1, b"{}")], 0.0)[:-1],  # truncated
        encode_batch(1, [EventData("E", 1, b"{}")], 0.0) + b"x",  # trailing bytes
        encode_batch(1, [EventData("E", 1, b"{}")], 0.0).replace(b"AE1", b"XX1"),
        encode_batch(1, [EventData("\u00e9", 1, b"{}")], 0.0).replace("\u00e9".encode(), b"\xff\xfe"),
    ],
)
def test_anything_else_is_reported_as_corrupted(data: bytes) -> None:
    with pytest.raises(JournalCorrupted, match="account/a: a stored message is not an event batch"):
        decode_batch(ACCOUNT, data)
