"""``python -m actorio``: an actor's protocol, exported for other programs.

::

    python -m actorio schema  module:Actor             the protocol as JSON Schema, on stdout
    python -m actorio inspect module:Actor             a table: wire name, class, handler, reply
    python -m actorio stubs   module[:Actor] ... -o DIR   a typed client stub per module (.pyi)
    python -m actorio compat  OLD NEW                  whether NEW is compatible with OLD
    python -m actorio asyncapi module:Actor=name ...   an AsyncAPI 3.0 document of NATS publications

``--path DIR`` puts ``DIR`` first on ``sys.path`` before importing. An error (a module that cannot be
imported, a name that is not an actor class, an output that cannot be written: ``-o`` naming a file,
a directory that cannot be created, a stub that cannot be written, standard output closed or full)
prints one line on stderr and exits with status 1.

A stub, ``DIR/<module>_client.pyi``, declares the message classes the module's actors accept and
reply with (as ``Message[Reply]`` subclasses with their fields) and, per actor, ``<Actor>Ref``
(``ActorRef[<its protocol>]``) and ``<Actor>Protocol``: code that holds a reference imports its
types from the stub, and is type-checked against the actor's protocol without importing the actor.
Other types the messages' fields use are imported from where they are defined.
"""

from __future__ import annotations

import argparse
import enum
import importlib
import inspect
import json
import os
import sys
import types
import typing
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import pydantic

import actorio

from ._actor import Actor
from ._log_limit import printable
from ._message import Message
from ._protocol import ActorProtocol, message_types_of, reply_type_of, wire_name_of

__all__ = ["CommandError", "main", "render_stub"]


class CommandError(Exception):
    """A command that cannot be carried out: its message is the one line printed."""


class _OutputError(CommandError):
    """Standard output cannot be written: a closed pipe, a full disk."""


def _reason(error: OSError) -> str:
    """What the system said, without the errno and file name that ``str(error)`` adds."""
    return error.strerror or str(error)


def _write(out: TextIO, text: str) -> None:
    try:
        out.write(text)
        out.flush()
    except OSError as error:
        raise _OutputError(f"cannot write to standard output: {_reason(error)}") from None


def _discard_standard_output() -> None:
    """Point the process's standard output at the null device, so that what its buffer still holds
    is dropped at exit rather than failing again there, with a report of its own."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, sys.stdout.fileno())
        finally:
            os.close(null)
    except (OSError, ValueError):  # no file descriptor: nothing is flushed to it at exit
        pass


# -- finding the actors --------------------------------------------------------------------------


@contextmanager
def _search_path(directory: str | None) -> Generator[None, None, None]:
    if directory is None or directory in sys.path:
        yield
        return
    sys.path.insert(0, directory)
    try:
        yield
    finally:
        sys.path.remove(directory)


def _import(module_name: str) -> types.ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and (module_name + ".").startswith(error.name + "."):
            raise CommandError(f"no module named {module_name!r}") from None
        raise CommandError(f"importing {module_name!r} failed: {type(error).__name__}: {error}") from None
    except Exception as error:
        raise CommandError(f"importing {module_name!r} failed: {type(error).__name__}: {error}") from None


def _is_actor_class(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, Actor)


def load_actor(target: str) -> type[Actor[Any]]:
    """The actor class named by ``module:Class`` (``Class`` may be dotted: ``Outer.Inner``)."""
    module_name, _, name = target.partition(":")
    if not module_name or not name:
        raise CommandError(f"expected module:Actor, got {target!r}")
    value: object = _import(module_name)
    missing = object()
    for part in name.split("."):
        value = getattr(value, part, missing)
        if value is missing:
            raise CommandError(f"{module_name!r} has no attribute {name!r}")
    if not _is_actor_class(value):
        raise CommandError(f"{target} is not an actor class (an actorio.Actor subclass)")
    return typing.cast("type[Actor[Any]]", value)


def load_actors(target: str) -> tuple[str, list[type[Actor[Any]]]]:
    """``module:Class`` -> that actor class; ``module`` -> every actor class the module defines."""
    if ":" in target:
        actor = load_actor(target)
        return target.partition(":")[0], [actor]
    module = _import(target)
    actors = [
        typing.cast("type[Actor[Any]]", value)
        for value in vars(module).values()
        if _is_actor_class(value) and value.__module__ == module.__name__
    ]
    if not actors:
        raise CommandError(f"module {target!r} defines no actor class")
    return target, actors


# -- schema and inspect --------------------------------------------------------------------------


def _describe(annotation: Any) -> str:
    """A type as a reader wants it in a table: classes qualified by their module."""
    if annotation is None or annotation is type(None):
        return "None"
    if isinstance(annotation, type) and typing.get_origin(annotation) is None:
        if annotation.__module__ == "builtins":
            return annotation.__qualname__
        return f"{annotation.__module__}.{annotation.__qualname__}"
    return repr(annotation).replace("typing.", "")


def _inspect_table(protocol: ActorProtocol[Any]) -> str:
    actor = protocol.actor_type
    if actor._actor_message_types is None:  # pyright: ignore[reportPrivateUsage]
        origin = "untyped: the message types its @handles handlers take"
    else:
        origin = "its Actor[...] argument"
    count = len(protocol)
    heading = f"{protocol.name}: {count} message type{'' if count == 1 else 's'} ({origin})"
    rows: list[tuple[str, ...]] = [("wire name", "message class", "handler", "reply type")]
    for entry in protocol:
        rows.append(
            (
                entry.wire_name,
                _describe(entry.message_type),
                getattr(entry.handler, "__qualname__", repr(entry.handler)),
                _describe(entry.reply_type),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    rows.insert(1, tuple("-" * width for width in widths))
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join([heading, "", *lines]) + "\n"


# -- stubs ---------------------------------------------------------------------------------------

_STUB_TEMPLATE = '''"""Typed client of the actors of `{module}`: {actors}.

