"""`JetStreamJournal.persistence_ids` reads every page of the server's listings (a listing holds
at most 256 streams, a stream's info at most 100,000 subjects), skips a stream deleted while it
lists, and takes no other journal's streams or buckets for its own, whose prefix begins as its
own."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import KeyValueConfig

from actorio.nats import LocalServer
from actorio.persistence import EventData, JetStreamJournal, PersistenceError, PersistenceId

from .journals import unique_prefix

pytestmark = pytest.mark.asyncio

ACCOUNT = PersistenceId("account", "a")
EVENT = [EventData("E", 1, b"{}")]
LIST, INFO = "$JS.API.STREAM.LIST", "$JS.API.STREAM.INFO."


def _serve(monkeypatch: pytest.MonkeyPatch, journal: JetStreamJournal, change: Any) -> None:
    """Pass the journal's requests through ``change(subject, answer, before)``: called before the
    request with ``answer`` None and ``before`` True, and after with the server's answer
    (a dict, which it may change) for the stream listing and stream infos."""
    real = journal.client.request

    async def request(subject: str, *args: Any, **kwargs: Any) -> Msg:
        listing = subject == LIST or subject.startswith(INFO)
        if listing:
            await change(subject, None, True)
        reply = await real(subject, *args, **kwargs)
        if listing:
            answer = json.loads(reply.data)
            await change(subject, answer, False)
            reply.data = json.dumps(answer).encode()
        return reply

    monkeypatch.setattr(journal.client, "request", request)


def small_pages(size: int) -> Any:
    """A server whose pages hold ``size`` streams or subjects (the server sorts what it pages)."""

    async def change(subject: str, answer: dict[str, Any] | None, before: bool) -> None:
        if answer is None:
            return
        answer["limit"] = size
        if isinstance(answer.get("streams"), list):
            answer["streams"] = answer["streams"][:size]
        state = answer.get("state") or {}
        if state.get("subjects"):
            state["subjects"] = dict(sorted(state["subjects"].items())[:size])

    return change


async def test_persistence_ids_reads_every_page_of_streams_and_subjects(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nats-py reads the first page only: the ids on later pages were silently left out."""
    expected = [PersistenceId(t, f"i{n}") for t in ("a", "b", "c") for n in range(5 if t == "a" else 1)]
    async with await JetStreamJournal.connect(nats_url, prefix=unique_prefix()) as journal:
        for persistence_id in expected:
            await journal.append(persistence_id, 0, EVENT)
        await journal.save_state(PersistenceId("d", "x"), 0, 1, b"{}")
        expected.append(PersistenceId("d", "x"))
        assert await journal.persistence_ids() == expected
        _serve(monkeypatch, journal, small_pages(2))
        assert await journal.persistence_ids() == expected


