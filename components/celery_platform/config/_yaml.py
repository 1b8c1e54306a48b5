"""A bounded YAML loader for stack files and the YAML documents held in structured config keys.

It reads YAML as the Pulumi engine does (gopkg.in/yaml.v3, YAML 1.2 scalars): ``yes``, ``on`` and
dates stay strings, ``1e3`` is a number, a key given twice is an error. And it refuses, quickly and
with the line and column, what would otherwise hang or crash a run: alias bombs ("billion laughs"),
recursive aliases, deep nesting and bytes that are not UTF-8. Every failure is one ``YamlError``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, ClassVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# Our deepest schema (pools[i].resources.limits.cpu) is 5 levels; 32 leaves room and stays far below
# Python's recursion limit in every later walk (json, pydantic, messages).
MAX_DEPTH = 32
# Nodes after expanding every alias: 20,000 holds hundreds of pools, and a billion-laughs bomb of
# any depth is refused after at most this much work.
MAX_NODES = 20_000
MAX_BYTES = 1_000_000

_BOOL = re.compile(r"true|True|TRUE|false|False|FALSE")
_INT = re.compile(r"[-+]?(?:[0-9][0-9_]*|0x[0-9a-fA-F_]+|0o[0-7_]+|0b[01_]+)")
_FLOAT = re.compile(
    r"[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)
_NULL = re.compile(r"~|null|Null|NULL|")


class YamlError(ValueError):
    """A YAML text that cannot be read: ``where`` is ``line L, column C`` (1-based) or a byte offset."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{problem} at {where}" if where else problem)