Generated from {module} by `python -m actorio stubs`: do not edit, regenerate. It declares the
messages these actors accept and reply with, and a reference type per actor, so that code holding a
reference is type-checked against the actor's protocol without importing {module}.
"""

'''


def _is_message_class(value: object) -> typing.TypeGuard[type[Message[Any]]]:
    return isinstance(value, type) and issubclass(value, Message)


def _is_actorio(cls: type) -> bool:
    return cls.__module__ == "actorio" or cls.__module__.startswith("actorio.")


class _StubWriter:
    """Renders the message classes of one stub module, dependencies first, and its imports."""

    def __init__(self) -> None:
        self.imports: dict[str, set[str]] = {}
        self.names: dict[str, object] = {}
        self.rendering: set[type] = set()
        self.classes: list[str] = []  # the declared message classes, in stub order

    def use(self, module: str, name: str, value: object) -> str:
        """Import ``name`` from ``module`` and return how the stub spells it."""
        other = self.names.setdefault(name, value)
        if other is not value:
            raise CommandError(f"two types named {name!r} in one stub: {other!r} and {value!r}")
        self.imports.setdefault(module, set()).add(name)
        return name

    def use_class(self, cls: type) -> str:
        if cls.__module__ == "builtins":
            return cls.__qualname__
        if _is_actorio(cls) and getattr(actorio, cls.__name__, None) is cls:
            return self.use("actorio", cls.__name__, cls)
        if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
            raise CommandError(
                f"{cls.__qualname__} cannot be imported in a stub (it is not defined in a module)"
            )
        outer, _, inner = cls.__qualname__.partition(".")
        spelled = self.use(cls.__module__, outer, getattr(sys.modules.get(cls.__module__), outer, cls))
        return f"{spelled}.{inner}" if inner else spelled

    def render(self, annotation: Any) -> str:
        """The stub's spelling of a type annotation."""
        if annotation is None or annotation is type(None):
            return "None"
        if annotation is Any or isinstance(annotation, typing.TypeVar):
            return self.use("typing", "Any", Any)
        if annotation is Ellipsis:
            return "..."
        if isinstance(annotation, list):
            items = typing.cast("list[object]", annotation)
            return "[" + ", ".join(self.render(item) for item in items) + "]"
        origin = typing.get_origin(annotation)
        arguments = typing.get_args(annotation)
        if origin is typing.Annotated:
            return self.render(arguments[0])
        if isinstance(annotation, types.UnionType) or origin is typing.Union:
            return " | ".join(self.render(argument) for argument in arguments)
        if origin is typing.Literal:
            return (
                f"{self.use('typing', 'Literal', typing.Literal)}[{', '.join(map(self._literal, arguments))}]"
            )
        if origin is not None:
            spelled = self.render(origin)
            rendered = ", ".join(self.render(argument) for argument in arguments) if arguments else "()"
            return f"{spelled}[{rendered}]"
        if isinstance(annotation, type):
            return self._render_class(annotation)
        name = getattr(annotation, "__name__", None)
        module = getattr(annotation, "__module__", None)
        if (
            isinstance(name, str)
            and isinstance(module, str)
            and getattr(sys.modules.get(module), name, None) is annotation
        ):
            return self.use(module, name, annotation)  # a NewType, a typing special form
        raise CommandError(f"cannot write the type {annotation!r} in a stub")

    def _literal(self, value: object) -> str:
        if isinstance(value, str):
            return json.dumps(value)  # double quotes, as the formatter writes them
        if isinstance(value, (bytes, int, bool)) or value is None:
            return repr(value)
        if isinstance(value, enum.Enum):
            return f"{self.use_class(type(value))}.{value.name}"
        raise CommandError(f"cannot write the literal {value!r} in a stub")

    def _render_class(self, cls: type) -> str:
        if not _is_message_class(cls):
            return self.use_class(cls)
        message_type = cls
        metadata = message_type.__pydantic_generic_metadata__
        origin = metadata["origin"]
        if origin is not None:  # Message[int], DataMessage[str]; Box[int] is written Box
            if not _is_actorio(origin):
                return self.render(origin)
            arguments = ", ".join(self.render(argument) for argument in metadata["args"])
            return f"{self.render(origin)}[{arguments}]"
        if _is_actorio(message_type):
            return self.use_class(message_type)
        return self.declare(message_type)

    def declare(self, cls: type[Message[Any]]) -> str:
        """Declare a message class in the stub (once), after the classes it uses."""
        name = cls.__name__
        other = self.names.setdefault(name, cls)
        if other is not cls:
            raise CommandError(f"two types named {name!r} in one stub: {other!r} and {cls!r}")
        if cls not in self.rendering:
            self.rendering.add(cls)
            # Rendered before it is added: the classes it uses come first in the stub.
            self.classes.append(self._class_text(cls))
        return name

    def _class_text(self, cls: type[Message[Any]]) -> str:
        bases: list[str] = []
        inherited: set[str] = set()
        for base in cls.__bases__:
            if base is typing.Generic:
                continue
            if base is Message:
                bases.append(f"{self.use('actorio', 'Message', Message)}[None]")
            else:
                bases.append(self.render(base))
            inherited.update(getattr(base, "model_fields", {}))
        own = inspect.get_annotations(cls)
        reply = self.render(reply_type_of(cls))
        lines = [f'    """Wire name: {json.dumps(wire_name_of(cls))}. Reply: {reply}."""']
        wire_name = vars(cls).get("wire_name")
        if wire_name is not None:
            class_var = self.use("typing", "ClassVar", typing.ClassVar)
            lines.append(f"    wire_name: {class_var}[str] = {json.dumps(wire_name)}")
        aliases = vars(cls).get("wire_aliases")
        if aliases is not None:
            class_var = self.use("typing", "ClassVar", typing.ClassVar)
            names = ", ".join(json.dumps(alias) for alias in aliases) + ("," if len(aliases) == 1 else "")
            lines.append(f"    wire_aliases: {class_var}[tuple[str, ...]] = ({names})")
        for field_name, field in cls.model_fields.items():
            if field_name == "sender" or (field_name in inherited and field_name not in own):
                continue
            line = f"    {field_name}: {self.render(field.annotation)}"
            if field.alias is not None and field.alias != field_name:
                default = "" if field.is_required() else "default=..., "
                specifier = self.use("pydantic", "Field", pydantic.Field)
                line += f" = {specifier}({default}alias={json.dumps(field.alias)})"
            elif not field.is_required():
                line += " = ..."
            lines.append(line)
        if len(lines) > 1:
            lines.insert(1, "")
        body = "\n".join(lines)
        return f"class {cls.__name__}({', '.join(bases)}):\n{body}\n"