async def test_a_server_whose_pages_stop_short_is_an_error_not_a_partial_list(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with await JetStreamJournal.connect(nats_url, prefix=unique_prefix()) as journal:
        for n in range(3):
            await journal.append(PersistenceId("a", f"i{n}"), 0, EVENT)

        pages = small_pages(2)

        async def stop_short(subject: str, answer: dict[str, Any] | None, before: bool) -> None:
            await pages(subject, answer, before)
            if answer is not None and subject.startswith(INFO) and answer.get("offset"):
                answer["state"]["subjects"] = {}

        _serve(monkeypatch, journal, stop_short)
        with pytest.raises(PersistenceError, match=r"STREAM.INFO.*: the server's pages stopped at 2 of 3"):
            await journal.persistence_ids()


@pytest.mark.skipif(
    not os.environ.get("ACTORIO_JETSTREAM_LARGE_LISTINGS"), reason="slow: 300 streams and 100,001 subjects"
)
async def test_persistence_ids_of_more_streams_and_subjects_than_one_page_holds() -> None:
    with LocalServer() as server:
        async with await JetStreamJournal.connect(server.url, prefix="many") as journal:
            for n in range(300):
                await journal.append(PersistenceId(f"t{n}", "x"), 0, EVENT)
            assert len(await journal.persistence_ids()) == 300
            await journal.append(PersistenceId("big", "first"), 0, EVENT)
            for n in range(100_000):  # valid ids, as far as listing them goes
                await journal.client.publish(f"many.events.big.i{n}", b"")
            await journal.client.flush()
            stream = journal.client.jetstream()
            for _ in range(100):
                if (await stream.stream_info("MANY_EVENTS_big")).state.messages == 100_001:
                    break
                await asyncio.sleep(0.05)  # the server stores what was published without a reply
            assert len(await journal.persistence_ids()) == 100_301


async def test_a_stream_deleted_while_ids_are_listed_is_skipped(
    nats_url: str, raw: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was nats-py's raw NotFoundError."""
    async with await JetStreamJournal.connect(nats_url, prefix=unique_prefix()) as journal:
        await journal.append(ACCOUNT, 0, EVENT)
        await journal.save_state(PersistenceId("other", "o"), 0, 1, b"{}")
        doomed = f"KV_{journal.prefix}_states_other"

        async def delete_first(subject: str, answer: dict[str, Any] | None, before: bool) -> None:
            if before and subject == INFO + doomed:
                await raw.jetstream().delete_stream(doomed)

        _serve(monkeypatch, journal, delete_first)
        assert await journal.persistence_ids() == [ACCOUNT]


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


async def test_another_journals_events_stream_is_not_taken_for_its_own(nats_url: str, prefix: str) -> None:
    """``<P>_EVENTS_EVENTS_account`` is journal ``p_events``'s stream of ``account``, and by its
    name journal ``p``'s of ``EVENTS_account``: its subjects say whose it is (it was
    `JournalCorrupted` for ``p``)."""
    async with (
        await JetStreamJournal.connect(nats_url, prefix=prefix) as journal,
        await JetStreamJournal.connect(nats_url, prefix=f"{prefix}_events") as other,
        await JetStreamJournal.connect(nats_url, prefix=prefix.upper()) as upper,
    ):
        await journal.append(ACCOUNT, 0, EVENT)
        await other.append(PersistenceId("account", "b"), 0, EVENT)
        await upper.append(PersistenceId("account2", "c"), 0, EVENT)
        assert await journal.persistence_ids() == [ACCOUNT]
        assert await other.persistence_ids() == [PersistenceId("account", "b")]
        assert await upper.persistence_ids() == [PersistenceId("account2", "c")]


async def test_another_journals_bucket_is_neither_listed_nor_written(nats_url: str, prefix: str) -> None:
    """``<p>_states_states_account`` is journal ``p_states``'s bucket of ``account`` states, and
    by its name journal ``p``'s of ``states_account``: its description says whose it is (``p``
    listed ``states_account/a`` as its own, and would have written to it)."""
    async with (
        await JetStreamJournal.connect(nats_url, prefix=prefix) as journal,
        await JetStreamJournal.connect(nats_url, prefix=f"{prefix}_states") as other,
    ):
        await other.save_state(ACCOUNT, 0, 1, b"{}")
        assert await journal.persistence_ids() == []
        with pytest.raises(PersistenceError, match=f"{prefix}_states_states_account: the bucket is another"):
            await journal.save_state(PersistenceId("states_account", "a"), 0, 1, b"{}")
        assert await other.persistence_ids() == [ACCOUNT]


async def test_a_bucket_without_description_is_taken_by_its_name(
    nats_url: str, raw: Client, prefix: str
) -> None:
    """As made beforehand, or by a journal of an earlier version."""
    bucket = await raw.jetstream().create_key_value(KeyValueConfig(bucket=f"{prefix}_states_account"))
    await bucket.put("a", b"1\n{}")
    async with await JetStreamJournal.connect(nats_url, prefix=prefix) as journal:
        assert await journal.persistence_ids() == [ACCOUNT]
        state = await journal.load_state(ACCOUNT)
        assert state is not None
        assert state.payload == b"{}"


@pytest.mark.asyncio
async def test_a_stream_deleted_between_two_pages_starts_the_listing_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server pages a sorted list by offset: a stream deleted before the next page's start
    shifted the rest, and the first stream of that page was in neither page."""
    from actorio.persistence import _jetstream_ids

    names = ["A", "B", "C", "D", "E"]
    pages: list[int] = []

    async def listing(client: Any, subject: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        offset = body["offset"]
        pages.append(offset)
        if len(pages) == 2:
            names.remove("A")  # another application's stream, deleted between two pages
        page = names[offset : offset + 2]
        return {"total": len(names), "streams": [{"config": {"name": name}} for name in page]}

    monkeypatch.setattr(_jetstream_ids, "_request", listing)
    listed = await _jetstream_ids.streams(None, 1.0)  # type: ignore[arg-type]
    assert [config["name"] for config in listed] == ["B", "C", "D", "E"]
    assert pages[:3] == [0, 1, 0]  # the second page did not follow on: listed again

    def changing(client: Any, subject: str, body: dict[str, Any], timeout: float) -> Any:
        names.insert(0, f"new{len(names)}")  # made at every page: never a listing that follows on
        return listing(client, subject, body, timeout)

    monkeypatch.setattr(_jetstream_ids, "_request", changing)
    with pytest.raises(PersistenceError, match="the streams kept changing while listed"):
        await _jetstream_ids.streams(None, 1.0)  # type: ignore[arg-type]
