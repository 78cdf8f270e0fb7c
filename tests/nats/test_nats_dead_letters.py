"""Failing durable messages on a real nats-server: delivered again after a growing delay, up to
``max_deliver`` deliveries, then moved to the name's dead-letter stream (and recorded in
``actorio.dead_letters``) while the other messages keep flowing; reading and replaying that
stream; a durable pool of two OS processes with a poison message among many good ones.

Re-run bigger: ``NATS_POISON_POOL_MESSAGES=5000 NATS_POISON_COUNT=20 pytest
tests/nats/test_nats_dead_letters.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from actorio import Actor, Backoff, ChildSpec, Message, dead_letters, handles
from actorio.nats import DeliveryLimitReached, Durable, Node, RemoteError, RemoteRef, StoredDeadLetter
from actorio.nats._publication import Receiver
from tests.nats_support.actors import Job, Recorder, Report, handled_ids
from tests.nats_support.processes import wait_until, worker

pytestmark = pytest.mark.asyncio(loop_scope="function")

POOL_MESSAGES = int(os.environ.get("NATS_POISON_POOL_MESSAGES", "300"))
POISON_COUNT = int(os.environ.get("NATS_POISON_COUNT", "1"))

FAST = Backoff(min_delay=0.05, max_delay=0.2)
"""Retry delays short enough for a test."""


class Attempts(Message[list[int]]):
    """Asked: the ids of the jobs whose handler ran, once per attempt, in order."""


class Picky(Actor[Job | Report | Attempts]):
    """Fails on the jobs in ``poison`` (until ``cured``); records every attempt and every success."""

    cured: ClassVar[bool] = False

    def __init__(self, poison: set[int], failures_before_success: int | None = None) -> None:
        super().__init__()
        self.poison = poison
        self.failures_before_success = failures_before_success
        self.attempts: list[int] = []
        self.attempt_times: list[float] = []
        self.done: list[int] = []

    @handles(Job)
    async def job(self, msg: Job) -> None:
        self.attempts.append(msg.id)
        self.attempt_times.append(asyncio.get_running_loop().time())
        if msg.id in self.poison and not Picky.cured:
            limit = self.failures_before_success
            if limit is None or self.attempts.count(msg.id) <= limit:
                raise ValueError(f"job {msg.id} is poison")
        self.done.append(msg.id)

    @handles(Report)
    async def report(self, msg: Report) -> list[int]:
        return list(self.done)

    @handles(Attempts)
    async def attempts_so_far(self, msg: Attempts) -> list[int]:
        return list(self.attempts)


@pytest.fixture(autouse=True)
def not_cured() -> None:
    Picky.cured = False


def job_id(letter: StoredDeadLetter) -> int:
    """The id of the `Job` a dead letter holds."""
    job = Recorder.protocol.validate(letter.data)
    assert isinstance(job, Job)
    return job.id


async def test_a_poison_message_is_retried_then_moved_while_the_others_flow(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    picky = Picky(poison={3})
    settings = Durable(redelivery_delay=5, max_deliver=3, retry_backoff=FAST)
    publication = await node.publish("picky", picky, durable=settings)
    jobs = node.ref("picky", Picky, durable=True)
    with caplog.at_level(logging.INFO):
        for n in range(10):
            await jobs.tell(Job(id=n))

        async def moved() -> bool:
            return len(await node.dead_letters("picky")) == 1

        await wait_until(moved, 20)
    # The good ones, each once; the poison one three times (max_deliver), never acknowledged.
    assert sorted(picky.done) == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert picky.attempts.count(3) == 3
    assert publication.active
    assert picky.running
    [letter] = await node.dead_letters("picky")
    assert isinstance(letter, StoredDeadLetter)
    assert (letter.name, letter.error_type, letter.error) == ("picky", "ValueError", "job 3 is poison")
    assert letter.deliveries == 3
    assert job_id(letter) == 3
    assert letter.stream.endswith("_DLQ")
    assert letter.stream_sequence == 4
    # Taken out of the name's stream: nothing is delivered again (its settlement comes after
    # the move: waited for, not read at once).
    js = node.client.jetstream()  # pyright: ignore[reportUnknownMemberType]

    async def taken_out() -> bool:
        return (await js.stream_info(letter.stream.removesuffix("_DLQ"))).state.messages == 0

    await wait_until(taken_out, 10)
    # Recorded: each failed delivery (by the actor), and the move.
    moves = [d for d in dead_letters.of(reason="failed") if isinstance(d.error, DeliveryLimitReached)]
    assert len(dead_letters.of(reason="failed")) == 4
    assert len(moves) == 1
    assert moves[0].message.id == 3
    assert isinstance(moves[0].error, DeliveryLimitReached)
    assert moves[0].error.deliveries == 3
    assert isinstance(moves[0].error.__cause__, ValueError)
    # No traceback logged for a failing message, and the move is said once.
    assert not [r for r in caplog.records if r.exc_info]
    moved_lines = [
        r for r in caplog.records if r.name == "actorio.nats" and "dead-letter stream" in r.message
    ]
    assert len(moved_lines) == 1
    assert moved_lines[0].levelno == logging.WARNING
    assert await jobs.ask(Report(), timeout=10) == picky.done  # still serving
    await picky.stop()


async def test_redeliveries_come_after_a_growing_delay(node: Node) -> None:
    picky = Picky(poison={0})
    settings = Durable(max_deliver=3, retry_backoff=Backoff(min_delay=0.3, max_delay=5.0, factor=2.0))
    await node.publish("growing", picky, durable=settings)
    await node.ref("growing", Picky, durable=True).tell(Job(id=0))

    async def moved() -> bool:
        return len(await node.dead_letters("growing")) == 1

    await wait_until(moved, 20)
    first, second, third = picky.attempt_times
    # The delays are the least the server waits; a busy machine only makes them longer.
    assert second - first >= 0.3 * 0.9
    assert third - second >= 0.6 * 0.9
    await picky.stop()


async def test_a_message_that_fails_a_few_times_then_succeeds_is_not_moved(node: Node) -> None:
    picky = Picky(poison={1}, failures_before_success=3)
    await node.publish("flaky-jobs", picky, durable=Durable(max_deliver=None, retry_backoff=FAST))
    jobs = node.ref("flaky-jobs", Picky, durable=True)
    await jobs.tell(Job(id=1))

    async def done() -> bool:
        return await jobs.ask(Report(), timeout=10) == [1]

    await wait_until(done, 20)
    assert picky.attempts == [1, 1, 1, 1]
    assert await node.dead_letters("flaky-jobs") == []
    await picky.stop()


async def test_an_ask_whose_handler_raises_is_answered_not_retried(node: Node) -> None:
    class Boom(Message[int]):
        pass

    class Asked(Actor[Boom]):
        calls = 0

        @handles(Boom)
        async def boom(self, msg: Boom) -> int:
            Asked.calls += 1
            raise ValueError("no")

    asked = Asked()
    await node.publish("asked", asked, durable=Durable(max_deliver=2, retry_backoff=FAST))
    with pytest.raises(RemoteError, match="ValueError: no"):
        await node.ref("asked", Asked, durable=True).ask(Boom(), timeout=10)
    # Acknowledged: the stream lets it go (a message given back would stay until moved).
    js = node.client.jetstream()  # pyright: ignore[reportUnknownMemberType]
    stream = await js.find_stream_name_by_subject("actorio.actor.asked")

    async def acknowledged() -> bool:
        return (await js.stream_info(stream)).state.messages == 0

    await wait_until(acknowledged, 10)
    assert Asked.calls == 1
    assert await node.dead_letters("asked") == []
    await asked.stop()


async def test_replay_stores_dead_letters_again(node: Node) -> None:
    picky = Picky(poison={1, 2})
    await node.publish("replayed", picky, durable=Durable(max_deliver=1, retry_backoff=FAST))
    jobs = node.ref("replayed", Picky, durable=True)
    for n in range(4):
        await jobs.tell(Job(id=n))

    async def both_moved() -> bool:
        return len(await node.dead_letters("replayed")) == 2

    await wait_until(both_moved, 20)
    letters = await node.dead_letters("replayed")
    assert [job_id(letter) for letter in letters] == [1, 2]
    assert len(await node.dead_letters("replayed", limit=1)) == 1
    Picky.cured = True
    # One chosen by its sequence, then the rest.
    assert await node.replay("replayed", [letters[1].sequence]) == 1
    assert [letter.sequence for letter in await node.dead_letters("replayed")] == [letters[0].sequence]
    assert await node.replay("replayed") == 1
    assert await node.dead_letters("replayed") == []

    async def all_done() -> bool:
        return sorted(await jobs.ask(Report(), timeout=10)) == [0, 1, 2, 3]

    await wait_until(all_done, 20)
    assert await node.replay("replayed") == 0
    await picky.stop()


async def test_a_replay_ends_at_the_letters_there_when_it_started(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replayed message that fails again at once is a new dead letter while the replay goes on:
    the replay reads one letter at a time, and stops at the last one there when it started (else
    it would replay the new ones, for ever)."""
    from actorio.nats._durable import Streams

    picky = Picky(poison=set())
    await node.publish("again", picky, durable=Durable(max_deliver=1, retry_backoff=FAST))
    await picky.stop()  # nothing handles what is replayed: only the dead-letter stream moves
    js = node.client.jetstream()
    for n in range(3):
        await js.publish("actorio.dlq.again", json.dumps(Recorder.protocol.dump(Job(id=n))).encode())
    store = Streams.store

    async def failing_again(self: Streams, *args: Any, **kwargs: Any) -> None:
        await store(self, *args, **kwargs)
        await js.publish("actorio.dlq.again", json.dumps(Recorder.protocol.dump(Job(id=100))).encode())

    monkeypatch.setattr(Streams, "store", failing_again)
    assert await asyncio.wait_for(node.replay("again"), 30) == 3
    assert [job_id(letter) for letter in await node.dead_letters("again")] == [100, 100, 100]


