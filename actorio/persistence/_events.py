"""Events as data: `Event` (a frozen pydantic model with a wire name and a version), `upcaster`
(the step from one version of an event to the next, declared on the model), and `EventCodec`,
which writes events and reads stored ones back, upcasting old versions and refusing what no
longer fits."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, TypeVar, cast

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticSerializationError, to_json

from actorio.lowlevel import may_hold_float, refuse_non_finite, shorten, union_arms

from ._errors import SchemaMismatch
from ._records import EventData, event_data

__all__ = [
    "Event",
    "EventCodec",
    "check_stored",
    "computed",
    "declared_upcasters",
    "decode_model",
    "dump_json",
    "load_json",
    "read_options",
    "stored_json",
    "upcast",
    "upcaster",
]

M = TypeVar("M", bound=BaseModel)

_UPCASTER_ATTRIBUTE = "__actorio_upcasts_from__"


ClassMethodT = TypeVar("ClassMethodT")


def upcaster(from_version: int) -> Callable[[ClassMethodT], ClassMethodT]:
    """Declare, on an `Event` class (or on a `DurableStateActor` class, for its stored state),
    the step from stored version ``from_version`` to ``from_version + 1``: a classmethod taking
    the stored fields (a dict) and returning the fields of the next version::

        class Deposited(Event):
            event_version = 2
            amount: int
            currency: str

            @upcaster(from_version=1)
            @classmethod
            def add_currency(cls, fields: dict[str, Any]) -> dict[str, Any]:
                return {**fields, "currency": "EUR"}

    A stored version-1 event goes through every step up to the class's `event_version` (a
    stored state up to the actor's ``state_version``).
    """
    if not (isinstance(from_version, int) and from_version >= 1):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ValueError("from_version must be an int >= 1")

    def decorate(method: ClassMethodT) -> ClassMethodT:
        function: object = getattr(method, "__func__", None)
        if not isinstance(cast(object, method), classmethod) or function is None:
            raise TypeError("@upcaster(...) goes above @classmethod")
        setattr(function, _UPCASTER_ATTRIBUTE, from_version)
        return method

    return decorate


class Event(BaseModel):
    """The base of persisted events: a frozen pydantic model.

    Class attributes: ``event_name`` (the wire name stored with each event; the class name by
    default, not inherited: give it to keep a stored name when the class is renamed) and
    ``event_version`` (1 by default; raise it when the fields change, and declare the step from
    the version before with `upcaster`). Two upcasters from one version is a ``TypeError`` at
    class creation. An event refuses fields it does not declare (``extra="forbid"``), so that a
    stored field removed from the model is reported, not dropped."""

    # extra="forbid": a stored field the model no longer declares is refused, not dropped (and
    # checking it in pydantic's own parse costs nothing: recovery reads stored JSON straight in).
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_name: ClassVar[str]
    event_version: ClassVar[int] = 1
    event_upcasters: ClassVar[dict[int, str]] = {}
    """from version -> the name of the classmethod that upcasts it (filled at class creation)."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "event_name" not in vars(cls):
            cls.event_name = cls.__name__
        cls.event_upcasters = declared_upcasters(cls, cls.event_version, "event_version", (cls,))


def declared_upcasters(
    owner: type, version: object, attribute: str, classes: Iterable[type]
) -> dict[int, str]:
    """from version -> the name of the classmethod that `upcaster` declared for that step, on
    ``classes`` (in order: a later class's step replaces an earlier one's), for ``owner`` whose
    ``attribute`` is ``version``. ``TypeError`` for a version that is not an int >= 1, two steps
    from one version in one class, or a step from ``version`` or later."""
    if not (isinstance(version, int) and version >= 1):
        raise TypeError(f"{owner.__qualname__}.{attribute} must be an int >= 1")
    steps: dict[int, str] = {}
    for klass in classes:
        mine: dict[int, str] = {}
        for name, value in vars(klass).items():
            function = getattr(value, "__func__", None)
            source = getattr(function, _UPCASTER_ATTRIBUTE, None)
            if source is None:
                continue
            if source in mine:
                raise TypeError(
                    f"{klass.__qualname__}: two upcasters from version {source}: {mine[source]}, {name}"
                )
            mine[source] = name
        steps.update(mine)
    for source, name in steps.items():
        # A step runs as getattr(owner, name): a class below the one that declared it must not
        # give that name to something else (another step, a plain method).
        found = getattr(getattr(owner, name, None), "__func__", None)
        if getattr(found, _UPCASTER_ATTRIBUTE, None) != source:
            raise TypeError(
                f"{owner.__qualname__}.{name} hides the upcaster from version {source} declared above "
                "it: give each step a name of its own"
            )
        if source >= version:
            raise TypeError(
                f"{owner.__qualname__}.{name} upcasts from version {source}, but {attribute} is {version}"
            )
    return steps


