"""NKeys and decentralized (JWT) credentials for the NATS security tests, made on the spot: an
operator, an account and its users, a server configuration that trusts them, ``.creds`` files;
and the documentation's example configuration (docs/nats-worker.conf) run with keys of its
users."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nkeys

from actorio.nats import LocalServer

from .processes import ROOT

EXAMPLE_CONFIG = ROOT / "docs" / "nats-worker.conf"
"""The documentation's server configuration for the tenant "shop": a worker, a client and a
journal user, each with the permissions it needs and no more, and the journal's admin."""


@dataclass(frozen=True)
class Key:
    """An NKey: its seed (secret) and public key."""

    seed: str
    public: str

    @classmethod
    def make(cls, prefix: int = nkeys.PREFIX_BYTE_USER) -> Key:
        """A new key of the role ``prefix`` (``nkeys.PREFIX_BYTE_USER``, ``..._ACCOUNT``, ...)."""
        seed = nkeys.encode_seed(os.urandom(32), prefix)
        return cls(seed.decode(), nkeys.from_seed(bytearray(seed)).public_key.decode())

    def sign(self, data: bytes) -> bytes:
        return nkeys.from_seed(bytearray(self.seed.encode())).sign(data)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def jwt(claims: dict[str, Any], signer: Key) -> str:
    """A NATS JWT of ``claims``, issued and signed by ``signer``."""
    claims = {"iat": int(time.time()), "iss": signer.public, **claims}
    digest = hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).digest()
    claims["jti"] = base64.b32encode(digest).decode().rstrip("=")
    head = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(signer.sign(f'{head}.{body}'.encode()))}"


_UNLIMITED = {
    "subs": -1,
    "data": -1,
    "payload": -1,
    "imports": -1,
    "exports": -1,
    "wildcards": True,
    "conn": -1,
    "leaf": -1,
    "mem_storage": -1,
    "disk_storage": -1,
    "streams": -1,
    "consumer": -1,
}


class Operator:
    """An operator and one account of it; `config` trusts them, `credentials` makes users."""

    def __init__(self) -> None:
        self.operator = Key.make(nkeys.PREFIX_BYTE_OPERATOR)
        self.account = Key.make(nkeys.PREFIX_BYTE_ACCOUNT)

    def config(self) -> str:
        """A nats-server configuration with this operator and its account (in memory)."""
        operator = jwt(
            {"sub": self.operator.public, "name": "operator", "nats": {"type": "operator", "version": 2}},
            self.operator,
        )
        account = jwt(
            {
                "sub": self.account.public,
                "name": "tenant",
                "nats": {"type": "account", "version": 2, "limits": _UNLIMITED},
            },
            self.operator,
        )
        preload = f"resolver_preload: {{\n  {self.account.public}: {account}\n}}\n"
        return f"operator: {operator}\nresolver: MEMORY\n{preload}"

    def credentials(self, path: Path, *, signer: Key | None = None) -> Path:
        """Write a ``.creds`` file of a new user of the account (signed by ``signer``, another
        account's key, to make one that the server refuses)."""
        user = Key.make()
        claims = {
            "sub": user.public,
            "name": "worker",
            "nats": {
                "type": "user",
                "version": 2,
                "pub": {},
                "sub": {},
                "subs": -1,
                "data": -1,
                "payload": -1,
            },
        }
        token = jwt(claims, signer or self.account)
        path.write_text(
            f"-----BEGIN NATS USER JWT-----\n{token}\n------END NATS USER JWT------\n\n"
            f"-----BEGIN USER NKEY SEED-----\n{user.seed}\n------END USER NKEY SEED------\n"
        )
        return path


@dataclass(frozen=True)
class ShopKeys:
    """Keys of the users of `EXAMPLE_CONFIG`, which reads their public keys from the environment."""

    worker: Key
    client: Key
    journal: Key
    journal_admin: Key
    admin: Key
    """The tenant's operator: provisions the durable names' streams."""

    @classmethod
    def make(cls) -> ShopKeys:
        return cls(Key.make(), Key.make(), Key.make(), Key.make(), Key.make())

    def environment(self) -> dict[str, str]:
        """The variables `EXAMPLE_CONFIG` names, set to the public keys."""
        return {
            "SHOP_WORKER_NKEY": self.worker.public,
            "SHOP_CLIENT_NKEY": self.client.public,
            "SHOP_JOURNAL_NKEY": self.journal.public,
            "SHOP_JOURNAL_ADMIN_NKEY": self.journal_admin.public,
            "SHOP_ADMIN_NKEY": self.admin.public,
        }


@contextmanager
def example_server(
    keys: ShopKeys, *, config: Path = EXAMPLE_CONFIG, store_dir: Path | None = None
) -> Iterator[LocalServer]:
    """A nats-server running ``config`` (the example by default) with ``keys``' public keys: set
    in this process's environment while the server starts, which reads them then."""
    with ExitStack() as stack:
        saved = {name: os.environ.get(name) for name in keys.environment()}
        os.environ.update(keys.environment())
        try:
            server = stack.enter_context(LocalServer(config=config, store_dir=store_dir))
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        yield server