def render_stub(module: str, actors: Sequence[type[Actor[Any]]]) -> str:
    """The text of the typed client stub of ``actors`` (defined in ``module``)."""
    writer = _StubWriter()
    aliases: list[str] = []
    for actor in actors:
        members = message_types_of(actor)
        declared = actor._actor_message_types is not None  # pyright: ignore[reportPrivateUsage]
        spelled = [writer.render(member) for member in members]
        for member in members:
            writer.render(reply_type_of(member))
        if declared and spelled:
            protocol = " | ".join(spelled)
        else:
            protocol = f"{writer.use('actorio', 'Message', Message)}[{writer.use('typing', 'Any', Any)}]"
        alias = writer.use("typing", "TypeAlias", typing.TypeAlias)
        reference = writer.use("actorio", "ActorRef", actorio.ActorRef)
        name = actor.__name__
        aliases.append(f"{name}Protocol: {alias} = {protocol}\n")
        aliases.append(f'"""The messages {name} accepts."""\n\n')
        aliases.append(f"{name}Ref: {alias} = {reference}[{protocol}]\n")
        aliases.append(f'"""A reference to {module}.{name}."""\n\n')
    text = _STUB_TEMPLATE.format(module=module, actors=", ".join(actor.__name__ for actor in actors))
    text += _imports_text(writer.imports) + "\n"
    for body in writer.classes:
        text += f"{body}\n"
    return text + "".join(aliases).rstrip("\n") + "\n"


