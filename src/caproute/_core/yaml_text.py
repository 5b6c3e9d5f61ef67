"""YAML text read within bounds, checked against a strict pydantic model, every problem
reported at its place in the text (``file:line:column: message``, with a did-you-mean).

pydantic reports *where in the data* a problem is (its ``loc``); YAML nodes know *where
in the file* they came from. The text is composed with `yaml.SafeLoader` (keeping every
node's start mark), bounded in size, node count and depth while it is composed
(`TextLimits`), and every data path is indexed to its position. Policies
(`policy_check`) and the proxy's server settings are read with it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias, TypeVar, get_args

import yaml
from pydantic import BaseModel, ValidationError

from .._exceptions import PolicyError

__all__ = [
    "DEFAULT_LIMITS",
    "Loc",
    "Problem",
    "TextLimits",
    "check_model_text",
    "compose",
    "dedupe",
    "describe",
    "locate",
    "problem_from_pydantic",
    "quote_hint",
    "render_loc",
    "size_error",
    "sorted_errors",
    "suggest",
    "to_error",
    "too_deep",
]


Loc: TypeAlias = tuple[str | int, ...]
"""A path into the policy data, as pydantic reports it: ``("routes", 0, "match")``."""


# -- validation ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    loc: Loc
    message: str
    on_key: bool = False
    """Point at the mapping key named by the last element of `loc`, not at its value."""


_TYPE_MESSAGES: Final[Mapping[str, str]] = {
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "int_type": "expected an integer",
    "float_type": "expected a number",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "tuple_type": "expected a list",
    "list_type": "expected a list",
    "too_short": "expected at least one entry",
    "string_too_short": "expected a non-empty string",
}


def _model_at(loc: Loc, root: type[BaseModel]) -> type[BaseModel] | None:
    """The model class found at `loc` under `root` (default `Policy`), for listing its keys."""
    current = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = next((f for n, f in current.model_fields.items() if (f.alias or n) == part), None)
        found = _model_in(field.annotation) if field is not None else None
        if found is None:
            return None
        current = found
    return current


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def problem_from_pydantic(error: Any, root: type[BaseModel]) -> Problem:
    kind: str = error["type"]
    loc: Loc = tuple(error["loc"])
    value = error.get("input")
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1], root)
        hint = suggest(loc[-1], _keys_of(parent)) if parent else ""
        where = f" in {parent.__name__.lower()}" if parent and parent is not root else ""
        return Problem(loc, f"unknown key {loc[-1]!r}{where}{hint}", on_key=True)
    if kind == "missing":
        return Problem(loc[:-1], f"missing required key {loc[-1]!r}")
    if loc and loc[-1] == "[key]":
        return Problem(loc[:-1], _message(kind, error, value), on_key=True)
    return Problem(loc, _message(kind, error, value))


def _message(kind: str, error: Any, value: object) -> str:
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", error["ctx"]["expected"])
        return f"expected one of {', '.join(choices)}; got {value!r}{suggest(value, choices)}"
    if kind in _TYPE_MESSAGES:
        message = f"{_TYPE_MESSAGES[kind]}, got {describe(value)}"
        if kind == "string_type":
            message += quote_hint(value)
        elif kind in {"list_type", "tuple_type"} and isinstance(value, str | int | float):
            message += f"; write a single entry as a list: [{value}]"
        return message
    return str(error["msg"])


def describe(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def dedupe(problems: Iterator[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


# -- YAML with positions -------------------------------------------------------------------------


def _positions(root: yaml.Node) -> tuple[dict[Loc, tuple[int, int]], list[Problem]]:
    """Every data path's (line, column), 1-based, and the duplicate keys found on the way.

    Key positions are stored under ``(*path, key, "[key]")``.
    """
    positions: dict[Loc, tuple[int, int]] = {}
    duplicates: list[Problem] = []

    def mark(node: yaml.Node) -> tuple[int, int]:
        return node.start_mark.line + 1, node.start_mark.column + 1

    def walk(node: yaml.Node, loc: Loc) -> None:
        positions.setdefault(loc, mark(node))
        if isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*loc, index))
        elif isinstance(node, yaml.MappingNode):
            first_line: dict[str, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                    continue
                key = key_node.value
                if key in first_line:
                    duplicates.append(
                        Problem(
                            (*loc, key, "[dup]"),
                            f"duplicate key {key!r} (first on line {first_line[key]})",
                        )
                    )
                    positions[(*loc, key, "[dup]")] = mark(key_node)
                    continue
                first_line[key] = mark(key_node)[0]
                positions[(*loc, key, "[key]")] = mark(key_node)
                walk(value_node, (*loc, key))

    walk(root, ())
    return positions, duplicates


def locate(positions: Mapping[Loc, tuple[int, int]], problem: Problem) -> tuple[int, int] | None:
    """The (line, column) of the deepest node on the problem's path that the text has.

    Path parts that name no node (pydantic's union tags, a key that is missing) are
    skipped, so the error lands on the closest thing the author wrote.
    """
    if not positions:
        return None
    found: Loc = ()
    for part in problem.loc:
        for candidate in ((*found, part), (*found, str(part))):
            if candidate in positions:
                found = candidate
                break
    key = (*found, "[key]")
    if problem.on_key and found and str(found[-1]) == str(problem.loc[-1]) and key in positions:
        return positions[key]
    return positions[found]


def render_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if part in ("[key]", "[dup]"):
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_$][\w$-]*", part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def to_error(
    problem: Problem, filename: str, positions: Mapping[Loc, tuple[int, int]]
) -> PolicyError:
    where = locate(positions, problem)
    line, column = where if where else (None, None)
    return PolicyError(
        problem.message,
        file=filename,
        line=line,
        column=column,
        path=render_loc(problem.loc) or None,
    )


def _yaml_error(exc: yaml.YAMLError, filename: str) -> PolicyError:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
    if "'\\t'" in problem:  # PyYAML's wording for a tab where indentation goes
        message += "; indent with spaces, not tabs"
    if mark is None:
        return PolicyError(message, file=filename)
    return PolicyError(message, file=filename, line=mark.line + 1, column=mark.column + 1)


def too_deep(filename: str, what: str) -> PolicyError:
    # Nesting deeper than the stack, or an alias that contains itself (`a: &a [*a]`):
    # no valid file looks like either, and the loaders must only ever raise PolicyError.
    message = f"the {what} is nested too deeply or an alias refers to itself"
    return PolicyError(message, file=filename, line=1, column=1)


# -- bounds on the text, enforced while it is composed -------------------------------------------


@dataclass(frozen=True, slots=True)
class TextLimits:
    """Bounds on a YAML file caproute reads (a policy, a server config), checked before
    anything in it is validated.

    YAML aliases repeat a node without repeating its text: nine anchors of nine aliases
    each stand for 9^9 nodes in under 400 bytes, and everything after composition
    (positions, construction, validation) walks the repeated tree. So nodes are
    counted as composed, an alias counting every node it stands for, and composition
    stops as soon as a bound is crossed: the work done is bounded by the limits, not by
    what the text would expand to.
    """

    max_bytes: int = 1024 * 1024
    """Size of the text (UTF-8); policies are hand-written and a few kB."""
    max_nodes: int = 20_000
    """Mappings, sequences, keys and values, each alias counting the nodes it repeats.
    Shadowed-route checks compare every route with the ones before it, so this also
    bounds the time `check` takes (about 1,800 routes of a few conditions each)."""
    max_depth: int = 64
    """Nesting of mappings and sequences (a policy nests 7 deep)."""
    setting: str | None = None
    """How a user changes the limits (``CAPROUTE_POLICY_MAX_*``), named in the errors."""

    def _hint(self, name: str) -> str:
        return f"; set {self.setting}{name} to change the limit" if self.setting else ""


DEFAULT_LIMITS = TextLimits()


class _OverLimit(Exception):
    def __init__(self, message: str, mark: yaml.Mark | None) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


class _Bounded:
    """A composer that counts nodes (aliases by what they repeat) and depth, and stops
    at the limits (PyYAML's `Composer.compose_node` is the hook); mixed into a loader."""

    def _bound(self, limits: TextLimits, what: str) -> None:
        self._limits = limits
        self._what = what
        self._nodes = 0
        self._depth = 0
        self._weights: dict[yaml.Node, int] = {}
        """Anchored node (hashed by identity) → the nodes it stands for, once composed."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event: Any = self.peek_event()  # type: ignore[attr-defined]
        mark: yaml.Mark = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            node: yaml.Node | None = super().compose_node(parent, index)  # type: ignore[misc]
            weight = self._weights.get(node)  # type: ignore[arg-type]
            if weight is None:  # its anchor is still being composed: the alias is inside it
                raise _OverLimit(f"alias *{event.anchor} refers to a node that contains it", mark)
            self._count(weight, mark, alias=event.anchor)
            return node
        self._count(1, mark)
        before = self._nodes
        self._depth += 1
        if self._depth > self._limits.max_depth:
            raise _OverLimit(
                f"the {self._what} nests deeper than {self._limits.max_depth} levels"
                + self._limits._hint("DEPTH"),
                mark,
            )
        node = super().compose_node(parent, index)  # type: ignore[misc]
        self._depth -= 1
        if event.anchor is not None:
            self._weights[node] = self._nodes - before + 1
        return node

    def _count(self, weight: int, mark: yaml.Mark, *, alias: str | None = None) -> None:
        self._nodes += weight
        limit = self._limits.max_nodes
        if self._nodes <= limit:
            return
        if alias is not None:
            message = (
                f"aliases expand the {self._what} to more than {limit:,} nodes "
                f"(*{alias} repeats {weight:,})"
            )
        else:
            message = (
                f"the {self._what} has more than {limit:,} nodes (keys, values and list items)"
            )
        raise _OverLimit(message + self._limits._hint("NODES"), mark)


class _BoundedLoader(_Bounded, yaml.SafeLoader):
    """PyYAML's pure-Python safe loader, bounded: the reference for error messages."""

    def __init__(self, text: str, limits: TextLimits, what: str) -> None:
        yaml.SafeLoader.__init__(self, text)
        self._bound(limits, what)


_CParser: Any
try:  # libyaml's parser, when PyYAML was built with it
    from yaml._yaml import CParser as _CParser
except ImportError:  # pragma: no cover - every wheel PyYAML publishes has it
    _CParser = None


if _CParser is not None:

    class _FastBoundedLoader(
        _Bounded,
        yaml.composer.Composer,
        _CParser,  # type: ignore[misc]
        yaml.constructor.SafeConstructor,
        yaml.resolver.Resolver,
    ):
        """libyaml's parser (events) under the same Python composer and its limits.

        Scanning and parsing are most of a load's time, and libyaml does them ~20 times
        faster; composition (where the limits are counted) and construction stay
        PyYAML's. libyaml words some syntax errors differently, so a text it rejects
        is read again by `_BoundedLoader` for the error (the slow path is for bad files).
        """

        def __init__(self, text: str, limits: TextLimits, what: str) -> None:
            _CParser.__init__(self, text)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            self._bound(limits, what)

        def dispose(self) -> None:
            """Nothing to release (PyYAML's own loaders drop their parser state)."""


def _over_size(text: str, limits: TextLimits) -> int | None:
    """The text's size in UTF-8 bytes when it is over `limits.max_bytes`, else None."""
    if len(text) <= limits.max_bytes // 4:  # a character is at most 4 bytes
        return None
    size = len(text) if len(text) > limits.max_bytes else len(text.encode("utf-8", "surrogatepass"))
    return size if size > limits.max_bytes else None


def size_error(size: int, limits: TextLimits, filename: str, what: str) -> PolicyError:
    """The error for a text of `size` bytes over `limits.max_bytes` (also for files,
    which the shell refuses before reading them whole)."""
    return PolicyError(
        f"the {what} is {size:,} bytes, over the limit of {limits.max_bytes:,}"
        + limits._hint("BYTES"),
        file=filename,
        line=1,
        column=1,
    )


def _fast_loader(text: str, limits: TextLimits, what: str) -> Any:
    if _CParser is None or _has_control(text):
        return _BoundedLoader(text, limits, what)
    return _FastBoundedLoader(text, limits, what)


_CONTROL = yaml.reader.Reader.NON_PRINTABLE  # what PyYAML's reader refuses


def _has_control(text: str) -> bool:
    """Characters YAML doesn't allow in a stream (PyYAML's reader refuses them with a
    position; such a text goes straight to it)."""
    return _CONTROL.search(text) is not None


@dataclass(frozen=True, slots=True)
class _Composed:
    data: object
    positions: Mapping[Loc, tuple[int, int]]


def compose(
    text: str, filename: str, what: str, limits: TextLimits
) -> _Composed | tuple[PolicyError, ...]:
    """YAML text → data plus every path's position, or the errors that stop it."""
    if (size := _over_size(text, limits)) is not None:
        return (size_error(size, limits, filename, what),)
    # Compose first (nodes keep their marks), construct afterwards: constructing
    # directly would silently keep the last of two duplicate keys.
    loader: Any = None
    try:
        try:
            loader = _fast_loader(text, limits, what)
            root: yaml.Node | None = loader.get_single_node()
        except yaml.YAMLError:
            # Read again by PyYAML's own parser, for its wording of the error (and its
            # verdict, should the two parsers disagree).
            loader = _BoundedLoader(text, limits, what)  # its reader refuses control chars
            root = loader.get_single_node()
        if root is None:
            return (PolicyError(f"the {what} is empty", file=filename, line=1, column=1),)
        positions, duplicates = _positions(root)
        if duplicates:
            return sorted_errors(to_error(p, filename, positions) for p in duplicates)
        data = loader.construct_document(root)
    except _OverLimit as exc:
        line, column = (exc.mark.line + 1, exc.mark.column + 1) if exc.mark else (1, 1)
        return (PolicyError(exc.message, file=filename, line=line, column=column),)
    except yaml.YAMLError as exc:
        return (_yaml_error(exc, filename),)
    except RecursionError:
        return (too_deep(filename, what),)
    finally:
        if loader is not None:
            loader.dispose()
    return _Composed(data, positions)


ModelT = TypeVar("ModelT", bound=BaseModel)


def check_model_text(
    text: str,
    model: type[ModelT],
    *,
    filename: str,
    what: str,
    semantic: Callable[[ModelT], Iterable[tuple[Loc, str]]] | None = None,
    limits: TextLimits | None = None,
) -> tuple[ModelT | None, tuple[PolicyError, ...]]:
    """Validate YAML `text` against any strict pydantic `model`, with the policy's diagnostics.

    The same machinery as `check_policy_text` (positions, duplicate keys, did-you-mean
    for unknown keys and literals) for other YAML files caproute reads, such as the
    proxy's server configuration. `semantic` returns ``(data path, message)`` pairs for
    checks the model can't express; they are located like pydantic's.

    Returns:
        The validated model (`None` if there are errors) and the errors, sorted by position.
    """
    composed = compose(text, filename, what, limits or DEFAULT_LIMITS)
    if isinstance(composed, tuple):
        return None, composed
    data, positions = composed.data, composed.positions
    problems: list[Problem]
    if not isinstance(data, Mapping):
        problems = [Problem((), f"a {what} must be a mapping, got {describe(data)}")]
        return None, sorted_errors(to_error(p, filename, positions) for p in problems)
    try:
        value = model.model_validate(data)
    except RecursionError:  # data an alias made recursive
        return None, (too_deep(filename, what),)
    except ValidationError as exc:
        problems = dedupe(problem_from_pydantic(e, model) for e in exc.errors())
        return None, sorted_errors(to_error(p, filename, positions) for p in problems)
    problems = [Problem(loc, message) for loc, message in (semantic(value) if semantic else ())]
    if problems:
        return None, sorted_errors(to_error(p, filename, positions) for p in problems)
    return value, ()


def sorted_errors(errors: Iterator[PolicyError]) -> tuple[PolicyError, ...]:
    return tuple(sorted(errors, key=lambda e: (e.line or 0, e.column or 0)))


def suggest(word: object, choices: Sequence[str], *, cutoff: float = 0.6) -> str:
    """`` (did you mean 'x'?)`` when a choice is close to `word`, else an empty string."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=cutoff)
    return f"; did you mean {close[0]!r}?" if close else ""


def quote_hint(value: object) -> str:
    """What to write instead of a bare YAML scalar that was read as a number or boolean."""
    if isinstance(value, bool):
        # YAML 1.1 reads unquoted yes/no/on/off/true/false as booleans (the "Norway problem").
        return (
            "; YAML reads an unquoted yes, no, on, off, true or false as a boolean: quote the text"
        )
    if isinstance(value, int | float):
        return f'; quote it to mean the text: "{value}"'
    return ""
