"""`Node.connect`'s security options against real nats-servers: TLS (certificates made here),
mutual TLS, user and password, token, NKeys; refusals reported at once and as such; secrets in no
repr, error or log line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path

import nkeys
import pytest

from actorio.nats import LocalServer, Node, NodeUnreachable, NotAuthorized
from actorio.nats._connection import Security, redact
from tests.nats_support.actors import Greet, Greeter
from tests.nats_support.credentials import Key, Operator
from tests.nats_support.processes import wait_until
from tests.nats_support.tls import Certificates, make_certificates

SECRET = "s3cret-Pa55"
TOKEN = "t0ken-d0-not-leak"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture
def everything_logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record of the test, at every level, for checking that no secret is in one."""
    with caplog.at_level(logging.DEBUG):
        yield caplog


def _no_secret_in(*texts: str) -> None:
    for text in texts:
        for secret in (SECRET, TOKEN, "wrong-" + SECRET):
            assert secret not in text


def _server(tmp_path: Path, config: str) -> LocalServer:
    path = tmp_path / "nats.conf"
    path.write_text(config)
    return LocalServer(jetstream=False, config=path)


async def _round_trip(node: Node) -> None:
    """Publish a greeter through ``node`` and ask it, through the same connection. (From its
    class: the node then owns it and stops it when it closes.)"""
    await node.publish("greeter", Greeter)
    reply = await node.ref("greeter", Greeter).ask(Greet(name="TLS"), timeout=10)
    assert reply.text == "Hello TLS!"


PATIENT = 20.0
"""The connect timeout of the connections that must be refused: a refusal comes well before it."""


async def _refused_at_once(error_type: type[NodeUnreachable], connecting: Awaitable[Node]) -> NodeUnreachable:
    """Await ``connecting`` (made with ``connect_timeout=PATIENT``): ``error_type`` comes before
    half the connect timeout has passed."""
    started = time.monotonic()
    with pytest.raises(error_type) as caught:
        await connecting
    assert time.monotonic() - started < PATIENT / 2, "the refusal waited for the connect timeout"
    return caught.value


# -- secrets out of sight ---------------------------------------------------------------------


def test_redact_hides_passwords_and_tokens_and_keeps_the_rest() -> None:
    assert redact("nats://alice:pw@host:4222") == "nats://alice:***@host:4222"
    assert redact("nats://tok@host:4222") == "nats://***@host:4222"
    assert redact("nats://host:4222") == "nats://host:4222"
    assert redact("tls://a:b@h1:4222,nats://h2:4222,c@h3") == "tls://a:***@h1:4222,nats://h2:4222,***@h3"
    assert redact("nats://a:p@ss/w@rd@host") == "nats://a:***@host"


def test_the_security_settings_show_which_are_given_not_their_values() -> None:
    settings = Security(user="alice", password=SECRET, nkey_seed_file="/keys/" + SECRET)
    assert repr(settings) == "Security(user, password, nkey_seed_file)"


@pytest.mark.asyncio
async def test_a_password_in_the_url_is_in_no_repr_error_or_log_line(
    everything_logged: pytest.LogCaptureFixture,
) -> None:
    with LocalServer(jetstream=False, args=["--user", "alice", "--pass", SECRET]) as server:
        url = f"nats://alice:{SECRET}@127.0.0.1:{server.port}"
        async with await Node.connect(url, reconnect_wait=0.05) as node:
            assert node.url == f"nats://alice:***@127.0.0.1:{server.port}"
            assert SECRET not in repr(node)
            await _round_trip(node)
            server.restart()  # a reconnection, logged with the URL

            async def reconnected() -> bool:
                return node.reconnections == 1

            await wait_until(reconnected, 10.0)
        wrong = f"nats://alice:wrong-{SECRET}@127.0.0.1:{server.port}"
        error = await _refused_at_once(NotAuthorized, Node.connect(wrong, connect_timeout=PATIENT))
        assert error.url == f"nats://alice:***@127.0.0.1:{server.port}"
        _no_secret_in(str(error), repr(error), repr(error.args), error.reason)
    assert any(
        "reconnected to nats://alice:***@127.0.0.1" in record.getMessage()
        for record in everything_logged.records
    )
    _no_secret_in(everything_logged.text, *(record.getMessage() for record in everything_logged.records))


@pytest.mark.asyncio
async def test_nobody_answering_names_the_url_without_its_password() -> None:
    with LocalServer(jetstream=False) as server:
        port = server.port
    with pytest.raises(NodeUnreachable) as caught:
        await Node.connect(f"nats://alice:{SECRET}@127.0.0.1:{port}", connect_timeout=0.5)
    assert not isinstance(caught.value, NotAuthorized)
    assert "no server answered" in str(caught.value)
    _no_secret_in(str(caught.value), repr(caught.value))


