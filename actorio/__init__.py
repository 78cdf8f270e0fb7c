"""actorio: typed actors for asyncio.

An actor is a class whose ``@handles(MessageType)`` methods each take one kind of message;
messages are frozen pydantic models, generic in the type of their reply.
"""

from ._actor import Actor as Actor
from ._dispatch import handles as handles
from ._exceptions import ActorioException as ActorioException
from ._exceptions import ActorStopped as ActorStopped
from ._exceptions import EndMainLoop as EndMainLoop
from ._exceptions import InvalidPayload as InvalidPayload
from ._exceptions import PayloadError as PayloadError
from ._exceptions import UnhandledMessage as UnhandledMessage
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
from ._sender import NO_SENDER as NO_SENDER
from ._sender import BaseRef as BaseRef
from ._sender import Sender as Sender

__all__ = [
    "NO_REPLY",
    "NO_SENDER",
    "Actor",
    "ActorProtocol",
    "ActorRef",
    "ActorStopped",
    "ActorioException",
    "BaseRef",
    "DataMessage",
    "EndMainLoop",
    "Envelope",
    "InvalidPayload",
    "Message",
    "NoReply",
    "PayloadError",
    "ProtocolEntry",
    "Reference",
    "Sender",
    "UnhandledMessage",
    "ask",
    "handles",
]

__version__ = "0.2.0"
