"""`DurableStateActor`: an actor whose whole state is saved, with a revision for optimistic
concurrency."""

from __future__ import annotations

import json
import typing
from collections.abc import Callable
from typing import Any, ClassVar, Generic

from pydantic import BaseModel
from typing_extensions import TypeVar

from actorio import Message

from ._errors import SchemaMismatch
from ._events import decode_model
from ._journal import Journal
from ._persistent import PersistentActor

__all__ = ["DurableStateActor"]

P = TypeVar("P", bound="Message[Any]", contravariant=True, default="Message[Any]")
S = TypeVar("S", bound=BaseModel, default=BaseModel)


class DurableStateActor(PersistentActor[P], Generic[P, S]):
    """An actor whose state ``S`` (a pydantic model) is saved whole::

        class Counter(DurableStateActor[Increment, Count]):
            @handles(Increment)
            async def increment(self, msg: Increment) -> int:
                await self.save(Count(value=self.state.value + 1))
                return self.state.value

    The contract: `save` writes the new state if the journal's revision is still `revision`
    (the one this actor recovered or last saved) and returns once it is durable; then `state`
    and `revision` are the new ones, and the reply and the next message come after. If another
    writer saved this id meanwhile, `save` raises `WriterConflict` and writes nothing. Before
    the first message of each incarnation, the state is read back (`initial_state` if none
    was saved); a stored state of another ``state_version`` raises `SchemaMismatch`, as does
    a field the model no longer declares.
    """

    state_version: ClassVar[int] = 1
    """The version of the state model, stored with the state."""

    _persistence_state_type: ClassVar[type[BaseModel]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in vars(cls).get("__orig_bases__", ()):
            origin = typing.get_origin(base)
            if not (isinstance(origin, type) and issubclass(origin, DurableStateActor)):
                continue
            arguments = typing.get_args(base)
            if len(arguments) != 2 or isinstance(arguments[1], typing.TypeVar):
                continue
            state_type = arguments[1]
            if not (isinstance(state_type, type) and issubclass(state_type, BaseModel)):
                raise TypeError(
                    f"{cls.__qualname__}: the state type must be a pydantic model, not {state_type!r}"
                )
            cls._persistence_state_type = state_type

    def __init__(
        self,
        entity_id: str,
        journal: Journal,
        *,
        clock: Callable[[], float] | None = None,
        identifier: str | None = None,
        mailbox_capacity: int | None = None,
    ) -> None:
        super().__init__(
            entity_id, journal, clock=clock, identifier=identifier, mailbox_capacity=mailbox_capacity
        )
        if not hasattr(type(self), "_persistence_state_type"):
            raise TypeError(
                f"{type(self).__qualname__} must name its state: DurableStateActor[Protocol, State]"
            )
        self.state: S = self.initial_state()
        """The state last saved (or recovered)."""
        self.revision = 0
        """The journal's revision of `state` (0: never saved)."""

    def initial_state(self) -> S:
        """The state before any save: the state model made with no arguments, unless overridden."""
        return typing.cast("S", type(self)._persistence_state_type())

    async def save(self, state: S) -> None:
        """Write ``state`` whole, if nobody else saved this id since; then it is `state`."""
        payload = state.model_dump_json().encode()
        self.revision = await self.journal.save_state(
            self.persistence_id, self.revision, type(self).state_version, payload
        )
        self.state = state

    async def recover(self) -> None:
        """The state saved last, or `initial_state`."""
        cls = type(self)
        record = await self.journal.load_state(self.persistence_id)
        if record is None:
            self.state, self.revision = self.initial_state(), 0
            return
        what = f"{self.persistence_id}: stored state version {record.version}"
        if record.version != cls.state_version:
            raise SchemaMismatch(f"{what}: {cls.__qualname__} is at state_version {cls.state_version}")
        try:
            fields = json.loads(record.payload)
        except ValueError as error:
            raise SchemaMismatch(f"{what}: not JSON ({error})") from None
        self.state = decode_model(cls._persistence_state_type, fields, what)
        self.revision = record.revision
