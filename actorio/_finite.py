"""JSON has no NaN or infinity: pydantic writes them as ``null``, which the model that reads the
JSON back then refuses (or, for an optional field, takes as ``None``). Owns finding such a float
before the JSON leaves: `may_hold_float` (whether a type can hold one at all, so that most
messages and events pay nothing) and `refuse_non_finite` (the ``ValueError`` that names it). The
NATS codec refuses them in messages and replies, the persistence codec in events and states."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal, cast, get_args, get_origin

from pydantic import BaseModel

__all__ = ["FLOATS_ATTRIBUTE", "may_hold_float", "refuse_non_finite"]

FLOATS_ATTRIBUTE = "_actorio_floats"
"""Where `may_hold_float` keeps its answer on a pydantic model class (read it from the class's
``__dict__``: a subclass has its own answer)."""


def _non_finite(value: object, nulls: bool) -> tuple[list[str], float] | None:
    """The first NaN or infinite float in ``value`` that JSON would carry as ``null`` (``nulls``:
    the enclosing model writes them so, pydantic's default): its path, innermost part first, and
    its value; or ``None``."""
    if isinstance(value, float):
        return ([], value) if nulls and not math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bytes)):
        return None
    items: Any
    if isinstance(value, BaseModel):
        model = type(value)
        nulls = model.model_config.get("ser_json_inf_nan", "null") == "null"
        written = model.model_fields
        # Fields excluded from the JSON (a message's sender) lose nothing.
        items = ((k, v) for k, v in vars(value).items() if k not in written or not written[k].exclude)
        fields = True
    elif isinstance(value, Mapping):
        items, fields = cast(Mapping[object, object], value).items(), False
    elif isinstance(value, (list, tuple, set, frozenset)):
        items, fields = enumerate(cast("list[object]", value)), False
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items, fields = (
            ((field.name, getattr(value, field.name, None)) for field in dataclasses.fields(value)),
            True,
        )
    else:
        return None
    for key, member in items:
        found = _non_finite(member, nulls)
        if found is not None:
            found[0].append(f".{key}" if fields else f"[{key!r}]")
            return found
    return None


def may_hold_float(annotation: Any) -> bool:
    """Whether a value of type ``annotation`` may hold a float somewhere (a field, an item, a
    nested model; fields excluded from the JSON, as a message's ``sender``, aside); True when
    unsure (``Any``, a type variable, a forward reference). Only such a value can lose a NaN to
    JSON's ``null``. Found once per pydantic model class (kept on the class, as
    `FLOATS_ATTRIBUTE`)."""
    if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return _floats_in(annotation, frozenset())
    known: bool | None = annotation.__dict__.get(FLOATS_ATTRIBUTE)
    if known is None:
        known = _floats_in(annotation, frozenset())
        type.__setattr__(annotation, FLOATS_ATTRIBUTE, known)
    return known


def _floats_in(annotation: Any, seen: frozenset[int]) -> bool:
    if id(annotation) in seen:
        return False  # a recursive type: its other members answer
    seen = seen | {id(annotation)}
    origin = get_origin(annotation)
    if origin is Literal:
        return False  # a literal float is not NaN
    args: tuple[Any, ...] = get_args(annotation)
    if origin is Annotated:
        return _floats_in(args[0], seen)
    if annotation is Any or annotation is object or annotation is complex:
        return True
    if annotation is None or annotation is Ellipsis:  # ``None`` in a union, ``tuple[int, ...]``
        return False
    if not isinstance(annotation, type):
        # list[float], dict[str, X], X | None, ...; else a type variable, a forward reference
        return any(_floats_in(arg, seen) for arg in args) if args else True
    cls: type[Any] = annotation
    if issubclass(cls, float):
        return True
    if issubclass(cls, BaseModel):
        fields = cls.model_fields
        return any(_floats_in(field.annotation, seen) for field in fields.values() if not field.exclude)
    if dataclasses.is_dataclass(cls):
        return any(_floats_in(field.type, seen) for field in dataclasses.fields(cls))
    hints: dict[str, Any] = getattr(cls, "__annotations__", {})
    if issubclass(cls, dict) and hints:  # a TypedDict
        return any(_floats_in(hint, seen) for hint in hints.values())
    return any(_floats_in(arg, seen) for arg in args)


def refuse_non_finite(value: object, path: str, body: bytes, where: str) -> None:
    """Raise ``ValueError`` if ``body``, the JSON of ``value``, lost a NaN or infinite float: its
    text names the float by its path from ``path`` and says that it cannot ``where`` (``"travel
    over NATS"``, ``"be stored"``)."""
    # Only a body with a null can have lost one: the common case costs one search of the bytes.
    if b"null" in body:
        found = _non_finite(value, True)
        if found is not None:
            parts, number = found
            shown = path + "".join(reversed(parts))
            raise ValueError(
                f"{shown} is {number!r}: JSON has no NaN or infinity, so it cannot {where} (it "
                "would be read as null); use None, a string or a finite number instead"
            )
