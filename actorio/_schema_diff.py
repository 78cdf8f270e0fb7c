"""Whether one JSON Schema accepts every value another accepts: the comparison behind
`actorio.compat`, read structurally from the schemas pydantic writes.

`compare_schemas(receiver, sender, ...)` lists why a value valid under ``sender`` might be refused by
``receiver``: types (``integer`` within ``number``), ``anyOf``/``oneOf``, ``enum``/``const``, bounds,
lengths, ``pattern`` and ``format``, arrays, objects (required fields, fields the receiver does not
declare when it refuses extra ones), and ``$ref`` into the document's ``$defs``. Any other keyword
that constrains a value (``allOf``, ``not``, conditionals) is compared by equality, and a difference
is reported: the comparison never passes what it cannot read.
"""

# pyright: reportUnknownVariableType=false, reportUnknownMemberType=false, reportUnknownArgumentType=false
# This module reads JSON documents and the objects a caller passes: their values are checked with
# isinstance as they are read, and pyright's narrowing of such values leaves their parts unknown.

from __future__ import annotations

import json
import re
from collections import ChainMap
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias, cast

__all__ = ["MAX_STEPS", "Problem", "TooComplex", "compare_schemas"]

Problem: TypeAlias = tuple[str, str, str]
"""One reason: the path of the value, the kind of change, and a sentence (old to new)."""

# Keywords that describe a value without constraining it.
_ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "$comment", "deprecated", "readOnly", "writeOnly"}
)
# Keywords this module compares; any other constraining keyword is compared by equality.
_COMPARED = frozenset(
    {
        "type", "enum", "const", "anyOf", "oneOf", "properties", "required", "additionalProperties",
        "items", "prefixItems", "minItems", "maxItems", "uniqueItems", "minLength", "maxLength",
        "pattern", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
        "multipleOf", "$defs", "definitions", "$ref", "discriminator", "$schema", "$id",
        "minProperties", "maxProperties",
    }
)  # fmt: skip
MAX_STEPS = 50_000
"""The most pairs of schemas one comparison looks at (each union arm tried against another
counts): beyond, `TooComplex`, rather than a run whose length grows with the product of two
unions' sizes."""


class TooComplex(ValueError):
    """The schemas take more than `MAX_STEPS` comparisons."""


_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}


# -- comparing -----------------------------------------------------------------------------


@dataclass
class _Side:
    """A schema and the document its ``$ref``s point into."""

    root: Mapping[str, Any]

    def resolve(self, schema: Any) -> Mapping[str, Any]:
        node: Any = schema
        seen = 0
        while isinstance(node, Mapping) and "$ref" in node and seen < 64:
            reference = node["$ref"]
            target: Any = self.root
            if not isinstance(reference, str) or not reference.startswith("#"):
                return {"$comment": f"unresolved {reference!r}", "not": {}}
            for part in filter(None, reference[1:].split("/")):
                part = part.replace("~1", "/").replace("~0", "~")
                target = cast("Mapping[str, Any]", target).get(part) if isinstance(target, Mapping) else None
            siblings = {k: v for k, v in cast("Mapping[str, Any]", node).items() if k != "$ref"}
            if isinstance(target, Mapping) and siblings:
                node = {**cast("Mapping[str, Any]", target), **siblings}
            else:
                node = target
            seen += 1
        if node is True or node is None:
            return {}
        if node is False:
            return {"not": {}}
        return cast("Mapping[str, Any]", node) if isinstance(node, Mapping) else {}


def _types(schema: Mapping[str, Any]) -> set[str] | None:
    declared = schema.get("type")
    if declared is None:
        if "properties" in schema or "additionalProperties" in schema:
            return {"object"}
        if "items" in schema or "prefixItems" in schema:
            return {"array"}
        return None
    return {declared} if isinstance(declared, str) else {str(t) for t in cast("list[Any]", declared)}


