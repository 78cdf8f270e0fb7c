"""The test kit's public door: what ``actorio.testing`` exports, and that all of it is documented."""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points

import actorio.testing
from actorio.testing import pytest_plugin

EXPECTED = {
    "DEFAULT_NO_MESSAGE_WITHIN",
    "DEFAULT_TIMEOUT",
    "ActorTestKit",
    "AskFailed",
    "DeadLetter",
    "HandlerOutcome",
    "MockClock",
    "MockClockEventLoop",
    "Sent",
    "TestProbe",
    "assert_message",
    "run_handler",
    # pictures of a test
    "Arrow",
    "Conversation",
    "tree_diagram",
}


def test_exported_names() -> None:
    assert set(actorio.testing.__all__) == EXPECTED
    for name in actorio.testing.__all__:
        assert hasattr(actorio.testing, name), name


def test_public_names_and_their_public_members_have_docstrings() -> None:
    for name in actorio.testing.__all__:
        value = getattr(actorio.testing, name)
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        assert inspect.getdoc(value), f"actorio.testing.{name} has no docstring"
        if not inspect.isclass(value):
            continue
        for attribute, member in vars(value).items():
            if attribute.startswith("_") or not (callable(member) or isinstance(member, property)):
                continue
            assert inspect.getdoc(member), f"actorio.testing.{name}.{attribute} has no docstring"


def test_the_pytest_plugin_is_registered_as_actorio() -> None:
    [entry] = [entry for entry in entry_points(group="pytest11") if entry.name == "actorio"]
    assert entry.value == "actorio.testing.pytest_plugin"
    assert entry.load() is pytest_plugin
    for hook in pytest_plugin.__all__:
        assert inspect.getdoc(getattr(pytest_plugin, hook)), hook
