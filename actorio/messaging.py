"""actorio 0.1.4's module ``actorio.messaging``, kept so that code written for it imports:
`Message`, `DataMessage` and the original's `MessageQueue`. Importing it warns: import the
messages from ``actorio``."""

from ._compat import MessageQueue, warn_moved
from ._message import DataMessage, Message

__all__ = ["DataMessage", "Message", "MessageQueue"]

warn_moved(__name__, "Message and DataMessage")
