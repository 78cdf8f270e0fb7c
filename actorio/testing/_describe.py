"""How the test kit names messages in its assertion failures: short, and without the noise."""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Sequence
from typing import Any, cast

from typing_extensions import TypeIs

from .. import Message
from ..lowlevel import AskRef

_IGNORED_FIELDS = frozenset({"sender", "creation_date"})
_repr = reprlib.Repr()
_repr.maxstring = 80
_repr.maxother = 80


def is_message(value: object) -> TypeIs[Message[Any]]:
    """``isinstance(value, Message)``, narrowing to ``Message[Any]`` for both type checkers."""
    return isinstance(value, Message)


def content_fields(message: Message[Any]) -> dict[str, Any]:
    """A message's fields, without ``sender`` and ``creation_date`` (which every message has)."""
    return {
        name: getattr(message, name) for name in type(message).model_fields if name not in _IGNORED_FIELDS
    }


def same_content(a: object, b: object) -> bool:
    """Equal messages, ignoring ``sender`` and ``creation_date`` at every level (in lists, tuples,
    dicts and sets of a message's fields too); other values by ``==``."""
    if is_message(a) and is_message(b):
        if type(a) is not type(b):
            return False
        fields_a, fields_b = content_fields(a), content_fields(b)
        return all(same_content(fields_a[name], fields_b[name]) for name in fields_a)
    if type(a) is not type(b):
        return bool(a == b)
    if isinstance(a, (list, tuple)):
        items_a, items_b = cast("Sequence[object]", a), cast("Sequence[object]", b)
        return len(items_a) == len(items_b) and all(map(same_content, items_a, items_b))
    if isinstance(a, dict):
        map_a, map_b = cast("dict[object, object]", a), cast("dict[object, object]", b)
        return map_a.keys() == map_b.keys() and all(same_content(map_a[k], map_b[k]) for k in map_a)
    if isinstance(a, (set, frozenset)):  # each element matched once (messages hash by identity)
        set_a, unmatched = list(cast("Iterable[object]", a)), list(cast("Iterable[object]", b))
        for x in set_a:
            match = next((i for i, y in enumerate(unmatched) if same_content(x, y)), None)
            if match is None:
                return False
            del unmatched[match]
        return not unmatched
    return bool(a == b)


def describe(value: object) -> str:
    """``Greeting(text='Hello Ada!')``: a message's class and content fields, then who sent it
    (``from Greeter-3``, or ``as an ask``) when it has a sender."""
    if not is_message(value):
        return _repr.repr(value)
    message = value
    fields = ", ".join(f"{name}={_field(field)}" for name, field in content_fields(message).items())
    text = f"{type(message).__name__}({fields})"
    sender = message.sender
    if not sender:
        return text
    if isinstance(sender, AskRef):
        return f"{text} as an ask"
    return f"{text} from {sender.identifier}"


def _field(value: object) -> str:
    return describe(value) if is_message(value) else _repr.repr(value)  # nested messages too


def describe_all(values: Iterable[object], limit: int = 10) -> str:
    """The descriptions of ``values``, comma-separated; past ``limit``, how many more there are."""
    items = list(values)
    shown = ", ".join(describe(value) for value in items[:limit])
    if len(items) > limit:
        shown += f", and {len(items) - limit} more"
    return shown
