"""The protocol of the squaring pool: all that a client needs (it never imports the worker)."""

from __future__ import annotations

from actorio import Message


class Squared(Message):
    """The reply to `Square`: the result, and which worker process computed it."""

    value: int
    worker: int


class Square(Message[Squared]):
    """Asking with `Square` returns a `Squared`."""

    n: int
