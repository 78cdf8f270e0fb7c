"""actorio: typed actors for asyncio.

An actor is a class whose ``@handles(MessageType)`` methods each take one kind of message;
messages are frozen pydantic models, generic in the type of their reply.

The public names are imported on first use (PEP 562): ``import actorio`` alone, and so
``import actorio.mypy`` (the mypy plugin), loads neither the runtime nor pydantic.
``from actorio import Actor`` and ``actorio.Actor`` work as for any module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._actor import Actor as Actor
    from ._dead_letters import DeadLetter as DeadLetter
    from ._dead_letters import DeadLetters as DeadLetters
    from ._dead_letters import PayloadPreview as PayloadPreview
    from ._dead_letters import dead_letters as dead_letters
    from ._dispatch import handles as handles
    from ._exceptions import ActorioException as ActorioException
    from ._exceptions import ActorStopped as ActorStopped
    from ._exceptions import DeadlockError as DeadlockError
    from ._exceptions import EndMainLoop as EndMainLoop
    from ._exceptions import InvalidPayload as InvalidPayload
    from ._exceptions import MailboxFull as MailboxFull
    from ._exceptions import PayloadError as PayloadError
    from ._exceptions import RestartIntensityExceeded as RestartIntensityExceeded
    from ._exceptions import UnhandledMessage as UnhandledMessage
    from ._gc_policy import GcPolicy as GcPolicy
    from ._message import NO_REPLY as NO_REPLY
    from ._message import DataMessage as DataMessage
    from ._message import Message as Message
    from ._message import NoReply as NoReply
    from ._protocol import ActorProtocol as ActorProtocol
    from ._protocol import Envelope as Envelope
    from ._protocol import ProtocolEntry as ProtocolEntry
    from ._ref import ActorRef as ActorRef
    from ._ref import Reference as Reference
    from ._ref import ask as ask
    from ._run import run as run
    from ._run import serve as serve
    from ._sender import NO_SENDER as NO_SENDER
    from ._sender import BaseRef as BaseRef
    from ._sender import Sender as Sender
    from ._statistics import ActorStatistics as ActorStatistics
    from ._supervision import Backoff as Backoff
    from ._supervision import ChildSpec as ChildSpec
    from ._supervision import Decider as Decider
    from ._supervision import Directive as Directive
    from ._supervision import RestartType as RestartType
    from ._supervision import Strategy as Strategy
    from ._supervision import SupervisorStrategy as SupervisorStrategy
    from ._watch import Terminated as Terminated

__all__ = [
    "NO_REPLY",
    "NO_SENDER",
    "Actor",
    "ActorProtocol",
    "ActorRef",
    "ActorStatistics",
    "ActorStopped",
    "ActorioException",
    "Backoff",
    "BaseRef",
    "ChildSpec",
    "DataMessage",
    "DeadLetter",
    "DeadLetters",
    "DeadlockError",
    "Decider",
    "Directive",
    "EndMainLoop",
    "Envelope",
    "GcPolicy",
    "InvalidPayload",
    "MailboxFull",
    "Message",
    "NoReply",
    "PayloadError",
    "PayloadPreview",
    "ProtocolEntry",
    "Reference",
    "RestartIntensityExceeded",
    "RestartType",
    "Sender",
    "Strategy",
    "SupervisorStrategy",
    "Terminated",
    "UnhandledMessage",
    "ask",
    "dead_letters",
    "handles",
    "run",
    "serve",
]

__version__ = "0.2.0"

# Each public name -> the module that defines it: what module __getattr__ imports. The imports
# above are the same table for type checkers; tests/test_lazy_imports.py checks that the two and
# __all__ name the same things.
_EXPORTS = {
    "Actor": "._actor",
    "DeadLetter": "._dead_letters",
    "DeadLetters": "._dead_letters",
    "PayloadPreview": "._dead_letters",
    "dead_letters": "._dead_letters",
    "handles": "._dispatch",
    "ActorioException": "._exceptions",
    "ActorStopped": "._exceptions",
    "DeadlockError": "._exceptions",
    "EndMainLoop": "._exceptions",
    "InvalidPayload": "._exceptions",
    "MailboxFull": "._exceptions",
    "PayloadError": "._exceptions",
    "RestartIntensityExceeded": "._exceptions",
    "UnhandledMessage": "._exceptions",
    "GcPolicy": "._gc_policy",
    "NO_REPLY": "._message",
    "DataMessage": "._message",
    "Message": "._message",
    "NoReply": "._message",
    "ActorProtocol": "._protocol",
    "Envelope": "._protocol",
    "ProtocolEntry": "._protocol",
    "ActorRef": "._ref",
    "Reference": "._ref",
    "ask": "._ref",
    "run": "._run",
    "serve": "._run",
    "NO_SENDER": "._sender",
    "BaseRef": "._sender",
    "Sender": "._sender",
    "ActorStatistics": "._statistics",
    "Backoff": "._supervision",
    "ChildSpec": "._supervision",
    "Decider": "._supervision",
    "Directive": "._supervision",
    "RestartType": "._supervision",
    "Strategy": "._supervision",
    "SupervisorStrategy": "._supervision",
    "Terminated": "._watch",
}

# actorio 0.1.4's names that have a better one now: name -> (module, the name to use). Each use
# warns; they are not in __all__, and type checkers do not see them (they report the old name).
_DEPRECATED = {
    "ActorReference": ("._compat", "ActorRef"),
    "wait_for": ("._compat", "asyncio.wait_for (or asyncio.timeout)"),
}


if not TYPE_CHECKING:  # hidden from type checkers, which would then accept any name
    from ._lazy import lazy_attributes

    __getattr__, __dir__ = lazy_attributes(globals(), _EXPORTS, _DEPRECATED)
