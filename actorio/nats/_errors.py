"""The errors of actors across processes.

ActorioException
 +-- RemoteError            a remote handler raised: its type name, text and traceback
 +-- NodeUnreachable        no NATS server answered at connect time (or a TLS handshake failed)
 |    +-- NotAuthorized     the server refused the node's credentials or TLS certificate
 +-- ActorStopped
      +-- ActorNotFound     an ask to a name that no process publishes
"""

from __future__ import annotations

from .. import ActorioException, ActorStopped

__all__ = ["ActorNotFound", "NodeUnreachable", "NotAuthorized", "RemoteError"]


class RemoteError(ActorioException):
    """An ask's handler raised in another process.

    ``str(error)`` is ``"<type name>: <message> (in <actor>)"``. ``type_name`` and ``module`` name the
    original exception's class, ``remote_message`` is its text and ``remote_traceback`` the
    traceback formatted where it was raised. The original class is not imported or rebuilt: the
    asker may not have it.
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
    """An ask reached no actor: no process publishes that name (or every one stopped)."""

    def __init__(self, identifier: str, subject: str) -> None:
        self.subject = subject
        super().__init__(identifier)
        self.args = (f"no actor is published as {identifier!r} (subject {subject!r})",)

    def __str__(self) -> str:
        return str(self.args[0])