def upcast(owner: type, steps: dict[int, str], fields: Any, version: int, target: int, what: str) -> Any:
    """Stored ``fields`` of ``version``, through each of ``owner``'s ``steps`` (see
    `declared_upcasters`) up to ``target``. `SchemaMismatch` (its text begins with ``what``)
    for a version newer than ``target``, a missing step, fields that are not a JSON object, or a
    step that raised (stored fields it did not expect: its error is the cause)."""
    if version > target:
        raise SchemaMismatch(f"{what}: newer than {owner.__qualname__} (version {target})")
    while version < target:
        step = steps.get(version)
        if step is None:
            raise SchemaMismatch(
                f"{what}: {owner.__qualname__} is at version {target} and declares no upcaster "
                f"from version {version}"
            )
        if not isinstance(fields, dict):
            raise SchemaMismatch(f"{what}: stored fields are not a JSON object")
        try:
            fields = getattr(owner, step)(fields)
        except Exception as error:
            raise SchemaMismatch(
                f"{what}: {owner.__qualname__}.{step} (from version {version}) failed: {error!r}"[:1000]
            ) from error
        version += 1
    return fields


_VALIDATE = inspect.signature(BaseModel.model_validate).parameters
_EXTRA = "extra" in _VALIDATE  # pydantic 2.12 or later
_READ_OPTIONS = "_actorio_read_options"
STORED = "be stored"
"""What a NaN or infinite float in an event or a state cannot do (see `refuse_non_finite`)."""


def dump_json(model: BaseModel) -> bytes:
    """The stored JSON of ``model``: ``model.model_dump_json(by_alias=False).encode()`` (each field
    under its name, whatever its aliases: a serialization alias need not be one the model reads),
    at a third of the cost: the model's serializer called directly, without the keyword arguments
    that ``model_dump_json`` passes on (callgrind: 18,900 instructions per event encoded, of which
    ``model_dump_json`` 10,800)."""
    return type(model).__pydantic_serializer__.to_json(model, by_alias=False)


def check_stored(model: BaseModel, payload: bytes, what: str) -> None:
    """Raise ``ValueError`` if ``payload``, ``model``'s `dump_json`, lost a NaN or an infinite
    float: JSON has none, and the model would read ``null`` back (``what`` names the model)."""
    if may_hold_float(type(model)):
        refuse_non_finite(model, what, payload, STORED)


def read_options(model: type[BaseModel]) -> dict[str, Any]:
    """How stored JSON is read into ``model`` (found once per class, kept on it), as keyword
    arguments of its validation, none where none is needed: a model with aliases reads each field
    by its name only (`dump_json` writes names: by alias too, an alias equal to another field's
    name would swap them); and a model with models inside refuses, in each, a field it does not
    declare (pydantic 2.12 or later; before, only the top level is checked, by `decode_model`),
    so that a field removed from a nested model is reported, not dropped, unless one of them
    keeps extra fields or has computed fields (written to JSON, not read back)."""
    options: dict[str, Any] | None = model.__dict__.get(_READ_OPTIONS)
    if options is None:
        schema = model.__pydantic_core_schema__
        options = {"by_alias": False, "by_name": True} if has_aliases(schema) else {}
        if _EXTRA and _nested_check(model, schema):
            options["extra"] = "forbid"
        type.__setattr__(model, _READ_OPTIONS, options)
    return options