def _imports_text(imports: dict[str, set[str]]) -> str:
    """The import lines, grouped as isort (ruff) groups them: standard library, others, actorio."""

    def group(module: str) -> int:
        top = module.partition(".")[0]
        if top in sys.stdlib_module_names:
            return 0
        return 2 if top == "actorio" else 1

    groups: dict[int, list[str]] = {}
    for module in sorted(imports, key=lambda m: (group(m), m)):
        names = ", ".join(sorted(imports[module]))
        groups.setdefault(group(module), []).append(f"from {module} import {names}\n")
    return "\n".join("".join(lines) for _, lines in sorted(groups.items()))


def _stub_file_name(module: str) -> str:
    return module.replace(".", "_") + "_client.pyi"


# -- the command line ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m actorio",
        description="Export an actor's protocol (JSON Schema, a table, typed stubs); watch a running system.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    schema = commands.add_parser("schema", help="print the protocol as JSON Schema")
    schema.add_argument("target", metavar="module:Actor")
    inspect_command = commands.add_parser("inspect", help="print the protocol as a table")
    inspect_command.add_argument("target", metavar="module:Actor")
    stubs = commands.add_parser("stubs", help="write a typed client stub (.pyi) per module")
    stubs.add_argument("targets", metavar="module[:Actor]", nargs="+")
    stubs.add_argument("-o", "--output", metavar="DIR", help="write DIR/<module>_client.pyi (else: print)")
    compat = commands.add_parser(
        "compat",
        help="check that NEW is compatible with OLD (exit status 0: compatible, 1: not, 2: error)",
        description="OLD and NEW are schema files printed by `schema`, or module:Actor targets.",
    )
    compat.add_argument("old", metavar="OLD")
    compat.add_argument("new", metavar="NEW")
    compat.add_argument(
        "--require",
        choices=("backward", "forward", "full"),
        default="backward",
        help="backward (default): receivers on NEW accept senders on OLD; forward: the reverse; full: both",
    )
    compat.add_argument("--json", action="store_true", help="print the result as JSON")
    asyncapi = commands.add_parser(
        "asyncapi",
        help="print an AsyncAPI 3.0 document of actors published on NATS",
        description="Each target is module:Actor=name, an actor class and the name it is published under "
        "(node.publish(name, ...)); without =name, the class name.",
    )
    asyncapi.add_argument("targets", metavar="module:Actor[=name]", nargs="+")
    asyncapi.add_argument("--prefix", default="actorio", help="the node's subject prefix (default: actorio)")
    asyncapi.add_argument("--server", action="append", default=[], metavar="URL", help="a NATS server URL")
    asyncapi.add_argument("--title", default="actorio publications", help="the document's title")
    asyncapi.add_argument("--version", default="1.0.0", help="the document's (the API's) version")
    asyncapi.add_argument(
        "--client", action="store_true", help="describe a client (operations: send) rather than the publisher"
    )
    asyncapi.add_argument("-o", "--output", metavar="FILE", help="write FILE (else: print)")
    for command in (schema, inspect_command, stubs, compat, asyncapi):
        command.add_argument("--path", metavar="DIR", help="put DIR first on sys.path before importing")
    top = commands.add_parser("top", help="a live view of a running system (its snapshot endpoint)")
    top.add_argument("urls", metavar="URL", nargs="+", help="a snapshot endpoint, or nats://host:port")
    top.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes (1)")
    top.add_argument("--once", action="store_true", help="print one view and exit")
    return parser


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
    """Run ``python -m actorio`` with ``argv``; return the exit status."""
    out = stdout if stdout is not None else sys.stdout
    arguments = _parser().parse_args(argv)
    if arguments.command == "top":
        from .telemetry._top import run_top  # Rich loads only for this command

        return run_top(arguments.urls, arguments.interval, arguments.once, stdout)
    try:
        with _search_path(arguments.path):
            if arguments.command == "schema":
                protocol = load_actor(arguments.target).protocol
                try:
                    schema = protocol.json_schema()
                except pydantic.PydanticUserError as error:
                    raise CommandError(f"{protocol.name}: no JSON Schema: {error}") from None
                _write(out, json.dumps(schema, indent=2) + "\n")
            elif arguments.command == "inspect":
                _write(out, _inspect_table(load_actor(arguments.target).protocol))
            elif arguments.command == "asyncapi":
                _asyncapi(arguments, out)
            elif arguments.command == "compat":
                return _compat(arguments.old, arguments.new, arguments.require, arguments.json, out)
            else:
                _stubs(arguments.targets, arguments.output, out)
    except CommandError as error:
        if isinstance(error, _OutputError) and out is sys.stdout:
            _discard_standard_output()
        print(f"python -m actorio: error: {error}", file=sys.stderr)
        return 1
    return 0


