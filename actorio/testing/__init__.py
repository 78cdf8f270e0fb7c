"""actorio.testing: a test kit for actors, in the manner of Akka's ActorTestKit.

- `TestProbe`: a typed reference that records what it is told, with ``expect_message``,
  ``expect_no_message``, ``receive_messages``, ``fish_for_message`` and ``expect_terminated``.
- `MockClock` and `MockClockEventLoop`: virtual time that moves only when told, or jumps to the
  next timer when every task is blocked.
- `run_handler`: one handler against one message, without a mainloop: its reply, what it sent
  and to whom, the children it spawned.
- `Conversation`: who told or asked what to whom, recorded in order, as a Mermaid sequence
  diagram (a failed probe expectation shows it); `tree_diagram`: a tree of actors as a Mermaid
  graph.
- `assert_message`: a message compared with the expected one by class and content, without
  ``sender`` and ``creation_date`` (two messages created apart are never ``==``).
- `ActorTestKit`: the actors of one test, stopped afterwards; crashes nobody noticed, tasks left
  running and dead letters are reported.

The pytest plugin (``actorio.testing.pytest_plugin``, registered as ``actorio``) provides the
``actor_kit`` and ``mock_clock`` fixtures and the ``mock_clock`` marker; it needs pytest-asyncio.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._assert import assert_message as assert_message
    from ._clock import MockClock as MockClock
    from ._clock import MockClockEventLoop as MockClockEventLoop
    from ._conversation import Arrow as Arrow
    from ._conversation import Conversation as Conversation
    from ._conversation import tree_diagram as tree_diagram
    from ._handler import HandlerOutcome as HandlerOutcome
    from ._handler import Sent as Sent
    from ._handler import run_handler as run_handler
    from ._kit import ActorTestKit as ActorTestKit
    from ._kit import DeadLetter as DeadLetter
    from ._probe import DEFAULT_NO_MESSAGE_WITHIN as DEFAULT_NO_MESSAGE_WITHIN
    from ._probe import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
    from ._probe import AskFailed as AskFailed
    from ._probe import TestProbe as TestProbe

__all__ = [
    "DEFAULT_NO_MESSAGE_WITHIN",
    "DEFAULT_TIMEOUT",
    "ActorTestKit",
    "Arrow",
    "AskFailed",
    "Conversation",
    "DeadLetter",
    "HandlerOutcome",
    "MockClock",
    "MockClockEventLoop",
    "Sent",
    "TestProbe",
    "assert_message",
    "run_handler",
    "tree_diagram",
]

# Each public name -> the module that defines it: what module __getattr__ imports. The imports
# above are the same table for type checkers; tests/test_lazy_imports.py checks that the two and
# __all__ name the same things.
_EXPORTS = {
    "assert_message": "._assert",
    "MockClock": "._clock",
    "MockClockEventLoop": "._clock",
    "Arrow": "._conversation",
    "Conversation": "._conversation",
    "tree_diagram": "._conversation",
    "HandlerOutcome": "._handler",
    "Sent": "._handler",
    "run_handler": "._handler",
    "ActorTestKit": "._kit",
    "DeadLetter": "._kit",
    "DEFAULT_NO_MESSAGE_WITHIN": "._probe",
    "DEFAULT_TIMEOUT": "._probe",
    "AskFailed": "._probe",
    "TestProbe": "._probe",
}

if not TYPE_CHECKING:  # hidden from type checkers, which would then accept any name
    from actorio._lazy import lazy_attributes

    __getattr__, __dir__ = lazy_attributes(globals(), _EXPORTS)