def _nested_check(model: type[BaseModel], schema: Any) -> bool:
    """Whether ``model`` may refuse extra fields in the models inside it: it has some (counting
    itself, when it is recursive), none keeps extra fields, and none but itself has computed
    fields (its own are dropped before validation; a recursive one's are nested too)."""
    root = schema.get("ref") if schema.get("type") == "model" else schema.get("schema", {}).get("schema_ref")
    refs = _count(
        schema, lambda node: node.get("type") == "definition-ref" and node.get("schema_ref") == root
    )
    recursive = refs > (1 if schema.get("type") == "definitions" else 0)
    models = _count(schema, lambda node: node.get("type") in ("model", "typed-dict", "dataclass"))
    own = 1 if computed(model) else 0
    return (
        (models > 1 or recursive)
        and not _schema_has(schema, _keeps_extra)
        and _count(schema, lambda node: bool(node.get("computed_fields"))) == own
        and not (own and recursive)
    )


def _keeps_extra(node: dict[str, object]) -> bool:
    """A model (a typed dict, a dataclass) that keeps extra fields."""
    return "allow" in (node.get("extra_behavior"), node.get("extra_fields_behavior"))


def _count(schema: object, found: Callable[[dict[str, object]], bool]) -> int:
    """How many nodes of a pydantic core schema (dicts and lists) are ``found``."""
    count = 0
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            items = cast("dict[str, object]", node)
            count += found(items)
            stack.extend(items.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(cast("list[object]", node))
    return count


def has_aliases(schema: object) -> bool:
    """Whether a pydantic core schema has a field (or a computed field) with an alias."""
    return _schema_has(
        schema,
        lambda node: (
            "serialization_alias" in node
            or "validation_alias" in node
            or (node.get("type") == "computed-field" and "alias" in node)
        ),
    )


def computed(model: type[BaseModel]) -> frozenset[str]:
    """The keys ``model``'s computed fields are written under (names and aliases): dropped when
    read back."""
    fields = model.model_computed_fields
    return frozenset(fields) | {field.alias for field in fields.values() if field.alias}


def _schema_has(schema: object, found: Callable[[dict[str, object]], bool]) -> bool:
    """Whether a node of a pydantic core schema is ``found``."""
    return _count(schema, found) > 0


def stored_json(payload: bytes, what: str) -> Any:
    """Stored JSON, read: `SchemaMismatch` naming ``what`` if it is not JSON, or is nested deeper
    than the parser goes (a ``RecursionError`` otherwise)."""
    try:
        return json.loads(payload)
    except (ValueError, RecursionError) as error:
        raise SchemaMismatch(f"{what}: not JSON ({shorten(str(error))})") from None


def load_json(model: type[M], payload: bytes) -> M:
    """``model`` validated from stored JSON, read as `read_options` says (its computed fields
    dropped first; nested deeper than pydantic reads JSON: see `_validate_fields`)."""
    if not computed(model):
        try:
            return model.model_validate_json(payload, **read_options(model))
        except ValidationError as error:
            if not _too_deep(error):
                raise
    return _validate_fields(model, _stored_fields(model, json.loads(payload)))


def _validate_fields(model: type[M], fields: dict[object, object], *, stored: bool = True) -> M:
    """``model`` validated from ``fields`` read from stored JSON (computed fields dropped, and,
    ``stored`` False, upcasters run since) by JSON's rules, as stored bytes are read: written
    back to JSON first. From a dict, pydantic keeps a string in a ``datetime | str`` union a
    string, and a strict model refuses the strings JSON stores a datetime, a UUID or a decimal
    as.

    Read from the dict, by pydantic's Python rules, as a whole: what an upcaster returned if it
    holds anything but JSON's values (`_json_only`: a datetime, bytes, a model, a tuple, written
    to JSON, would read back otherwise), and, laxly (a strict model too), a record of JSON's
    values nested deeper than pydantic reads JSON (`_too_deep`). ``ValidationError`` if
    ``model`` refuses them."""
    options = read_options(model)
    if stored or _json_only(fields):
        try:
            payload = to_json(fields, inf_nan_mode="constants")
        except PydanticSerializationError:  # nested too deep for the writer, a lone surrogate
            pass
        else:
            try:
                return model.model_validate_json(payload, **options)
            except ValidationError as error:
                if not _too_deep(error):
                    raise
            # JSON's values, too deep for JSON's rules: read laxly, so that a strict model
            # takes the strings its datetimes are stored as (a state it saved itself).
            return model.model_validate(fields, strict=False, **options)
    return model.model_validate(fields, **options)


def _too_deep(error: ValidationError) -> bool:
    """Whether pydantic refused JSON for its depth alone: its JSON reader stops at about 200
    levels, where ``json.loads`` and pydantic's own writer go further (a state the actor saved)."""
    if error.error_count() != 1:
        return False
    (found,) = error.errors(include_url=False, include_context=False, include_input=False)
    return found["type"] == "json_invalid" and not found["loc"] and "recursion limit" in found["msg"]


_JSON_SCALARS = (str, int, float, bool, type(None))


def _json_only(fields: object) -> bool:
    """Whether ``fields`` holds only JSON's values: dicts (exactly) with string keys, lists,
    strings, numbers, booleans and ``None``, each dict and list met once (a cycle or a shared
    part is not JSON's), looked at without recursion."""
    stack = [fields]
    seen: set[int] = set()
    while stack:
        value = stack.pop()
        kind = type(value)
        if kind is dict or kind is list:
            if id(value) in seen:
                return False
            seen.add(id(value))
            if kind is list:
                stack.extend(cast("list[object]", value))
                continue
            items = cast("dict[object, object]", value)
            if not all(type(key) is str for key in items):
                return False
            stack.extend(items.values())
        elif kind not in _JSON_SCALARS:
            return False
    return True


def _stored_fields(model: type[BaseModel], fields: dict[object, object]) -> dict[object, object]:
    """Stored ``fields`` without ``model``'s computed fields (written, never read back)."""
    derived = computed(model)
    return {key: value for key, value in fields.items() if key not in derived} if derived else fields


def decode_model(model: type[BaseModel], fields: object, what: str, *, stored: bool = True) -> Any:
    """``model`` validated from ``fields`` (a dict read from stored JSON; ``stored`` False:
    upcasters ran since), read by JSON's rules (see `_validate_fields`): `SchemaMismatch` for a
    field the model does not declare (it was removed: an upcaster must drop it) or a value it
    refuses."""
    if not isinstance(fields, dict):
        raise SchemaMismatch(f"{what}: stored fields are not a JSON object")
    fields = _stored_fields(model, cast("dict[object, object]", fields))
    keys: list[object] = list(fields)
    declared = set(model.model_fields)  # read by name (see `read_options`)
    removed = sorted(str(key) for key in keys if key not in declared)
    if removed:
        raise _removed_fields(what, removed, model)
    try:
        return _validate_fields(model, fields, stored=stored)
    except ValidationError as error:
        raise _mismatch(model, error, what) from None


class EventCodec:
    """Writes the events of one union and reads them back.

    ``encode`` gives an event's wire name, version and JSON fields (``TypeError`` for an object
    that is not one of the codec's events). ``decode`` reads a stored event: its wire name picks
    the class, each upcaster from its version to the class's runs in turn, and the fields are
    validated (`SchemaMismatch` for an unknown name, a version newer than the class's or with a
    missing step, a field the class no longer declares, a value it refuses)."""

    def __init__(self, event_types: Iterable[type[Event]]) -> None:
        self.by_name: dict[str, type[Event]] = {}
        for event_type in event_types:
            if not (isinstance(event_type, type) and issubclass(event_type, Event)):  # pyright: ignore[reportUnnecessaryIsInstance]
                raise TypeError(f"{event_type!r} is not an Event class")
            other = self.by_name.get(event_type.event_name)
            if other is not None and other is not event_type:
                raise TypeError(
                    f"{other.__qualname__} and {event_type.__qualname__} have one wire name, "
                    f"{event_type.event_name!r}"
                )
            self.by_name[event_type.event_name] = event_type
        self.types = frozenset(self.by_name.values())
        self._writers: dict[type[Event], tuple[str, int, Callable[[Event], bytes], bool]] = {}
        """event class -> its wire name, its version, its serializer's ``to_json`` and whether it
        may hold a float (`may_hold_float`), read once:
        each is a class attribute of a pydantic model, whose metaclass's ``__getattr__`` makes a
        class attribute cost about 1,000 instructions to read (callgrind), and ``encode`` read
        three per event."""

        self._readers: dict[type[Event], Callable[[bytes], Event] | None] = {}
        """event class -> what reads its stored bytes (`_reader`), made on its first event read
        (as `_writers`)."""

    @classmethod
    def of_annotation(cls, annotation: object) -> EventCodec:
        """The codec of an annotation: one `Event` class or a union of them."""
        return cls(union_arms(annotation))

    def encode(self, event: Event) -> EventData:
        writer = self._writers.get(type(event))
        if writer is None:
            writer = self._writer(type(event))
        name, version, to_json, floats = writer
        payload = to_json(event)
        if floats:
            refuse_non_finite(event, type(event).__qualname__, payload, STORED)
        return event_data(name, version, payload)

    def _writer(self, event_type: type[Event]) -> tuple[str, int, Callable[[Event], bytes], bool]:
        """What `encode` reads of ``event_type``, read on its first event (not at the codec's
        making: a model may be completed, and its serializer made, after the actor class)."""
        if event_type not in self.types:
            raise TypeError(f"{event_type.__qualname__} is not one of this actor's events")
        serializer = event_type.__pydantic_serializer__
        # Without an alias, by alias is by name: no keyword to pass (each costs).
        aliases = has_aliases(event_type.__pydantic_core_schema__)
        to_json: Callable[[Event], bytes] = (
            functools.partial(serializer.to_json, by_alias=False) if aliases else serializer.to_json
        )
        name, floats = event_type.event_name, may_hold_float(event_type)
        writer = self._writers[event_type] = (name, event_type.event_version, to_json, floats)
        return writer

    def decode(self, name: str, version: int, payload: bytes) -> Event:
        event_type = self.by_name.get(name)
        what = f"stored event {shorten(name)!r} version {version}"
        if event_type is None:
            raise SchemaMismatch(f"{what}: no event class has that wire name (known: {sorted(self.by_name)})")
        if event_type in self._readers:
            reader = self._readers[event_type]
        else:
            reader = self._readers[event_type] = _reader(event_type)
        if reader is not None and version == event_type.event_version:  # pydantic parses the bytes
            try:
                return reader(payload)
            except ValidationError as error:
                if not _too_deep(error):
                    raise _mismatch(event_type, error, what) from None
        fields = stored_json(payload, what)
        fields = upcast(
            event_type, event_type.event_upcasters, fields, version, event_type.event_version, what
        )
        event: Event = decode_model(event_type, fields, what, stored=version == event_type.event_version)
        return event


def _reader(event_type: type[Event]) -> Callable[[bytes], Event] | None:
    """What reads a stored event of ``event_type``'s version from its bytes: its validator with
    `read_options`; None for a class with computed fields, read through `decode_model` (which
    drops them)."""
    if computed(event_type):
        return None
    validate: Callable[..., Event] = event_type.__pydantic_validator__.validate_json
    options = read_options(event_type)
    return functools.partial(validate, **options) if options else validate


def _mismatch(model: type[BaseModel], error: ValidationError, what: str) -> SchemaMismatch:
    """The `SchemaMismatch` of a stored event that ``model`` refused: removed fields named. Its
    text is bounded whatever the stored event held (a field each of a million is one error each)."""
    errors = error.errors(include_url=False, include_context=False, include_input=False)
    removed = sorted(
        ".".join(map(str, e["loc"])) for e in errors if e["type"] == "extra_forbidden" and e["loc"]
    )
    if removed:
        return _removed_fields(what, removed, model)
    if any(e["type"] == "json_invalid" and not e["loc"] for e in errors):  # (not a `Json` field's)
        return SchemaMismatch(f"{what}: not JSON ({shorten(str(error))})")
    if any(e["type"] == "model_type" for e in errors):
        return SchemaMismatch(f"{what}: stored fields are not a JSON object")
    return SchemaMismatch(f"{what}: {shorten(str(error))}")


def _removed_fields(what: str, removed: list[str], model: type[BaseModel]) -> SchemaMismatch:
    """Stored fields ``model`` does not declare: the error naming them (within `shorten`'s bound)."""
    fields = shorten(", ".join(map(repr, removed[:100])))
    if len(removed) > 100:
        fields += f" and {len(removed) - 100} more"
    return SchemaMismatch(
        f"{what}: stored field(s) {fields} are not in {model.__qualname__} "
        "(a removed field needs an upcaster that drops it; or another program's records share "
        "this persistence id: give each program its own entity type or journal)"
    )
