"""Dead letters cost bounded memory and log space whatever the wire sends: a raw payload is kept
as a preview, an invalid payload's error keeps neither the payload nor its traceback, and log
lines are cut."""

from __future__ import annotations

import gc
import json
import logging
import tracemalloc
from collections.abc import Iterator

import pytest

from actorio import Actor, InvalidPayload, Message, PayloadPreview, dead_letters, handles
from actorio._dead_letters import LOG_CHARS, PREVIEW_BYTES


class Greet(Message):
    name: str


class Greeter(Actor[Greet]):
    @handles(Greet)
    async def greet(self, msg: Greet) -> None:
        pass


@pytest.fixture(autouse=True)
def clean_dead_letters() -> Iterator[None]:
    dead_letters.clear()
    yield
    dead_letters.clear()


def _refused(payload: bytes) -> InvalidPayload:
    with pytest.raises(InvalidPayload) as caught:
        Greeter.protocol.validate(payload)
    return caught.value


def test_a_large_raw_payload_is_kept_as_a_preview_with_its_size() -> None:
    payload = b'{"type":"Greet","data":{"name":' + b"1" * 1_000_000 + b"}}"
    letter = dead_letters.record(payload, "greeter", "invalid", _refused(payload))
    assert isinstance(letter.message, PayloadPreview)
    assert letter.message.size == len(payload)
    assert letter.message.head == payload[:PREVIEW_BYTES]
    text = "é" * 1000  # 2,000 bytes in UTF-8
    assert dead_letters.record(text, "greeter", "invalid").message == PayloadPreview(
        text.encode()[:PREVIEW_BYTES], 2000
    )


def test_a_small_raw_payload_is_kept_as_it_is() -> None:
    assert dead_letters.record(b'{"type":"Nope"}', "greeter", "invalid").message == b'{"type":"Nope"}'


def test_an_invalid_payload_error_quotes_the_payload_within_bounds() -> None:
    """A 600 KB ``type`` string used to make a 1.2 MB error message and log line."""
    error = _refused(json.dumps({"type": "x" * 600_000, "data": {}}).encode())
    assert error.errors[0].kind == "unknown_type"
    assert len(str(error)) < 1_000
    many = json.dumps({"type": "Greet", "data": {"name": 1, **{f"extra{i}": i for i in range(500)}}})
    error = _refused(many.encode())
    assert len(error.errors) == 21
    assert error.errors[-1].kind == "too_many_problems"
    assert "more problems not listed" in error.errors[-1].message
    long_id = json.dumps({"type": "Nope", "id": "i" * 10_000})
    assert _refused(long_id.encode()).id is None
    assert _refused(json.dumps({"type": "Nope", "id": "short"}).encode()).id == "short"


def test_log_lines_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    payload = b'{"type":"' + b"y" * 600_000 + b'"}'
    with caplog.at_level(logging.INFO, logger="actorio.dead_letters"):
        dead_letters.record(payload, "greeter", "invalid", _refused(payload))
        dead_letters.record(Greet(name="z" * 100_000), "greeter", "failed", ValueError("w" * 100_000))
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2
    assert all(len(line) < 3 * LOG_CHARS for line in lines)


def test_a_thousand_invalid_payloads_cost_bounded_memory() -> None:
    """Each record used to keep the raw payload and the error's traceback, whose frames held it
    again (3 MB a record for a 1 MB payload). Now: a preview and a bare error."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(1000):
            payload = b'{"type":"Greet","data":{"name":%d' % i + b"1" * 100_000 + b"}}"  # each its own
            dead_letters.record(payload, "greeter", "invalid", _refused(payload))
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert dead_letters.counts["invalid"] == 1000
    # 1,000 records of a 1 KB preview and a small error: a few MB at most, not 100 MB and more.
    assert grown < 10_000_000, grown
