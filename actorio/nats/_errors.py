"""The errors of actors across processes.

ActorioException
 +-- RemoteError            a remote handler raised: its type name, text and traceback
 |    +-- ReplyTooLarge     a reply larger than the server's max_payload
 +-- NodeUnreachable        no NATS server answered at connect time (or a TLS handshake failed)
 |    +-- NotAuthorized     the server refused the node's credentials or TLS certificate
 +-- ActorStopped
      +-- ActorNotFound     an ask to a name that no process publishes
"""

from __future__ import annotations

import nats.errors
import nats.js.errors

from .. import ActorioException, ActorStopped

__all__ = [
    "NO_JETSTREAM",
    "ActorNotFound",
    "NodeUnreachable",
    "NotAuthorized",
    "RemoteError",
    "ReplyTooLarge",
    "jetstream_missing",
]

NO_JETSTREAM = (nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError)
"""What nats-py raises for a JetStream request to a server that does not offer JetStream."""


def jetstream_missing(what: str) -> RuntimeError:
    """The error to raise (``from None``) for `NO_JETSTREAM` met while setting up ``what``."""
    return RuntimeError(
        f"{what} needs JetStream, which the server does not offer (start nats-server with -js, "
        "or with jetstream {} in its configuration file)"
    )


class RemoteError(ActorioException):
    """An ask's handler raised in another process.

    ``str(error)`` is ``"<type name>: <message> (in <actor>)"``. ``type_name`` and ``module`` name the
    original exception's class, ``remote_message`` is its text (at most about 1,000 characters) and
    ``remote_traceback`` the traceback formatted where it was raised. ``module`` and
    ``remote_traceback`` are empty unless the answering node was connected with
    ``debug_errors=True``: by default an error reply tells the asker no more than the error's type
    name and text. The original class is not imported or rebuilt: the asker may not have it.
    """

    def __init__(
        self, actor: str, type_name: str, module: str, remote_message: str, remote_traceback: str
    ) -> None:
        self.actor = actor
        self.type_name = type_name
        self.module = module
        self.remote_message = remote_message
        self.remote_traceback = remote_traceback
        super().__init__(f"{type_name}: {remote_message} (in {actor})")


class ReplyTooLarge(RemoteError):
    """An ask's reply (or the error its handler raised) was larger than the NATS server's
    ``max_payload``: the answering node sent this small error instead, at once.

    ``size`` is the reply's size in bytes (its body and headers), ``limit`` the server's
    ``max_payload``. The handler ran: only its reply was lost. Reply with less (a page of the
    result, a reference to where it is stored), or raise the server's ``max_payload``.
    """

    def __init__(self, actor: str, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        message = f"the reply of {size} bytes is larger than the server's max_payload ({limit} bytes)"
        super().__init__(actor, "ReplyTooLarge", "actorio.nats", message, "")


class NodeUnreachable(ActorioException, ConnectionError):
    """`Node.connect` failed: no server answered at ``url`` in time, or a TLS handshake failed.

    ``url`` is the URL given to `Node.connect` with any password or token replaced by ``***``;
    ``reason`` says what went wrong (no server answered in time, a TLS handshake failed). Neither
    quotes a secret.
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"cannot connect to NATS at {url}: {reason}")


class NotAuthorized(NodeUnreachable):
    """The NATS server refused the node's credentials (user and password, token, NKey, credentials
    file) or its TLS client certificate. Raised by `Node.connect` as soon as the server says so,
    without retrying: the same credentials would be refused again."""


class ActorNotFound(ActorStopped):
    """An ask reached no actor: no process publishes that name (or every one stopped), or, for
    an entity (``entity_type`` given), no node hosts its type."""

    def __init__(self, identifier: str, subject: str, *, entity_type: str | None = None) -> None:
        self.subject = subject
        super().__init__(identifier)
        if entity_type is None:
            self.args = (f"no actor is published as {identifier!r} (subject {subject!r})",)
        else:
            of = "" if identifier == entity_type else f" (of {identifier!r})"
            self.args = (
                f"no node hosts the entity type {entity_type!r}{of}: none announced itself lately "
                "(a hosting process calls node.host)",
            )

    def __str__(self) -> str:
        return str(self.args[0])