class _Loader(yaml.SafeLoader):  # type: ignore[misc,unused-ignore]
    """SafeLoader with YAML 1.2 core-schema scalars, duplicate keys refused and nesting bounded."""

    yaml_implicit_resolvers: ClassVar[dict[Any, Any]] = {}

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.MarkedYAMLError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)  # type: ignore[no-any-return,unused-ignore]
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        assert isinstance(node, MappingNode)
        self.flatten_mapping(node)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key (a list or map used as a key)
                raise yaml.MarkedYAMLError(None, None, "a mapping key must be a scalar", key_node.start_mark) from None
            if duplicate:
                raise yaml.MarkedYAMLError(None, None, f"mapping key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return,unused-ignore]


def _int(loader: _Loader, node: Node) -> int:
    text = str(loader.construct_scalar(node)).replace("_", "")  # type: ignore[arg-type,unused-ignore]
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    if re.fullmatch(r"0[0-7]+", digits):  # yaml.v3 keeps YAML 1.1's leading-zero octal
        return sign * int(digits, 8)
    return sign * int(digits, 0 if digits[:2].lower() in ("0x", "0o", "0b") else 10)


def _float(loader: _Loader, node: Node) -> float:
    text = str(loader.construct_scalar(node)).replace("_", "").lower()  # type: ignore[arg-type,unused-ignore]
    if text.lstrip("+-") == ".inf":
        return -math.inf if text.startswith("-") else math.inf
    if text == ".nan":
        return math.nan
    return float(text)


_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("tTfF"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
_Loader.add_implicit_resolver("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""])
_Loader.add_constructor("tag:yaml.org,2002:int", _int)
_Loader.add_constructor("tag:yaml.org,2002:float", _float)
# Resolvers match the whole scalar, like yaml.v3; PyYAML's add_implicit_resolver does not anchor them.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, re.compile(rf"(?:{rx.pattern})\Z")) for tag, rx in resolvers]
    for first, resolvers in _Loader.yaml_implicit_resolvers.items()
}


def _check_size(node: Node) -> None:
    """Refuse a document whose alias expansion is too big or too deep, in time linear in its text."""
    memo: dict[int, tuple[int, int]] = {}
    active: set[int] = set()

    def walk(n: Node, depth: int) -> tuple[int, int]:
        key = id(n)
        if key in active:
            raise yaml.MarkedYAMLError(None, None, "an alias refers to a node that contains it", n.start_mark)
        if key not in memo:
            if depth > MAX_DEPTH:
                raise yaml.MarkedYAMLError(None, None, f"nested deeper than {MAX_DEPTH} levels", n.start_mark)
            active.add(key)
            children: list[Node] = []
            if isinstance(n, SequenceNode):
                children = list(n.value)
            elif isinstance(n, MappingNode):
                children = [part for pair in n.value for part in pair]
            size, height = 1, 1
            for child in children:
                child_size, child_height = walk(child, depth + 1)
                size += child_size
                height = max(height, child_height + 1)
                if size > MAX_NODES:
                    raise yaml.MarkedYAMLError(
                        None, None, f"expands to more than {MAX_NODES} nodes (an alias bomb?)", n.start_mark
                    )
            active.discard(key)
            memo[key] = (size, height)
        size, height = memo[key]
        if depth + height > MAX_DEPTH + 1:
            raise yaml.MarkedYAMLError(None, None, f"nested deeper than {MAX_DEPTH} levels", n.start_mark)
        return size, height

    if not isinstance(node, ScalarNode):
        walk(node, 1)


def _where(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _position(text: str, offset: int) -> str:
    before = text[:offset]
    return f"line {before.count(chr(10)) + 1}, column {offset - (before.rfind(chr(10)) + 1) + 1}"


def decode_utf8(data: bytes) -> str:
    """Decode a file's bytes as UTF-8 or raise YamlError naming the first bad byte's line and column."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        before = data[: err.start]
        line = before.count(b"\n") + 1
        column = err.start - (before.rfind(b"\n") + 1) + 1
        raise YamlError(f"line {line}, column {column}", f"byte 0x{data[err.start]:02x} is not UTF-8") from None


def load_yaml(text: str) -> Any:
    """Parse one YAML document with the bounds above; raise YamlError with the line and column."""
    if len(text) > MAX_BYTES:
        raise YamlError("", f"longer than {MAX_BYTES} characters")
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as err:
        raise YamlError(_position(text, err.position), f"character U+{err.character:04X} is not allowed") from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_size(node)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        problem = err.problem or err.context or "not valid YAML"
        raise YamlError(_where(mark), str(problem)) from None
    except yaml.reader.ReaderError as err:  # a control character further in
        raise YamlError(_position(text, err.position), f"character U+{err.character:04X} is not allowed") from None
    except yaml.YAMLError as err:
        raise YamlError(_where(getattr(err, "problem_mark", None)), str(err).splitlines()[0]) from None
    except (ValueError, OverflowError) as err:  # a scalar that matched a resolver but does not convert
        raise YamlError("", f"a value does not convert: {err}") from None
    finally:
        loader.dispose()


def _within_bounds(value: Any) -> bool:
    """Whether a decoded value stays within MAX_DEPTH and MAX_NODES, as load_yaml requires of a document."""
    todo, nodes = [(value, 1)], 0
    while todo:
        item, depth = todo.pop()
        nodes += 1
        if depth > MAX_DEPTH or nodes > MAX_NODES:
            return False
        if isinstance(item, dict):
            todo += [(v, depth + 1) for v in item.values()]
        elif isinstance(item, list):
            todo += [(v, depth + 1) for v in item]
    return True


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_config_value(text: str) -> Any:
    """Parse a structured config value: the engine's JSON as JSON, anything else as YAML (load_yaml).

    The engine passes a map or list as the JSON that Go's encoding/json writes, which escapes only the
    characters below U+0020, U+2028 and U+2029. Read as YAML, a raw U+0085 inside a string of it would be a
    line break, folded into a space. JSON is YAML, so text that is not JSON (a YAML document that a caller
    wrote) and JSON beyond load_yaml's bounds are read by load_yaml, with its errors.
    """
    if len(text) <= MAX_BYTES and text.lstrip()[:1] in ("{", "["):
        try:
            value = json.loads(text, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            pass
        else:
            if _within_bounds(value):
                return value
    return load_yaml(text)
