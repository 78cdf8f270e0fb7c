"""The public door: what ``actorio`` exports, and that every export is documented."""

from __future__ import annotations

import inspect
from pathlib import Path

import actorio

EXPECTED = {
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
    "GcPolicy",
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
    # fault tolerance
    "Backoff",
    "ChildSpec",
    "DeadLetter",
    "DeadLetters",
    "DeadlockError",
    "Decider",
    "PayloadPreview",
    "Directive",
    "MailboxFull",
    "RestartIntensityExceeded",
    "RestartType",
    "Strategy",
    "SupervisorStrategy",
    "Terminated",
    "dead_letters",
    "run",
    "serve",
    # observability
    "ActorStatistics",
}


def test_exported_names() -> None:
    assert set(actorio.__all__) == EXPECTED
    for name in actorio.__all__:
        assert hasattr(actorio, name), name


def test_public_names_have_docstrings() -> None:
    for name in actorio.__all__:
        value = getattr(actorio, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"actorio.{name} has no docstring"


def test_public_methods_have_docstrings() -> None:
    for name in ("Actor", "ActorRef", "Reference", "Message"):
        cls = getattr(actorio, name)
        for attribute, value in vars(cls).items():
            if attribute.startswith("_") or (not callable(value) and not isinstance(value, property)):
                continue
            assert inspect.getdoc(value), f"actorio.{name}.{attribute} has no docstring"


def test_typed_marker_is_shipped() -> None:
    assert Path(actorio.__file__).with_name("py.typed").is_file()