# -- user and password, token ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_user_and_password(everything_logged: pytest.LogCaptureFixture) -> None:
    with LocalServer(jetstream=False, args=["--user", "alice", "--pass", SECRET]) as server:
        async with await Node.connect(server.url, user="alice", password=SECRET) as node:
            await _round_trip(node)
        wrong = Node.connect(server.url, connect_timeout=PATIENT, user="alice", password="wrong-" + SECRET)
        error = await _refused_at_once(NotAuthorized, wrong)
        assert "refused the credentials" in str(error)
        await _refused_at_once(NotAuthorized, Node.connect(server.url, connect_timeout=PATIENT))  # none
    _no_secret_in(everything_logged.text)


@pytest.mark.asyncio
async def test_token(everything_logged: pytest.LogCaptureFixture) -> None:
    with LocalServer(jetstream=False, args=["--auth", TOKEN]) as server:
        async with await Node.connect(server.url, token=TOKEN) as node:
            await _round_trip(node)
        async with await Node.connect(f"nats://{TOKEN}@127.0.0.1:{server.port}") as node:
            assert node.url == f"nats://***@127.0.0.1:{server.port}"
            await _round_trip(node)
        await _refused_at_once(
            NotAuthorized, Node.connect(server.url, connect_timeout=PATIENT, token="wrong-" + SECRET)
        )
    _no_secret_in(everything_logged.text)


# -- NKeys -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_nkeys(tmp_path: Path, everything_logged: pytest.LogCaptureFixture) -> None:
    key, stranger = Key.make(), Key.make()
    config = f"authorization {{ users = [ {{ nkey: {key.public} }} ] }}\n"
    seed_file = tmp_path / "user.nk"
    seed_file.write_text(key.seed + "\n")
    with _server(tmp_path, config) as server:
        async with await Node.connect(server.url, nkey_seed=key.seed) as node:
            await _round_trip(node)
        async with await Node.connect(server.url, nkey_seed_file=seed_file) as node:
            await _round_trip(node)
        refused = Node.connect(server.url, connect_timeout=PATIENT, nkey_seed=stranger.seed)
        await _refused_at_once(NotAuthorized, refused)
    for seed in (key.seed, stranger.seed):
        assert seed[2:] not in everything_logged.text


@pytest.mark.asyncio
async def test_a_credentials_file(tmp_path: Path, everything_logged: pytest.LogCaptureFixture) -> None:
    operator = Operator()
    with _server(tmp_path, operator.config()) as server:
        creds = operator.credentials(tmp_path / "worker.creds")
        async with await Node.connect(server.url, credentials_file=creds) as node:
            await _round_trip(node)
        # A user signed by an account that the server does not trust.
        forged = operator.credentials(tmp_path / "forged.creds", signer=Key.make(nkeys.PREFIX_BYTE_ACCOUNT))
        refused = Node.connect(server.url, connect_timeout=PATIENT, credentials_file=forged)
        await _refused_at_once(NotAuthorized, refused)
    seeds = [
        line for path in (creds, forged) for line in path.read_text().splitlines() if line.startswith("SU")
    ]
    assert len(seeds) == 2
    for seed in seeds:
        assert seed[2:] not in everything_logged.text


@pytest.mark.asyncio
async def test_credentials_that_cannot_be_used_are_refused_before_connecting(tmp_path: Path) -> None:
    url = "nats://127.0.0.1:1"  # nothing is connected to: each error comes first
    with pytest.raises(ValueError, match="user and password go together"):
        await Node.connect(url, password=SECRET)
    with pytest.raises(ValueError, match="one kind of credentials"):
        await Node.connect(url, user="alice", password=SECRET, nkey_seed=Key.make().seed)
    with pytest.raises(ValueError, match="not user/password and token") as caught:
        await Node.connect(url, user="alice", password=SECRET, token=SECRET)
    _no_secret_in(str(caught.value))
    with pytest.raises(ValueError, match="not credentials in the URL and token") as caught:
        await Node.connect(f"nats://alice:{SECRET}@127.0.0.1:1", token=SECRET)
    _no_secret_in(str(caught.value))
    with pytest.raises(ValueError, match="not credentials in the URL and user/password"):
        await Node.connect(f"nats://{SECRET}@127.0.0.1:1,nats://{SECRET}@127.0.0.1:2", user="a", password="b")
    # What nats-py uses together is not refused: a token beside a .creds file (an auth callout
    # reads it; here the missing file is what is refused), each server with its own credentials,
    # and an "@" that is not in a URL's network location.
    with pytest.raises(FileNotFoundError):  # nats-py 2.15 or later, as this suite installs
        await Node.connect(url, token=SECRET, credentials_file=tmp_path / "missing.creds")
    for credentialed in (f"nats://alice:{SECRET}@127.0.0.1:1", f"nats://{SECRET}@127.0.0.1:1"):
        with pytest.raises(ValueError, match="not credentials in the URL and nkey_seed"):
            await Node.connect(credentialed, nkey_seed=Key.make().seed)
    with pytest.raises(NodeUnreachable):
        await Node.connect(f"nats://a:{SECRET}@127.0.0.1:1,nats://{SECRET}@127.0.0.1:2", connect_timeout=0.5)
    with pytest.raises(NodeUnreachable):
        await Node.connect("nats://127.0.0.1:1/nats@edge", connect_timeout=0.5, token=SECRET)
    with pytest.raises(FileNotFoundError):
        await Node.connect(url, credentials_file=tmp_path / "missing.creds")
    with pytest.raises(ValueError, match="not a valid seed") as caught:
        await Node.connect(url, nkey_seed="SU" + SECRET)
    _no_secret_in(str(caught.value))