async def _moved_beside_a_decoy(
    node: Node, name: str, decoy_id: Callable[[str], str], *, copy: bool = False
) -> tuple[Picky, RemoteRef[Job | Report | Attempts], StoredDeadLetter]:
    """``name`` published durably; job 0 told (stream sequence 1), a decoy (job 99; with
    ``copy``, job 1's very bytes with the dead-letter headers of its move and a replay token of
    the decoy's choosing) stored in the dead-letter stream under ``decoy_id(stream)``, then the
    poison job 1 (sequence 2) stored by the same client: the actor, its reference, and job 1's
    dead letter once moved (not the decoy)."""
    picky = Picky(poison={1})
    await node.publish(name, picky, durable=Durable(max_deliver=1, retry_backoff=FAST))
    jobs = node.ref(name, Picky, durable=True)
    js = node.client.jetstream()
    await jobs.tell(Job(id=0))
    stream = await js.find_stream_name_by_subject(jobs.subject)
    poison = json.dumps(Recorder.protocol.dump(Job(id=1))).encode()
    headers = {"Nats-Msg-Id": decoy_id(stream)}
    if copy:
        chosen = {
            "Actorio-Dead-Stream": stream,
            "Actorio-Dead-Sequence": "2",
            "Actorio-Dead-Replay": "replay:x",
        }
        headers.update(chosen)
    decoy = poison if copy else Job(id=99).model_dump_json().encode()
    await js.publish(f"actorio.dlq.{name}", decoy, headers=headers)
    await js.publish(jobs.subject, poison)

    async def moved() -> bool:
        letters = await node.dead_letters(name)
        return any(each.stream_sequence == 2 and each.replay_id != "replay:x" for each in letters)

    await wait_until(moved, 20)
    letters = await node.dead_letters(name)
    [letter] = [each for each in letters if each.stream_sequence == 2 and each.replay_id != "replay:x"]
    assert job_id(letter) == 1
    return picky, jobs, letter


