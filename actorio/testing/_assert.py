"""Comparing a message with the one a test expects, as the probe does: by class and content."""

from __future__ import annotations

from typing import TypeVar, cast, overload

from ._describe import describe, is_message, same_content

__all__ = ["assert_message"]

T = TypeVar("T")


@overload
def assert_message(actual: object, expected: type[T]) -> T: ...
@overload
def assert_message(actual: object, expected: T) -> T: ...
def assert_message(actual: object, expected: type[T] | T) -> T:
    """Return ``actual``, typed, if it is ``expected``; else raise ``AssertionError`` naming both.

    ``expected`` is a message class (``actual`` must be an instance of it) or a message: then
    ``actual`` must be of the same class and equal in every field but ``sender`` and
    ``creation_date``, nested messages included, as `TestProbe.expect_message` compares. Two
    messages created apart are never ``==`` (their ``creation_date`` differs), so this is the
    comparison a test of a reply wants: ``assert_message(outcome.reply, Total(value=4))``.
    """
    __tracebackhide__ = True
    if isinstance(expected, type):
        if not isinstance(actual, expected):
            raise AssertionError(f"expected a {expected.__name__}, but got {describe(actual)}")
    elif not (is_message(expected) and same_content(expected, actual)):
        raise AssertionError(f"expected {describe(expected)}, but got {describe(actual)}")
    return cast(T, actual)