# -- TLS -------------------------------------------------------------------------------------


def _tls_config(certificates: Certificates, extra: str = "") -> str:
    return (
        f'tls {{\n  cert_file: "{certificates.server.cert}"\n  key_file: "{certificates.server.key}"\n'
        f"{extra}}}\n"
    )


@pytest.mark.asyncio
async def test_tls(tmp_path: Path, certificates: Certificates) -> None:
    with _server(tmp_path, _tls_config(certificates)) as server:
        async with await Node.connect(server.url, tls=certificates.client_context()) as node:
            await _round_trip(node)
        async with await Node.connect(
            f"tls://localhost:{server.port}", tls=certificates.client_context()
        ) as node:
            await _round_trip(node)
        # The server's certificate names 127.0.0.1 and localhost, not this name.
        elsewhere = Node.connect(
            server.url,
            connect_timeout=PATIENT,
            tls=certificates.client_context(),
            tls_hostname="elsewhere.example",
        )
        error = await _refused_at_once(NodeUnreachable, elsewhere)
        assert "not trusted" in str(error)
        # Without the CA: the system's authorities do not know the server's.
        error = await _refused_at_once(NodeUnreachable, Node.connect(server.url, connect_timeout=PATIENT))
        assert "not trusted" in str(error)
        assert not isinstance(error, NotAuthorized)


@pytest.mark.asyncio
async def test_tls_handshake_first(tmp_path: Path, certificates: Certificates) -> None:
    with _server(tmp_path, _tls_config(certificates, "  handshake_first: true\n")) as server:
        async with await Node.connect(
            server.url, tls=certificates.client_context(), tls_handshake_first=True
        ) as node:
            await _round_trip(node)


@pytest.mark.asyncio
async def test_mutual_tls(tmp_path: Path, certificates: Certificates) -> None:
    config = _tls_config(certificates, f'  ca_file: "{certificates.ca}"\n  verify: true\n')
    with _server(tmp_path, config) as server:
        client = certificates.client_context(certificate=certificates.client)
        async with await Node.connect(server.url, tls=client) as node:
            await _round_trip(node)
        # Refused by the server: reported as soon as the TLS alert comes (the connection may
        # also just be cut, then it is reported at the connect timeout, as no answer).
        for refused in (
            certificates.client_context(),
            certificates.client_context(certificate=certificates.stranger),
        ):
            with pytest.raises(NodeUnreachable):
                await Node.connect(server.url, tls=refused, connect_timeout=3.0)


@pytest.mark.asyncio
async def test_mutual_tls_mapping_the_certificate_to_a_user(
    tmp_path: Path, certificates: Certificates
) -> None:
    config = _tls_config(certificates, f'  ca_file: "{certificates.ca}"\n  verify_and_map: true\n') + (
        f'authorization {{ users = [ {{ user: "CN={certificates.client_name}" }} ] }}\n'
    )
    with _server(tmp_path, config) as server:
        client = certificates.client_context(certificate=certificates.client)
        async with await Node.connect(server.url, tls=client) as node:
            await _round_trip(node)


# -- TLS wanted, plain text offered -----------------------------------------------------------


@contextlib.asynccontextmanager
async def plain_server() -> AsyncIterator[tuple[int, bytearray]]:
    """A fake NATS server in plain text that asks for credentials: its port, and every byte that
    clients sent it."""
    received = bytearray()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b'INFO {"server_id":"fake","version":"2.10.0","auth_required":true,"headers":true}\r\n')
        while data := await reader.read(4096):
            received.extend(data)
        writer.close()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with listener:
        yield listener.sockets[0].getsockname()[1], received


@pytest.mark.asyncio
async def test_with_tls_wanted_nothing_goes_to_a_server_in_plain_text(certificates: Certificates) -> None:
    async with plain_server() as (port, received):
        url = f"nats://127.0.0.1:{port}"
        with_context = Node.connect(
            url, connect_timeout=PATIENT, tls=certificates.client_context(), user="alice", password=SECRET
        )
        error = await _refused_at_once(NodeUnreachable, with_context)
        assert "TLS is wanted" in str(error)
        by_scheme = Node.connect(f"tls://alice:{SECRET}@127.0.0.1:{port}", connect_timeout=PATIENT)
        await _refused_at_once(NodeUnreachable, by_scheme)
    assert received == b""


@pytest.mark.asyncio
async def test_a_connect_given_up_midway_leaves_no_task_behind() -> None:
    async with plain_server() as (port, _):  # it greets, then never answers the CONNECT
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(Node.connect(f"nats://127.0.0.1:{port}", connect_timeout=PATIENT), 0.3)
    assert asyncio.all_tasks() == {asyncio.current_task()}