async def test_message_ids_stored_first_by_another_client_lose_no_dead_letter(node: Node) -> None:
    """A move to the dead-letter stream and a replay are each stored under a message id, so that a
    retry stores them once. Ids another client could work out (a stream and a sequence) let it
    store a decoy first: the real message was then a duplicate, dropped. Neither id can be
    worked out now; decoys under the old ones change nothing."""
    picky, jobs, letter = await _moved_beside_a_decoy(node, "decoyed", lambda stream: f"{stream}:2")
    js = node.client.jetstream()
    old_id = f"replay:{letter.stream}:{letter.sequence}"
    assert letter.replay_id.startswith("replay:")
    assert letter.replay_id != old_id
    forged = Job(id=666).model_dump_json().encode()
    await js.publish(jobs.subject, forged, headers={"Nats-Msg-Id": old_id})
    Picky.cured = True
    assert await node.replay("decoyed", [letter.sequence]) == 1

    async def replayed() -> bool:
        return 1 in await jobs.ask(Report(), timeout=10)

    await wait_until(replayed, 20)
    await picky.stop()


async def test_a_decoy_under_the_move_s_exact_id_loses_no_dead_letter(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The move's id holds the time the message was stored, which its sender knows to within a
    round trip. A decoy stored first under that exact id made the move a duplicate (the real
    message was lost, the decoy read as its dead letter, its replay token the decoy's). The move
    now reads what holds its id and, unless it holds the random replay token of this node's own
    earlier try, stores the message again under an id of its own."""
    from actorio.nats import _dead_letter_stream

    monkeypatch.setattr(_dead_letter_stream, "_stored_at", lambda msg: "guessed")
    for copy in (False, True):  # a decoy of its own, or a copy of the message with its own token
        name = f"guessed-{copy}"
        picky, _, letter = await _moved_beside_a_decoy(node, name, lambda s: f"{s}:2:guessed", copy=copy)
        assert len(await node.dead_letters(name)) == 2  # the decoy, and the real one beside it
        assert letter.replay_id != "replay:x"
        await picky.stop()


async def test_the_readme_snippet_reads_replays_and_drops(node: Node) -> None:
    """The steps of the NATS guide (docs/nats.md, where they are only defined), on three dead
    letters: one replayed by sequence, one dropped with nats-py, the rest replayed; then the
    stream emptied with nats-py."""
    picky = Picky(poison={0, 1, 2, 3})
    await node.publish("readme", picky, durable=Durable(max_deliver=1, retry_backoff=FAST))
    jobs = node.ref("readme", Picky, durable=True)
    for n in range(3):
        await jobs.tell(Job(id=n))

    async def three_moved() -> bool:
        return len(await node.dead_letters("readme")) == 3

    await wait_until(three_moved, 20)
    Picky.cured = True
    letters = await node.dead_letters("readme", limit=None)
    for letter in letters:
        assert (letter.error_type, letter.deliveries) == ("ValueError", 1)
        assert letter.failed_at.tzinfo is not None
    first, second, *rest = letters
    assert await node.replay("readme", [first.sequence]) == 1
    await node.client.jetstream().delete_msg(second.stream, second.sequence)  # pyright: ignore[reportUnknownMemberType]
    assert await node.replay("readme") == len(rest) == 1

    async def replayed_handled() -> bool:
        return sorted(await jobs.ask(Report(), timeout=10)) == [job_id(first), job_id(rest[0])]

    await wait_until(replayed_handled, 20)
    Picky.cured = False
    await jobs.tell(Job(id=3))
    await wait_until(lambda: one_left(node, "readme"), 20)
    await node.client.jetstream().purge_stream(letters[0].stream)  # pyright: ignore[reportUnknownMemberType]
    assert await node.dead_letters("readme") == []
    await picky.stop()


async def one_left(node: Node, name: str) -> bool:
    """True once ``name``'s dead-letter stream holds one message."""
    return len(await node.dead_letters(name)) == 1


async def test_dead_letters_of_a_name_that_is_not_durable(node: Node) -> None:
    with pytest.raises(ValueError, match="has no dead-letter stream"):
        await node.dead_letters("never-durable")
    with pytest.raises(ValueError, match="has no dead-letter stream"):
        await node.dead_letters("never-durable", limit=0)
    with pytest.raises(ValueError, match="has no dead-letter stream"):
        await node.replay("never-durable")
    with pytest.raises(ValueError, match="invalid actor name"):
        await node.dead_letters("bad name")


async def test_a_restarted_actor_gets_its_poison_message_moved_too(node: Node) -> None:
    """Published from a factory, the actor restarts after each failure (a growing delay); the
    failing message is still moved after max_deliver deliveries, and the others are handled once."""
    done: list[int] = []

    class Fragile(Actor[Job | Report]):
        @handles(Job)
        async def job(self, msg: Job) -> None:
            if msg.id == 2:
                raise ValueError("fragile")
            done.append(msg.id)

        @handles(Report)
        async def report(self, msg: Report) -> list[int]:
            return list(done)

    spec = ChildSpec(Fragile, backoff=Backoff(min_delay=0.01, max_delay=0.05))
    publication = await node.publish("fragile", spec, durable=Durable(max_deliver=3, retry_backoff=FAST))
    first = publication.actor
    jobs = node.ref("fragile", Fragile, durable=True)
    for n in range(6):
        await jobs.tell(Job(id=n))

    async def moved() -> bool:
        return len(await node.dead_letters("fragile")) == 1

    await wait_until(moved, 20)
    assert publication.actor is not first
    assert publication.active

    async def all_done() -> bool:
        return sorted(await jobs.ask(Report(), timeout=10)) == [0, 1, 3, 4, 5]

    await wait_until(all_done, 20)
    assert sorted(done) == [0, 1, 3, 4, 5]


async def test_an_ordered_name_holds_the_rest_until_the_poison_message_is_moved(node: Node) -> None:
    picky = Picky(poison={1})
    settings = Durable(ordered=True, max_deliver=2, retry_backoff=FAST)
    await node.publish("ordered-poison", picky, durable=settings)
    jobs = node.ref("ordered-poison", Picky, durable=True)
    for n in range(4):
        await jobs.tell(Job(id=n))

    async def all_done() -> bool:
        return len(picky.done) == 3

    await wait_until(all_done, 20)
    assert picky.attempts == [0, 1, 1, 2, 3]  # strict order: nothing overtook the failing message
    assert len(await node.dead_letters("ordered-poison")) == 1
    await picky.stop()


async def _delivered_to_a_process_that_dies_twice(node: Node, name: str) -> None:
    """The one message stored for the durable ``name`` (published with a redelivery delay of
    0.3 s, then unpublished) is fetched by a process that dies holding it, twice: it is never
    acknowledged, and delivered again after the delay."""
    js = node.client.jetstream()  # pyright: ignore[reportUnknownMemberType]
    stream = await js.find_stream_name_by_subject(f"actorio.actor.{name}")
    doomed = await js.pull_subscribe_bind(durable="actorio", stream=stream)
    for delivery in (1, 2):
        [held] = await doomed.fetch(1, timeout=5)
        assert held.metadata.num_delivered == delivery
    await doomed.unsubscribe()


async def test_a_message_delivered_too_often_without_an_outcome_is_moved_unhandled(node: Node) -> None:
    """Deliveries to processes that died holding a message count too: past twice max_deliver,
    it is moved without being handled (a message that kills its process would loop forever)."""
    picky = Picky(poison=set())
    publication = await node.publish("killer", picky, durable=Durable(redelivery_delay=0.3, max_deliver=1))
    await publication.unpublish()
    await node.ref("killer", Picky, durable=True).tell(Job(id=9))
    await _delivered_to_a_process_that_dies_twice(node, "killer")
    await node.publish("killer", picky, durable=Durable(redelivery_delay=0.3, max_deliver=1))

    async def moved() -> bool:
        return len(await node.dead_letters("killer")) == 1

    await wait_until(moved, 20)
    [letter] = await node.dead_letters("killer")
    assert letter.error_type == "DeliveryLimitReached"
    assert letter.deliveries == 3
    assert picky.attempts == []  # never handled
    await picky.stop()


async def test_an_ask_moved_unhandled_is_answered_with_the_reason(node: Node) -> None:
    """A stored ask moved to the dead-letter stream without being handled (delivered too often
    to processes that died holding it) is answered with the error: its asker does not wait for
    its timeout."""
    picky = Picky(poison=set())
    durable = Durable(redelivery_delay=0.3, max_deliver=1)
    publication = await node.publish("doomed-ask", picky, durable=durable)
    await publication.unpublish()
    asking = asyncio.ensure_future(node.ref("doomed-ask", Picky, durable=True).ask(Attempts(), timeout=60))
    await _delivered_to_a_process_that_dies_twice(node, "doomed-ask")
    assert not asking.done()
    await node.publish("doomed-ask", picky, durable=durable)
    with pytest.raises(RemoteError, match="DeliveryLimitReached") as raised:
        await asyncio.wait_for(asking, 20)  # well before the ask's own timeout
    assert "delivered 3 times without an outcome" in str(raised.value)
    [letter] = await node.dead_letters("doomed-ask")
    assert letter.error_type == "DeliveryLimitReached"
    assert picky.attempts == []  # never handled
    await picky.stop()


async def test_an_ask_the_node_fails_to_deliver_is_answered(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stored ask whose delivery fails in the node itself (not in its handler) is moved at
    once, and its asker is told why."""

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the node could not deliver it")

    picky = Picky(poison=set())
    await node.publish("undeliverable", picky, durable=Durable(max_deliver=3, retry_backoff=FAST))
    monkeypatch.setattr(Receiver, "validate", broken)
    with pytest.raises(RemoteError, match="the node could not deliver it"):
        await node.ref("undeliverable", Picky, durable=True).ask(Attempts(), timeout=20)
    [letter] = await node.dead_letters("undeliverable")
    assert letter.error_type == "RuntimeError"
    assert picky.attempts == []
    await picky.stop()


async def test_durable_settings_of_failures_are_checked(node: Node, tmp_path: Path) -> None:
    assert Durable().max_deliver == 5
    with pytest.raises(ValueError, match="dead_letter_limit"):
        Durable(dead_letter_limit=0)
    with pytest.raises(ValueError, match="max_deliver"):
        Durable(max_deliver=0)


async def test_the_pool_is_told_when_max_deliver_differs(
    node: Node, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = Recorder(tmp_path / "a.txt"), Recorder(tmp_path / "b.txt")
    await node.publish("limits", first, durable=Durable(max_deliver=3))
    with caplog.at_level("WARNING", logger="actorio.nats"):
        await node.publish("limits", second, durable=Durable(max_deliver=4))
    assert "durable 'limits' published with other settings: max_deliver 3 -> 4" in caplog.text
    await first.stop()
    await second.stop()


async def test_failure_logs_are_rate_limited(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    picky = Picky(poison=set(range(30)))
    await node.publish("noisy", picky, durable=Durable(max_deliver=2, retry_backoff=FAST))
    jobs = node.ref("noisy", Picky, durable=True)
    with caplog.at_level(logging.INFO, logger="actorio.nats"):
        for n in range(30):
            await jobs.tell(Job(id=n))

        async def all_moved() -> bool:
            return len(await node.dead_letters("noisy")) == 30

        await wait_until(all_moved, 30)
    lines = [r for r in caplog.records if r.name == "actorio.nats"]
    assert len(lines) <= 10  # 60 failures and 30 moves: the first ten lines of the minute
    assert not [r for r in caplog.records if r.exc_info]
    await picky.stop()


@pytest.mark.timeout(120)
async def test_a_poison_message_does_not_stop_a_durable_pool(
    nats_url: str, node: Node, tmp_path: Path
) -> None:
    """Two worker processes share a durable name; among many good jobs, poison ones fail on every
    delivery. Every good job is handled exactly once, each poison job lands in the dead-letter
    stream after max_deliver deliveries, and both workers go on serving."""
    count, max_deliver = POOL_MESSAGES, 3
    poison = [count // 3 + k * (count // (2 * POISON_COUNT)) for k in range(POISON_COUNT)]
    good = [n for n in range(count) if n not in poison]
    files = [tmp_path / "a.txt", tmp_path / "b.txt"]
    common = ("--url", nats_url, "--mode", "recorder", "--name", "pool-poison", "--redelivery", "30")
    failing: tuple[str, ...] = ("--max-deliver", str(max_deliver), "--retry", "0.05")
    failing += tuple(arg for n in poison for arg in ("--poison", str(n)))
    async with (
        worker(*common, *failing, "--record", str(files[0])) as first,
        worker(*common, *failing, "--record", str(files[1])) as second,
    ):
        jobs = node.ref("pool-poison", Recorder, durable=True)
        for n in range(count):
            await jobs.tell(Job(id=n))

        async def settled() -> bool:
            handled = sum(len(handled_ids(file)) for file in files)
            moved = await node.dead_letters("pool-poison", limit=None)
            return handled >= len(good) and len(moved) == len(poison)

        await wait_until(settled, 60, interval=0.05)
        handled = handled_ids(files[0]) + handled_ids(files[1])
        assert sorted(handled) == good  # each good one once
        assert all(handled_ids(file) for file in files)  # both took part
        failures = handled_ids(files[0], "fail") + handled_ids(files[1], "fail")
        assert sorted(failures) == sorted(poison * max_deliver)
        letters = await node.dead_letters("pool-poison", limit=None)
        assert sorted(job_id(letter) for letter in letters) == poison
        assert all(
            letter.deliveries == max_deliver and letter.error_type == "ValueError" for letter in letters
        )
        # Still serving: later jobs are handled, by live workers.
        for n in range(count, count + 20):
            await jobs.tell(Job(id=n))

        async def later_handled() -> bool:
            return sum(len(handled_ids(file)) for file in files) >= len(good) + 20

        await wait_until(later_handled, 30, interval=0.05)
        assert first.process.returncode is None
        assert second.process.returncode is None


async def test_the_time_a_message_was_stored_is_read_from_its_acknowledgement_subject() -> None:
    """The move's id holds it: the same on every delivery, in any time zone and nats-py version."""
    from nats.aio.msg import Msg

    from actorio.nats._dead_letter_stream import _stored_at  # pyright: ignore[reportPrivateUsage]

    def stored(reply: str) -> str:
        return _stored_at(Msg(None, reply=reply))  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    assert stored("$JS.ACK.S.c.2.5.7.1796540929437294141.0") == "1796540929437294141"
    assert stored("$JS.ACK.hub.ACCHASH.S.c.2.5.7.1796540929437294141.0.tok") == "1796540929437294141"
    assert stored("") == ""


async def test_a_message_the_dead_letter_headers_would_make_too_large_is_cut_to_fit(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dead-letter headers add some hundred bytes to a stored message: one that fitted the
    server's max_payload (or JetStream's 64 KiB of headers) might no longer, and the server then
    closed the connection for good, or refused the move forever. The move cuts the payload, or
    leaves out the message's own headers, and says so (`StoredDeadLetter.cut`); a replay leaves
    it. Also when a decoy holds the move's id, so that it is stored under its longer second id,
    and stored once however often this node retries."""
    from nats.js.api import ConsumerConfig

    from actorio.nats import _dead_letter_stream
    from actorio.nats._dead_letter_stream import DeadLetterStreams

    monkeypatch.setattr(_dead_letter_stream, "_stored_at", lambda msg: "guessed")
    nc = node.client
    js = nc.jetstream()
    await js.add_stream(name="CUTS", subjects=["cuts.in"])
    big = b"x" * (nc.max_payload - 100)
    await js.publish("cuts.in", big)
    await js.publish("cuts.in", b"{}", headers={f"H{n:02}": "v" * 645 for n in range(100)})  # 65.2 KB
    pull = await js.pull_subscribe("cuts.in", durable="cuts", stream="CUTS", config=ConsumerConfig())
    msgs = await pull.fetch(2, timeout=10)
    streams = DeadLetterStreams(js, prefix="cutting", timeout=5.0, max_payload=lambda: nc.max_payload)
    await streams.set_up("cuts", "CUTS", limit=None, dedupe_window=60.0)
    await js.publish("cutting.dlq.cuts", b"decoy", headers={"Nats-Msg-Id": "CUTS:1:guessed"})
    for _ in range(2):  # a retry by this node stores nothing more
        for msg in msgs:
            assert await streams.move(msg, "cuts", 1, "ValueError", "too big to handle")
    decoy, letter, headless = await streams.read("cuts", "CUTS", None)
    assert decoy.data == b"decoy"
    assert letter.cut == len(big)
    assert 0 < len(letter.data) < len(big)
    assert big.startswith(letter.data)
    assert (headless.data, headless.headers) == (b"{}", {})
    assert headless.cut > 64_000
    assert not nc.is_closed

    async def never(data: bytes, headers: object, msg_id: str) -> None:
        raise AssertionError("a cut letter is not replayed")

    assert await streams.replay("cuts", "CUTS", [letter.sequence, headless.sequence], never) == 0
    assert len(await streams.read("cuts", "CUTS", None)) == 3
    await js.delete_stream("CUTS")
    await js.delete_stream("CUTS_DLQ")


async def test_a_message_its_headers_take_past_max_payload_is_refused_and_the_connection_kept(
    node: Node,
) -> None:
    """nats-py checks a message's payload against the server's max_payload, not its headers too:
    the server closed the connection for good on such a message (a durable tell near the limit,
    whose message id is a header). The node's client refuses it before sending."""
    import nats.errors

    nc = node.client
    with pytest.raises(nats.errors.MaxPayloadError, match=r"with the headers \(\d+ of payload\)"):
        await nc.publish("anywhere", b"x" * (nc.max_payload - 10), headers={"Big": "y" * 100})
    await nc.flush(timeout=5)
    assert not nc.is_closed
    await nc.publish("anywhere", b"small", headers={"Small": "z"})
    await nc.flush(timeout=5)


async def test_own_headers_too_large_for_a_small_max_payload_are_left_out(tmp_path: Path) -> None:
    """On a server whose max_payload is below JetStream's 64 KiB of headers, a stored message
    whose own headers leave no room for the dead-letter ones is moved without them (it was
    refused on every try, given back and tried again without end)."""
    from nats.js.api import ConsumerConfig

    from actorio.nats import LocalServer
    from actorio.nats._dead_letter_stream import DeadLetterStreams

    config = tmp_path / "small.conf"
    config.write_text("max_payload: 32768\n")
    with LocalServer(config=config) as server:
        async with await Node.connect(server.url) as small:
            nc = small.client
            js = nc.jetstream()
            await js.add_stream(name="SMALL", subjects=["small.in"])
            for size in (30_000, 32_000):
                await js.publish("small.in", b"x" * 10, headers={"X-Big": "a" * size})
            pull = await js.pull_subscribe("small.in", durable="c", stream="SMALL", config=ConsumerConfig())
            msgs = await pull.fetch(2, timeout=10)
            streams = DeadLetterStreams(js, prefix="small", timeout=5.0, max_payload=lambda: nc.max_payload)
            await streams.set_up("small", "SMALL", limit=None, dedupe_window=60.0)
            for msg in msgs:
                assert await streams.move(msg, "small", 1, "ValueError", "why " * 200)
            kept, headless = await streams.read("small", "SMALL", None)
            assert (kept.cut, len(kept.headers["X-Big"])) == (0, 30_000)
            assert (headless.headers, headless.data) == ({}, b"x" * 10)
            assert headless.cut > 32_000
            assert not nc.is_closed


async def test_a_move_returns_a_letter_of_its_own_owner_that_is_there(node: Node) -> None:
    """Two activations (owners) moving one message never share a letter, so that one undoing
    its move (`forget`, past its lease) leaves the other's; and a move made again after its own
    letters were undone stores a letter that is there (the second id's duplicate was taken for
    a stored letter, and the move counted as done with nothing stored)."""
    from nats.js.api import ConsumerConfig

    from actorio.nats._dead_letter_stream import DeadLetterStreams

    nc = node.client
    js = nc.jetstream()
    await js.add_stream(name="OWNERS", subjects=["owners.in"])
    await js.publish("owners.in", b"{}")
    pull = await js.pull_subscribe("owners.in", durable="c", stream="OWNERS", config=ConsumerConfig())
    [msg] = await pull.fetch(1, timeout=10)
    streams = DeadLetterStreams(js, prefix="owners", timeout=5.0, max_payload=lambda: nc.max_payload)
    await streams.set_up("owners", "OWNERS", limit=None, dedupe_window=60.0)

    async def stored() -> list[int]:
        return [letter.sequence for letter in await streams.read("owners", "OWNERS", None)]

    old = await streams.move(msg, "owners", 1, "E", "why", owner="1")
    new = await streams.move(msg, "owners", 1, "E", "why", owner="2")
    assert 0 < old != new > 0
    await streams.forget("OWNERS", old)  # the old owner, fenced, undoes its own
    assert await stored() == [new]
    for _ in range(3):  # undone, made again: each time a letter that is there
        await streams.forget("OWNERS", (await stored())[0])
        again = await streams.move(msg, "owners", 1, "E", "why", owner="2")
        assert await stored() == [again]
    await js.delete_stream("OWNERS")
    await js.delete_stream("OWNERS_DLQ")
