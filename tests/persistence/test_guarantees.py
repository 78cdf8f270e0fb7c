"""The guarantees, with real processes: an acknowledged event survives ``kill -9`` of its process
and is replayed; of two processes writing one persistence id, the one that is late gets a clear
error and writes nothing; a process that dies in the middle of a multi-event persist leaves all of
the events or none; a reminder stored by a process killed before it fired fires after the
restart. On SQLite and on JetStream (a real nats-server)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from actorio.persistence import JetStreamJournal, Journal, PersistenceId, SqliteJournal, WriterConflict

from .programs.counter_writer import Total
from .programs.reminding import Alarm
from .support import ROOT, Account, Deposit, Deposited, GetBalance

PROGRAMS = Path(__file__).resolve().parent / "programs"
BOUND = 30.0
"""Seconds for a process to print its next line (processes start slowly on a busy machine)."""
ACKS_BEFORE_KILL = int(os.environ.get("PERSISTENCE_ACKS_BEFORE_KILL", "25"))
"""Acknowledgements a writer prints before it is killed (it goes on meanwhile); soak: 1000."""
RACE_DEPOSITS = int(os.environ.get("PERSISTENCE_RACE_DEPOSITS", "100"))
"""Deposits each of two racing processes tries; soak: 1000."""


class Where:
    """A journal that both a child process (by its command-line name) and the test can open."""

    def __init__(self, kind: str, tmp_path: Path, nats_url: Callable[[], str]) -> None:
        self.kind = kind
        self.argument = str(tmp_path / "journal.sqlite3") if kind == "sqlite" else nats_url()

    @asynccontextmanager
    async def open(self) -> AsyncIterator[Journal]:
        journal: Journal = (
            SqliteJournal(self.argument)
            if self.kind == "sqlite"
            else await JetStreamJournal.connect(self.argument)
        )
        async with journal:
            yield journal


@pytest.fixture(params=["sqlite", "jetstream"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Where:
    return Where(request.param, tmp_path, lambda: str(request.getfixturevalue("nats_url")))


async def start(*arguments: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, *arguments, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )


async def next_line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), BOUND)
    if not line:
        assert process.stderr is not None
        error = await asyncio.wait_for(process.stderr.read(), BOUND)
        raise AssertionError(f"the process ended: {error.decode()[-2000:]}")
    return line.decode().strip()


async def memos(journal: Journal, persistence_id: PersistenceId) -> list[str]:
    found: list[str] = []
    async for record in journal.read(persistence_id):
        event = Account.event_codec.decode(record.name, record.version, record.payload)
        assert isinstance(event, Deposited)
        found.append(event.memo)
    return found


@pytest.mark.asyncio
async def test_an_acknowledged_event_survives_kill_9_and_is_replayed(where: Where) -> None:
    account_id = uuid.uuid4().hex
    writer = await start(str(PROGRAMS / "account_writer.py"), where.argument, account_id, "w", "0")
    acked: list[str] = []
    try:
        while len(acked) < ACKS_BEFORE_KILL:
            acked.append(await next_line(writer))
    finally:
        writer.send_signal(signal.SIGKILL)  # kill -9, while it keeps persisting
        await asyncio.wait_for(writer.wait(), BOUND)
    assert writer.returncode == -signal.SIGKILL
    # It went on between its last line read and the kill: what it printed meanwhile was acknowledged too.
    assert writer.stdout is not None
    acked += (await asyncio.wait_for(writer.stdout.read(), BOUND)).decode().splitlines()
    assert acked == [f"acked w-{i} {i + 1}" for i in range(len(acked))]
    async with where.open() as journal:
        stored = await memos(journal, PersistenceId("account", account_id))
        # Every acknowledged event is there; at most the one being persisted when the kill came too.
        assert stored[: len(acked)] == [f"w-{i}" for i in range(len(acked))]
        assert len(stored) <= len(acked) + 1
        async with Account(account_id, journal) as account:
            assert await asyncio.wait_for(account.ask(GetBalance()), BOUND) == len(stored)


@pytest.mark.asyncio
async def test_a_second_process_writing_one_id_gets_a_clear_error_and_writes_nothing(where: Where) -> None:
    account_id = uuid.uuid4().hex
    persistence_id = PersistenceId("account", account_id)
    async with where.open() as journal:
        # This process's writer recovers the account first (empty) ...
        async with Account(account_id, journal) as late:
            assert await asyncio.wait_for(late.ask(GetBalance()), BOUND) == 0
            # ... then another process writes it.
            other = await start(str(PROGRAMS / "account_writer.py"), where.argument, account_id, "other", "3")
            assert [await next_line(other) for _ in range(3)] == [
                f"acked other-{i} {i + 1}" for i in range(3)
            ]
            assert await asyncio.wait_for(other.wait(), BOUND) == 0

            with pytest.raises(WriterConflict, match=f"account/{account_id}: another writer got there first"):
                await asyncio.wait_for(late.ask(Deposit(amount=100, memo="late")), BOUND)
        assert await memos(journal, persistence_id) == ["other-0", "other-1", "other-2"]


@pytest.mark.asyncio
async def test_two_processes_racing_on_one_id_never_both_write(where: Where) -> None:
    account_id = uuid.uuid4().hex
    arguments = (where.argument, account_id)
    one = await start(str(PROGRAMS / "account_writer.py"), *arguments, "one", str(RACE_DEPOSITS))
    two = await start(str(PROGRAMS / "account_writer.py"), *arguments, "two", str(RACE_DEPOSITS))
    outputs: dict[str, list[str]] = {}
    for name, process in (("one", one), ("two", two)):
        stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
        outputs[name] = stdout.decode().split()
        assert process.returncode in (0, 3), stderr.decode()[-2000:]
    async with where.open() as journal:
        stored = await memos(journal, PersistenceId("account", account_id))
    for name, words in outputs.items():
        acked = [words[i + 1] for i, w in enumerate(words) if w == "acked"]
        refused = [words[i + 1] for i, w in enumerate(words) if w == "conflict"]
        assert all(memo in stored for memo in acked), name  # what was acknowledged is there
        assert not any(memo in stored for memo in refused), name  # what was refused is not
    assert len(stored) == len(set(stored))


@pytest.mark.asyncio
@pytest.mark.parametrize("moment", ["second-insert", "commit"])
async def test_a_crash_in_the_middle_of_a_multi_event_persist_leaves_none_of_them(
    tmp_path: Path, moment: str
) -> None:
    path = tmp_path / "journal.sqlite3"
    process = await start(str(PROGRAMS / "crash_mid_persist.py"), str(path), moment)
    assert await next_line(process) == "first persist acknowledged"
    assert (await next_line(process)).startswith("dying before the")
    assert await asyncio.wait_for(process.wait(), BOUND) == 9
    async with SqliteJournal(path) as journal:
        assert await memos(journal, PersistenceId("account", "alice")) == ["before/0", "before/1", "before/2"]
        async with Account("alice", journal) as account:
            assert await asyncio.wait_for(account.ask(GetBalance()), BOUND) == 3


@pytest.mark.asyncio
async def test_on_jetstream_a_multi_event_persist_is_one_message(nats_url: str) -> None:
    """JetStream writes one message whole or not at all: a persist of three events is one."""
    account_id = uuid.uuid4().hex
    writer = await start(str(PROGRAMS / "account_writer.py"), nats_url, account_id, "b", "2", "3")
    assert [await next_line(writer) for _ in range(2)] == ["acked b-0 3", "acked b-1 6"]
    assert await asyncio.wait_for(writer.wait(), BOUND) == 0
    async with await JetStreamJournal.connect(nats_url) as journal:
        assert isinstance(journal, JetStreamJournal)
        info = await journal.client.jetstream().stream_info(
            "ACTORIO_EVENTS_account", subjects_filter=f"actorio.events.account.{account_id}"
        )
        assert info.state.subjects == {f"actorio.events.account.{account_id}": 2}
        assert await memos(journal, PersistenceId("account", account_id)) == [
            f"b-{i}/{n}" for i in range(2) for n in range(3)
        ]


@pytest.mark.asyncio
async def test_a_reminder_stored_by_a_killed_process_fires_after_the_restart(where: Where) -> None:
    """At least once: armed in one process, killed before it fired, fired in the next."""
    alarm_id = uuid.uuid4().hex
    armer = await start(str(PROGRAMS / "reminding.py"), where.argument, alarm_id, "0.5")
    try:
        armed = await next_line(armer)
    finally:
        armer.send_signal(signal.SIGKILL)
        await asyncio.wait_for(armer.wait(), BOUND)
    assert armed.startswith("armed ")
    async with where.open() as journal:
        alarm = Alarm(alarm_id, journal)
        alarm.rang = asyncio.Event()
        async with alarm:
            await asyncio.wait_for(alarm.rang.wait(), BOUND)
            assert alarm.state.times == 1
            assert time.time() >= float(armed.split()[1])  # not before it was due
        assert await journal.load_reminders(alarm.persistence_id) == []


@pytest.mark.asyncio
async def test_a_durable_state_acknowledged_by_an_ask_survives_kill_9(where: Where) -> None:
    counter_id = uuid.uuid4().hex
    writer = await start(str(PROGRAMS / "counter_writer.py"), where.argument, counter_id)
    acked: list[str] = []
    try:
        while len(acked) < ACKS_BEFORE_KILL:
            acked.append(await next_line(writer))
    finally:
        writer.send_signal(signal.SIGKILL)  # kill -9, while it keeps counting
        await asyncio.wait_for(writer.wait(), BOUND)
    assert writer.stdout is not None
    acked += (await asyncio.wait_for(writer.stdout.read(), BOUND)).decode().splitlines()
    assert acked == [f"acked {i + 1}" for i in range(len(acked))]
    async with where.open() as journal:
        stored = await journal.load_state(PersistenceId("counter", counter_id))
        assert stored is not None
        # The last acknowledged value is saved; at most the one being saved at the kill is too.
        assert len(acked) <= Total.model_validate_json(stored.payload).value <= len(acked) + 1