def _values(schema: Mapping[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    if "enum" in schema:
        return list(cast("list[Any]", schema["enum"]))
    return None


def _items(value: object) -> list[Any] | None:
    """A JSON array as a list, else ``None``."""
    if isinstance(value, list):
        return list(cast("Iterable[Any]", value))
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    for kind, name in _JSON_TYPES.items():
        if type(value) is kind:
            return name
    return "object"


def _show(schema: Mapping[str, Any]) -> str:
    values = _values(schema)
    if values is not None:
        return " | ".join(json.dumps(v) for v in values)
    if "anyOf" in schema or "oneOf" in schema:
        return "a union"
    kinds = _types(schema)
    return " | ".join(sorted(kinds)) if kinds else "any value"


def _is_refused(schema: Mapping[str, Any]) -> bool:
    return schema.get("not") == {} or schema.get("not") is True


def _lower(schema: Mapping[str, Any]) -> tuple[float, bool] | None:
    """The lower bound of a number: (bound, exclusive)."""
    bounds: list[tuple[float, bool]] = []
    if isinstance(schema.get("minimum"), (int, float)):
        bounds.append((float(schema["minimum"]), False))
    if isinstance(schema.get("exclusiveMinimum"), (int, float)) and not isinstance(
        schema.get("exclusiveMinimum"), bool
    ):
        bounds.append((float(schema["exclusiveMinimum"]), True))
    return max(bounds, key=lambda b: (b[0], b[1])) if bounds else None


def _upper(schema: Mapping[str, Any]) -> tuple[float, bool] | None:
    bounds: list[tuple[float, bool]] = []
    if isinstance(schema.get("maximum"), (int, float)):
        bounds.append((float(schema["maximum"]), False))
    if isinstance(schema.get("exclusiveMaximum"), (int, float)) and not isinstance(
        schema.get("exclusiveMaximum"), bool
    ):
        bounds.append((float(schema["exclusiveMaximum"]), True))
    return min(bounds, key=lambda b: (b[0], not b[1])) if bounds else None


@dataclass
class _Work:
    """What a comparison and its trials share: the pairs looked at so far (see `MAX_STEPS`), and
    each union's arms indexed by the constants of their properties (see `_likely_first`)."""

    steps: int = 0
    indexes: dict[int, tuple[Any, dict[tuple[str, str], list[int]]]] = field(
        default_factory=dict[int, tuple[Any, dict[tuple[str, str], list[int]]]]
    )
    """By the identity of the schema's list of arms (kept alive here)."""


@dataclass
class _Comparison:
    """Whether every value valid under ``sender`` (the narrower side) is valid under ``receiver``:
    the problems found, each (path, kind, sentence)."""

    receiver: _Side
    sender: _Side
    reader_is_new: bool
    """Whether the receiving side is the new version: each problem is told as a change from old to
    new, whichever side reads."""
    problems: list[Problem] = field(default_factory=list[Problem])
    _seen: MutableMapping[tuple[int, int], tuple[Mapping[str, Any], Mapping[str, Any]]] = field(
        default_factory=dict[tuple[int, int], tuple[Mapping[str, Any], Mapping[str, Any]]]
    )
    """The pairs compared so far, by identity (kept alive here, so that no identity is reused): a
    recursive model is compared once. A trial's own layer over its comparison's (`ChainMap`)."""
    _work: _Work = field(default_factory=lambda: _Work())
    """Shared by a comparison and its trials."""

    def old_new(self, reader: Any, sender: Any) -> tuple[Any, Any]:
        return (sender, reader) if self.reader_is_new else (reader, sender)

    def fail(self, path: str, kind: str, text: str) -> None:
        self.problems.append((path, kind, text))

    def covers(self, receiver: Any, sender: Any, path: str) -> None:
        self._work.steps += 1
        if self._work.steps > MAX_STEPS:
            raise TooComplex(f"the schemas are too large to compare (more than {MAX_STEPS:,} comparisons)")
        r, s = self.receiver.resolve(receiver), self.sender.resolve(sender)
        key = (id(r), id(s))
        if key in self._seen:
            return  # a recursive model: compared once
        self._seen[key] = (r, s)
        if _is_refused(s):
            return  # nothing is sent
        arms = _items(s.get("anyOf") or s.get("oneOf"))
        if arms is not None:
            for arm in arms:
                self.covers(r, self._merged(s, arm), path)
            return
        if not self._constrains(r):
            return
        if _is_refused(r):
            self.fail(path, "retyped", f"{path or 'it'} is refused on one side")
            return
        union = r.get("anyOf") or r.get("oneOf")
        choices = _items(union)
        if choices is not None:
            self._covered_by_one(r, choices, s, path, union)
            return
        self._same_kind(r, s, path)

    def _merged(self, outer: Mapping[str, Any], arm: Any) -> Mapping[str, Any]:
        resolved = dict(self.sender.resolve(arm))
        for key, value in outer.items():
            if key not in ("anyOf", "oneOf", "discriminator") and key not in _ANNOTATIONS:
                resolved.setdefault(key, value)
        return resolved

    def _constrains(self, schema: Mapping[str, Any]) -> bool:
        return any(key not in _ANNOTATIONS and key not in ("$defs", "definitions") for key in schema)

    def _covered_by_one(
        self,
        receiver: Mapping[str, Any],
        choices: list[Any],
        sender: Mapping[str, Any],
        path: str,
        union: Any,
    ) -> None:
        attempts: list[list[Problem]] = []
        for choice in self._likely_first(choices, sender, union):
            trial = _Comparison(
                self.receiver,
                self.sender,
                self.reader_is_new,
                _seen=ChainMap({}, self._seen),
                _work=self._work,
            )
            trial.covers(self._merged_receiver(receiver, choice), sender, path)
            if not trial.problems:
                return
            attempts.append(trial.problems)
        # The closest arm (fewest problems) explains best what changed.
        best = min(attempts, key=len)
        if all(kind == "retyped" for _, kind, _ in best) or not best:
            shown = " | ".join(_show(self.receiver.resolve(c)) for c in choices)
            old, new = self.old_new(shown, _show(sender))
            self.fail(path, "retyped", f"{path or 'it'} changed from {old} to {new}")
        else:
            self.problems.extend(best)

    def _likely_first(self, choices: list[Any], sender: Mapping[str, Any], union: Any) -> list[Any]:
        """The receiver's arms, those whose properties hold the same constants as the sender's
        (a discriminator: ``type``) first, so that matching arms are found at the first trial."""
        marks = _constants(sender)
        if not marks:
            return choices
        held = self._work.indexes.get(id(union))
        if held is None:
            index: dict[tuple[str, str], list[int]] = {}
            for position, choice in enumerate(choices):
                for mark in _constants(self.receiver.resolve(choice)).items():
                    index.setdefault(mark, []).append(position)
            held = self._work.indexes[id(union)] = (union, index)
        matching = set[int].intersection(*(set(held[1].get(mark, ())) for mark in marks.items()))
        return [choices[i] for i in sorted(matching)] + [
            c for i, c in enumerate(choices) if i not in matching
        ]

    def _merged_receiver(self, outer: Mapping[str, Any], arm: Any) -> Mapping[str, Any]:
        resolved = dict(self.receiver.resolve(arm))
        for key, value in outer.items():
            if key not in ("anyOf", "oneOf", "discriminator") and key not in _ANNOTATIONS:
                resolved.setdefault(key, value)
        return resolved

    def _same_kind(self, r: Mapping[str, Any], s: Mapping[str, Any], path: str) -> None:
        where = path or "it"
        sent_values = _values(s)
        accepted_values = _values(r)
        if accepted_values is not None:
            if sent_values is None:
                shown = " | ".join(json.dumps(v) for v in accepted_values)
                old, new = self.old_new(shown, _show(s))
                self.fail(path, "narrowed", f"{where} changed from {old} to {new}")
                return
            self._values_refused(path, [v for v in sent_values if v not in accepted_values])
            return
        accepted_types, sent_types = _types(r), _types(s)
        if sent_values is not None:
            sent_types = {_json_type(v) for v in sent_values}
        if accepted_types is not None:
            if sent_types is None:
                old, new = self.old_new(_show(r), "any value")
                self.fail(path, "narrowed", f"{where} changed from {old} to {new}")
                return
            wider = accepted_types | ({"integer"} if "number" in accepted_types else set[str]())
            if sent_types - wider:
                old, new = self.old_new(_show(r), _show(s))
                self.fail(path, "retyped", f"{where} changed from {old} to {new}")
                return
        if sent_values is not None:  # their types are accepted: are the values?
            self._values_refused(path, [v for v in sent_values if _refuses(r, v)])
            return
        kinds = sent_types or set()
        self._bounds(r, s, where, path)
        if "string" in kinds or not kinds:
            for keyword in ("pattern", "format"):
                if keyword in r and r.get(keyword) != s.get(keyword):
                    old, new = self.old_new(r.get(keyword), s.get(keyword))
                    self.fail(path, "narrowed", f"{where}: {keyword} {_shown(new)} (was {_shown(old)})")
        if "array" in kinds:
            self._arrays(r, s, where, path)
        if "object" in kinds:
            self._objects(r, s, where, path)
        for keyword in sorted(set(r) - _COMPARED - _ANNOTATIONS):
            if r.get(keyword) != s.get(keyword):
                self.fail(path, "changed", f"{where}: {keyword} changed (not compared, so reported)")

    def _values_refused(self, path: str, refused: list[Any]) -> None:
        """Values one side sends that the other refuses, told as a change from old to new."""
        if refused:
            shown = ", ".join(json.dumps(v) for v in refused)
            if self.reader_is_new:
                self.fail(path, "narrowed", f"{path or 'it'} no longer accepts {shown}")
            else:
                self.fail(path, "widened", f"{path or 'it'} now also takes {shown}")

    def _bounds(self, r: Mapping[str, Any], s: Mapping[str, Any], where: str, path: str) -> None:
        for low, high in (
            ("minLength", "maxLength"),
            ("minItems", "maxItems"),
            ("minProperties", "maxProperties"),
        ):
            if isinstance(r.get(low), int) and r[low] > s.get(low, 0):
                old, new = self.old_new(r[low], s.get(low, 0))
                self.fail(path, "narrowed", f"{where}: {low} {new} (was {old})")
            if isinstance(r.get(high), int) and (not isinstance(s.get(high), int) or r[high] < s[high]):
                old, new = self.old_new(r[high], s.get(high))
                self.fail(path, "narrowed", f"{where}: {high} {_shown(new)} (was {_shown(old)})")
        accepted_low, sent_low = _lower(r), _lower(s)
        if accepted_low is not None and (sent_low is None or accepted_low > sent_low):
            old, new = self.old_new(_bound(accepted_low), _bound(sent_low))
            self.fail(path, "narrowed", f"{where}: lower bound {new} (was {old})")
        accepted_high, sent_high = _upper(r), _upper(s)
        if accepted_high is not None and (
            sent_high is None or (accepted_high[0], not accepted_high[1]) < (sent_high[0], not sent_high[1])
        ):
            old, new = self.old_new(_bound(accepted_high), _bound(sent_high))
            self.fail(path, "narrowed", f"{where}: upper bound {new} (was {old})")
        if "multipleOf" in r and r.get("multipleOf") != s.get("multipleOf"):
            old, new = self.old_new(r.get("multipleOf"), s.get("multipleOf"))
            self.fail(path, "narrowed", f"{where}: multipleOf {_shown(new)} (was {_shown(old)})")
        if r.get("uniqueItems") is True and s.get("uniqueItems") is not True:
            text = "items must now be unique" if self.reader_is_new else "items need no longer be unique"
            self.fail(path, "narrowed", f"{where}: {text}")

    def _arrays(self, r: Mapping[str, Any], s: Mapping[str, Any], where: str, path: str) -> None:
        r_prefix = cast("list[Any]", r.get("prefixItems") or [])
        s_prefix = cast("list[Any]", s.get("prefixItems") or [])
        for index in range(max(len(r_prefix), len(s_prefix))):
            accepted = r_prefix[index] if index < len(r_prefix) else r.get("items", {})
            sent = s_prefix[index] if index < len(s_prefix) else s.get("items", {})
            self.covers(accepted, sent, f"{path}[{index}]")
        if "items" in r or "items" in s:
            self.covers(r.get("items", {}), s.get("items", {}), f"{path}[]")

    def _objects(self, r: Mapping[str, Any], s: Mapping[str, Any], where: str, path: str) -> None:
        r_props = cast("Mapping[str, Any]", r.get("properties") or {})
        s_props = cast("Mapping[str, Any]", s.get("properties") or {})
        r_required = set(cast("list[str]", r.get("required") or []))
        s_required = set(cast("list[str]", s.get("required") or []))
        r_extra, s_extra = r.get("additionalProperties", True), s.get("additionalProperties", True)
        prefix = f"{path}." if path else ""
        for name in sorted(r_required - s_required):
            if self.reader_is_new:
                known = name in s_props
                text = (
                    f"field {prefix}{name} became required" if known else f"new required field {prefix}{name}"
                )
                self.fail(path, "new-required-field", text)
            elif name in s_props:
                text = f"field {prefix}{name} became optional (the old side requires it)"
                self.fail(path, "new-required-field", text)
            else:
                self.fail(path, "removed-field", f"required field {prefix}{name} was removed")
        for name, sent in s_props.items():
            if name in r_props:
                self.covers(r_props[name], sent, f"{prefix}{name}")
            elif r_extra is False:
                if self.reader_is_new:
                    text = f"field {prefix}{name} was removed (now refused as an extra field)"
                    self.fail(path, "removed-field", text)
                else:
                    text = f"new field {prefix}{name} (the old side refuses it as an extra field)"
                    self.fail(path, "new-field", text)
            elif isinstance(r_extra, Mapping):
                self.covers(r_extra, sent, f"{prefix}{name}")
        if isinstance(s_extra, Mapping):  # a dict's values: any key, the receiver's fields too
            for name, accepted in r_props.items():
                if name not in s_props:
                    self.covers(accepted, s_extra, f"{prefix}{name}")
        if isinstance(r_extra, Mapping) and (isinstance(s_extra, Mapping) or s_extra is True):
            sent_extra = s_extra if isinstance(s_extra, Mapping) else {}
            self.covers(r_extra, sent_extra, f"{prefix}*")
        if s_extra is not False and r_extra is False:
            self.fail(path, "narrowed", f"{where}: fields it does not declare are refused on one side")


def _constants(schema: Mapping[str, Any]) -> dict[str, str]:
    """The properties of an object schema that hold one value (``"type": {"const": "Ping"}``), each
    with the value's JSON (``1`` and ``true`` differ)."""
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return {}
    found: dict[str, str] = {}
    for name, value in cast("Mapping[str, Any]", properties).items():
        if isinstance(value, Mapping) and "const" in value:
            constant = cast("Mapping[str, Any]", value)["const"]
            if isinstance(constant, (str, int, float, bool)) or constant is None:
                found[name] = json.dumps(constant)
    return found


def _refuses(schema: Mapping[str, Any], value: Any) -> bool:
    """Whether ``schema`` (of a type that takes ``value``'s) refuses ``value`` by a bound, a
    length, a pattern or a format. A format is not checked: any is taken as refusing. A list or
    an object is taken as refused by any keyword beyond its type."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        low, high = _lower(schema), _upper(schema)
        if low is not None and (value < low[0] or (low[1] and value == low[0])):
            return True
        if high is not None and (value > high[0] or (high[1] and value == high[0])):
            return True
        step = schema.get("multipleOf")
        if isinstance(step, (int, float)) and not isinstance(step, bool) and step > 0:
            quotient = value / step
            return quotient != round(quotient)
        return False
    if isinstance(value, str):
        if isinstance(schema.get("minLength"), int) and len(value) < schema["minLength"]:
            return True
        if isinstance(schema.get("maxLength"), int) and len(value) > schema["maxLength"]:
            return True
        pattern = schema.get("pattern")
        if pattern is not None:
            try:
                if not isinstance(pattern, str) or re.search(pattern, value) is None:
                    return True
            except re.error:
                return True
        return "format" in schema
    if value is None or isinstance(value, bool):
        return False
    return any(key not in _ANNOTATIONS and key != "type" for key in schema)


def _bound(bound: tuple[float, bool] | None) -> str:
    return "none" if bound is None else f"{bound[0]:g}"


def _shown(value: Any) -> str:
    return "none" if value is None else json.dumps(value)


def _without_type(envelope: Mapping[str, Any]) -> dict[str, Any]:
    """A wire form's schema without its ``type`` property: wire names are compared by name."""
    copy = dict(envelope)
    properties = copy.get("properties")
    if isinstance(properties, Mapping):
        copy["properties"] = {k: v for k, v in cast("Mapping[str, Any]", properties).items() if k != "type"}
    return copy


def compare_schemas(
    receiver: Mapping[str, Any], sender: Mapping[str, Any], *, payload: bool, reader_is_new: bool
) -> list[Problem]:
    if payload:
        receiver, sender = _without_type(receiver), _without_type(sender)
    comparison = _Comparison(_Side(receiver), _Side(sender), reader_is_new)
    comparison.covers(receiver, sender, "")
    return comparison.problems
