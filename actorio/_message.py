"""Messages: frozen pydantic models, generic in the type of their reply."""

from __future__ import annotations

from datetime import datetime, timezone
from time import time_ns
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeGuard

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, PrivateAttr, field_serializer
from pydantic.json_schema import SkipJsonSchema
from typing_extensions import Self, TypeVar, dataclass_transform

from ._sender import NO_SENDER, BaseRef, Sender
from ._types import R_co, union_arms

__all__ = ["NO_REPLY", "DataMessage", "Message", "NoReply", "is_message_class", "reply_messages"]

T = TypeVar("T", default=Any)


def _as_datetime(value: Any) -> Any:
    """A message's stored ``creation_date`` as the datetime it stands for.

    A message created without one stores ``time.time_ns()`` (an ``int``): 40 ns, where
    ``datetime.now(timezone.utc)`` costs 0.4 us, a third of the cost of a whole message. It
    becomes a datetime when read, floored to the microsecond as ``datetime.now`` is. A given or
    decoded creation date is validated into a datetime and stored as it is.
    """
    if type(value) is int:
        # Whole microseconds, as a float of seconds: exact until 2106 (a float's step is below
        # half a microsecond until 2**32 s), and twice as fast as adding a timedelta.
        return datetime.fromtimestamp(value // 1000 / 1e6, timezone.utc)
    return value


_from_timestamp = datetime.fromtimestamp


class _CreationDate:
    """``Message.creation_date`` as read: the stored value as a datetime (see `_as_datetime`).

    A data descriptor, so that it takes precedence over the instance's ``__dict__``, where
    pydantic keeps the fields. Read on the class, it is absent, as any pydantic field is.
    """

    __slots__ = ()

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            raise AttributeError("creation_date")
        try:
            return _as_datetime(instance.__dict__["creation_date"])
        except KeyError:
            raise AttributeError("creation_date") from None

    def __set__(self, instance: Any, value: Any) -> None:
        instance.__dict__["creation_date"] = value


def _dated(message: BaseModel) -> BaseModel:
    """``message``, with its creation date stored as a datetime (a copy if it was not)."""
    stored = message.__dict__.get("creation_date")
    if type(stored) is not int:
        return message
    return message.model_copy(update={"creation_date": _as_datetime(stored)})


def _as_sender(value: Any) -> BaseRef:
    """Store a reference as it is, and an actor as its reference."""
    if isinstance(value, BaseRef):
        return value
    if value is None:
        return NO_SENDER
    reference = getattr(value, "reference", None)
    if isinstance(reference, BaseRef):
        return reference
    raise ValueError(f"sender must be an actor or an actorio reference, not {type(value).__name__}")


class NoReply:
    """What a handler returns when its return value is not the reply to an ask.

    It replied already (``return await msg.reply(x)``) or handed the message on to an actor that
    will answer (``return await worker.forward(msg)``); both return `NO_REPLY`. Statically, a
    handler of ``Greet(Message[Greeting])`` may return ``Greeting`` or ``NoReply``. If the ask was
    neither answered nor handed on, it fails with `ActorStopped` when the actor stops.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_REPLY"


NO_REPLY = NoReply()
"""The one `NoReply` value."""


if TYPE_CHECKING:
    from pydantic._internal._model_construction import ModelMetaclass

    @dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(Field, PrivateAttr))
    class _FrozenModelMeta(ModelMetaclass):
        """pydantic's metaclass, seen by the type checkers as making frozen models."""

    class _FrozenModel(BaseModel, metaclass=_FrozenModelMeta):
        """What `Message` derives from, for the type checkers.

        Neither mypy nor pyright reads ``model_config``. With ``frozen_default`` they know that
        every class below this one is frozen, so ``msg.name = "x"`` (``msg.sender``,
        ``msg.creation_date`` included) is an error for both, in every subclass. A ``frozen=True``
        class keyword would not do: it is not inherited, and both checkers refuse a subclass that
        does not repeat it. (mypy does not apply a transform to the class that names the
        metaclass itself, hence this empty class.)
        """

else:
    _FrozenModel = BaseModel  # at run time, pydantic's model itself: nothing changes


class Message(_FrozenModel, Generic[R_co]):
    """A message: a frozen pydantic model whose fields are validated at construction.

    ``R_co`` is the type of the reply to an ask with this message: ``class Greet(Message[Greeting])``
    is answered with a ``Greeting``; a plain ``Message`` subclass is ``Message[None]``.

    Every message has:

    - ``sender``: where a reply goes. Accepts an actor (its reference is stored) or any actorio
      reference; defaults to `NO_SENDER`. While a handler serves an ask, ``msg.sender`` is a
      reference made for that ask (the asker's own message object is never changed). It is not
      part of the message's JSON form.
    - ``creation_date``: a timezone-aware UTC datetime, set at creation (to the microsecond,
      as ``datetime.now``), unless given. It is part of the JSON form.

    Invalid fields raise pydantic's ``ValidationError`` at construction. Messages are frozen: an
    actor cannot change a message that another actor also holds.
    """

    model_config = ConfigDict(frozen=True)

    if TYPE_CHECKING:
        sender: Sender = Field(default=NO_SENDER, exclude=True)
    else:
        # SkipJsonSchema: not part of the JSON form, so not of its schema either.
        sender: Annotated[Any, PlainValidator(_as_sender), SkipJsonSchema()] = Field(
            default=NO_SENDER, exclude=True
        )
    if TYPE_CHECKING:
        creation_date: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    else:
        # Stored as time.time_ns() unless given, read as a datetime through _CreationDate (set
        # on the class below): equality, hashing, repr, dict() and the dumps see the datetime.
        creation_date: datetime = Field(default_factory=time_ns)

    if not TYPE_CHECKING:

        def __init__(self, /, **data: Any) -> None:
            # BaseModel.__init__ without its check for a model validator that returns another
            # object (a message class has none): 2% of a message's cost. Validation is the same.
            self.__pydantic_validator__.validate_python(data, self_instance=self)

        # The pydantic mark of an __init__ that does what BaseModel's does: pydantic then keeps
        # validating nested messages and decoded payloads without calling it.
        __init__.__pydantic_base_init__ = True

    @field_serializer("creation_date")
    def _dump_creation_date(self, value: Any) -> datetime:
        # _as_datetime, inlined: a call less in every message's dump (7 % of a JSON encoding).
        if type(value) is int:
            return _from_timestamp(value // 1000 / 1e6, timezone.utc)
        dated: datetime = value
        return dated

    def __eq__(self, other: object) -> bool:
        equal = super().__eq__(other)
        if equal is False and isinstance(other, BaseModel):
            mine, theirs = _dated(self), _dated(other)
            if mine is not self or theirs is not other:
                return BaseModel.__eq__(mine, theirs)
        return equal

    def __hash__(self) -> int:
        fields = self.__dict__
        return hash(tuple(_as_datetime(fields[name]) for name in type(self).__pydantic_fields__))

    def __iter__(self) -> Any:
        for name, value in super().__iter__():
            yield name, (_as_datetime(value) if name == "creation_date" else value)

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, (_as_datetime(value) if name == "creation_date" else value)

    def __actorio_reply__(self) -> R_co:
        """Never called: it lets the type checkers read a message's reply type (see `Request`)."""
        raise NotImplementedError

    def __actorio_exact__(self, other: Self, /) -> Self:
        """Never called: it lets the type checkers pin a message class exactly (see `Member`)."""
        raise NotImplementedError

    async def reply(self: Message[T], response: T) -> NoReply:
        """Send ``response`` to this message's sender; return `NO_REPLY`.

        To an asker it is the reply, whatever its type. To any other sender a `Message` is told
        as it is, and another value is told wrapped in a `DataMessage`. A handler can end with
        ``return await msg.reply(x)``.
        """
        sender = self.sender
        if isinstance(response, Message) or getattr(sender, "accepts_any_reply", False):
            await sender.tell(response)
        else:
            await sender.tell(DataMessage(data=response))
        return NO_REPLY


Message.creation_date = _CreationDate()  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]


class DataMessage(Message[Any], Generic[T]):
    """A message carrying one value in ``data``; ``DataMessage[int]`` validates it as an ``int``."""

    data: T


def is_message_class(value: object) -> TypeGuard[type[Message[Any]]]:
    """True if ``value`` is `Message` or a subclass of it (the one test of "a message class")."""
    return isinstance(value, type) and issubclass(value, Message)


def reply_messages(reply_type: Any) -> tuple[list[type[Message[Any]]], bool] | None:
    """How a reply of ``reply_type`` travels, the one rule for its codec and its schemas.

    A reply typed by messages only (``Pong``, ``Pong | Failure``, ``Pong | None``) travels as their
    wire forms (``{"type", "data"}``): the classes, and whether ``None`` (JSON ``null``) is one of
    the arms. Any other reply (``int``, ``Pong | int``, ``None``) travels as the JSON form of its
    type (pydantic's): ``None`` here.
    """
    arms = union_arms(reply_type)
    messages = [arm for arm in arms if is_message_class(arm)]
    if not messages:
        return None
    optional = type(None) in arms
    if len(messages) + optional != len(arms):
        return None
    return messages, optional
