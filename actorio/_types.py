"""Type variables and the structural types that let the checkers read a message's reply type."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from typing_extensions import TypeVar

if TYPE_CHECKING:
    from ._message import Message

__all__ = ["M_co", "Member", "N", "P", "R", "R_co", "Request", "union_arms"]

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True, default=None)
M_co = TypeVar("M_co", bound="Message[Any]", covariant=True)
N = TypeVar("N", bound="Message[Any]")
P = TypeVar("P", bound="Message[Any]", contravariant=True, default="Message[Any]")
"""An actor's protocol: the union of the message types it accepts."""


class Request(Protocol[M_co, R_co]):
    """A message seen by the type checkers as two facts at once: it is an ``M_co`` and its reply
    is an ``R_co``.

    Python has no intersection types, so ``ask(ref, msg)`` cannot say "``msg`` is a member of the
    ref's protocol *and* a ``Message[R]``". This protocol can: pydantic's ``model_copy`` returns
    ``Self`` (which pins the message's own class) and ``Message.__actorio_reply__`` returns the
    reply type. Nothing calls either through it.
    """

    def model_copy(self, *, update: Mapping[str, Any] | None = ..., deep: bool = ...) -> M_co: ...

    def __actorio_reply__(self) -> R_co: ...


class Member(Protocol[M_co, N]):
    """A message class seen as two facts: a member of the protocol ``M_co``, and exactly ``N``.

    Used by ``ActorRef.narrow``: the first fact is checked against the reference's protocol, the
    second types the narrowed reference. ``N`` is invariant (``Message.__actorio_exact__`` takes
    and returns ``Self``), so that the narrowed type is the argument's own class and cannot be
    widened by the context the call stands in.
    """

    def model_copy(self, *, update: Mapping[str, Any] | None = ..., deep: bool = ...) -> M_co: ...

    def __actorio_exact__(self, other: N, /) -> N: ...


def union_arms(annotation: Any) -> tuple[Any, ...]:
    """The arms of a union annotation (``A | B``, ``Union[A, B]``, ``Optional[A]``), in order; any
    other annotation is its own single arm."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return typing.get_args(annotation)
    return (annotation,)