def _compat(old: str, new: str, require: Any, as_json: bool, out: TextIO) -> int:
    from .compat import ProtocolError, check_compatibility

    try:
        result = check_compatibility(old, new)
    except ProtocolError as error:  # (its text may quote the documents: printable)
        print(f"python -m actorio: error: {printable(str(error))}", file=sys.stderr)
        return 2
    if as_json:
        _write(out, json.dumps({**result.to_dict(), "require": require}, indent=2) + "\n")
    else:
        _write(out, result.report())
    return 0 if result.compatible(require) else 1


def _asyncapi(arguments: argparse.Namespace, out: TextIO) -> None:
    from .asyncapi import Publication, asyncapi_document

    publications: list[Publication] = []
    for target in arguments.targets:
        actor_target, _, name = target.partition("=")
        actor = load_actor(actor_target)
        publications.append(Publication(name or actor.__name__, actor))
    try:
        document = asyncapi_document(
            publications,
            prefix=arguments.prefix,
            title=arguments.title,
            version=arguments.version,
            servers=arguments.server,
            action="send" if arguments.client else "receive",
        )
    except ValueError as error:
        raise CommandError(str(error)) from None
    text = json.dumps(document, indent=2) + "\n"
    if arguments.output is None:
        _write(out, text)
        return
    try:
        Path(arguments.output).write_text(text)
    except OSError as error:
        raise CommandError(f"cannot write {arguments.output}: {_reason(error)}") from None
    _write(out, f"wrote {arguments.output}\n")


def _stubs(targets: Sequence[str], output: str | None, out: TextIO) -> None:
    modules: dict[str, list[type[Actor[Any]]]] = {}
    for target in targets:
        module, actors = load_actors(target)
        known = modules.setdefault(module, [])
        known.extend(actor for actor in actors if actor not in known)
    if output is None:
        if len(modules) > 1:
            raise CommandError("stubs of several modules need -o DIR")
        for module, actors in modules.items():
            _write(out, render_stub(module, actors))
        return
    directory = Path(output)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # something that is not a directory (exist_ok accepts a directory)
        raise CommandError(f"-o {output} is not a directory") from None
    except OSError as error:  # a parent that is a file, a place where nothing can be created
        raise CommandError(
            f"cannot create the directory {error.filename or output}: {_reason(error)}"
        ) from None
    for module, actors in modules.items():
        path = directory / _stub_file_name(module)
        text = render_stub(module, actors)
        try:
            path.write_text(text)
        except OSError as error:  # a directory of that name, a directory that takes no new file
            raise CommandError(f"cannot write {path}: {_reason(error)}") from None
        _write(out, f"wrote {path}\n")
