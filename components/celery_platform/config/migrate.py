"""Convert a stack file's structured keys from YAML held in strings to native YAML objects.

``python -m celery_platform.config.migrate [--check] STACK [--project-dir DIR]`` (``make migrate-config
STACK=dev``) rewrites ``Pulumi.<STACK>.yaml`` in place. Every key that Pulumi.yaml declares ``type: object``
or an array of objects, and whose value is still a string (the form before native config), becomes the
YAML object that the string holds. The string's own text is moved under its key, re-indented, so every
scalar keeps its exact spelling (the engine reads it as the program read the string), and its comments
become real comments. Everything else in the file keeps its bytes: other keys, namespaces, comments and
``secure:`` values. The result is read back and must hold the same values, or nothing is written.
``--check`` changes nothing and exits 2 when the file needs converting: ``make preview`` and ``make up``
run it first, so the user meets this message rather than the engine's.
"""

from __future__ import annotations

import argparse
import io
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from celery_platform.config._yaml import YamlError, decode_utf8, load_yaml
from celery_platform.config.problems import Problem, ValidationError

COMMAND = "make migrate-config STACK={stack}"
_MARKER = re.compile(r"%|---(?:\s|$)|\.\.\.(?:\s|$)")


def structured_keys(declarations: Mapping[str, Any]) -> dict[str, str]:
    """The keys Pulumi.yaml declares as an object or an array of objects, each with its engine type name."""
    found: dict[str, str] = {}
    for name, decl in declarations.items():
        if not isinstance(decl, Mapping):
            continue
        items = decl.get("items")
        if decl.get("type") == "object":
            found[str(name)] = "object"
        elif decl.get("type") == "array" and isinstance(items, Mapping) and items.get("type") == "object":
            found[str(name)] = "array<object>"
    return found


def _is_secure(value: Any) -> bool:
    return isinstance(value, Mapping) and len(value) == 1 and isinstance(value.get("secure"), str)


def old_form_problem(stack: str, key: str, type_name: str, value: Any) -> Problem | None:
    """The refusal of a structured key's value that the engine would refuse as not ``type_name``, or None.

    A string is the form before native config, and one command converts the file; an encrypted value
    is a string too, which only its owner can turn into an object.
    """
    shape = "a YAML mapping" if type_name == "object" else "a YAML list of mappings"
    if isinstance(value, str):
        return Problem(
            key,
            f"holds YAML in a string, the form before native config, and Pulumi.yaml declares '{type_name}'",
            "a string",
            f"{shape}; `{COMMAND.format(stack=stack)}` converts the file",
        )
    if _is_secure(value):
        return Problem(
            key,
            f"is encrypted as a whole (secure:), so it is a string; Pulumi.yaml declares it '{type_name}'",
            "an encrypted string",
            f"{shape} whose secret fields alone are encrypted: `pulumi config set --secret --path '{key}.FIELD' VALUE`",
        )
    return None


def stack_problems(
    stack: str, project: str, declarations: Mapping[str, Any], values: Mapping[str, Any]
) -> list[Problem]:
    """Every structured key of ``values`` (a stack file's ``config:``) that is not yet an object."""
    problems = []
    for short, type_name in structured_keys(declarations).items():
        full_key = f"{project}:{short}"
        if full_key in values:
            problem = old_form_problem(stack, short, type_name, values[full_key])
            if problem is not None:
                problems.append(problem)
    return problems


def _shape_ok(type_name: str, value: Any) -> bool:
    if type_name == "object":
        return isinstance(value, dict)
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _described(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list with items that are not mappings"
    return f"a single {type(value).__name__} value"


def _same(a: Any, b: Any) -> bool:
    """Deep equality in which NaN equals NaN and 1 does not equal 1.0 or True."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


@dataclass(frozen=True)
class _Edit:
    start: int
    end: int
    text: str


def _indented(lines: list[str], indent: int) -> str:
    return "\n".join(" " * indent + line if line else "" for line in lines)


def _moved_text(content: str, value: Any, indent: int) -> tuple[str, str]:
    """The string's own YAML text as the key's value: what goes on the key's line, and the lines below it.

    One flow collection stays on the key's line; anything else moves below it, re-indented as a whole.
    """
    lines = content.rstrip("\n").split("\n")
    body = [line for line in lines if line.strip()]
    if all(line.lstrip().startswith("#") for line in body):  # an empty document, perhaps with comments
        below = [line.strip() for line in body]
        return ("{}" if isinstance(value, dict) else "[]"), ("\n" + _indented(below, indent) if below else "")
    if len(body) == 1 and body[0].lstrip()[:1] in ("{", "["):
        return body[0].strip(), ""
    return "", "\n" + _indented(lines, indent)


def _ruamel_text(content: str, indent: int) -> tuple[str, str]:
    """The string's YAML re-emitted by ruamel.yaml's round trip, for text that cannot move as it is.

    A document marker or directive (``---``, ``%YAML``) has no place under a key. Every scalar is read
    as text and written back in its own style, so no value changes its type on the way.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.resolver import VersionedResolver

    class _TextResolver(VersionedResolver):
        """No implicit types: a plain scalar stays the text it was, and is written back plain."""

        @property
        def versioned_resolver(self) -> dict[Any, Any]:
            return {}

    rt = YAML(typ="rt")
    rt.Resolver = _TextResolver
    rt.preserve_quotes = True
    rt.width = 1 << 16
    rt.indent(mapping=2, sequence=2, offset=0)
    out = io.StringIO()
    rt.dump(rt.load(content), out)
    # Markers and directives stand at column 0, where nothing of a mapping's or list's content can.
    lines = [line for line in out.getvalue().rstrip("\n").split("\n") if not _MARKER.match(line)]
    return "", "\n" + _indented(lines, indent)


def _edit_for(text: str, node: yaml.Node, on_line: str, below: str) -> _Edit:
    """Replace ``node`` (the string) by its YAML, keeping a block scalar header's comment on the key's line."""
    start, end = node.start_mark.index, node.end_mark.index
    while start > 0 and text[start - 1] in " \t":
        start -= 1
    head = f" {on_line}" if on_line else ""
    if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
        line_end = text.find("\n", node.start_mark.index)
        header = text[node.start_mark.index : line_end if line_end >= 0 else len(text)]
        comment = re.search(r"\s(#.*)$", header)
        tail = re.search(r"\n[ \t\n]*\Z", text[node.start_mark.index : end])
        head += f" {comment.group(1).rstrip()}" if comment else ""
        return _Edit(start, end, _line_breaks_of(text, head + below + (tail.group(0) if tail else "")))
    return _Edit(start, end, _line_breaks_of(text, head + below))


def _line_breaks_of(text: str, inserted: str) -> str:
    """``inserted`` with the file's own line breaks: CRLF in a file that has them, else LF."""
    inserted = inserted.replace("\r\n", "\n")
    return inserted.replace("\n", "\r\n") if "\r\n" in text else inserted


class MigrationError(ValidationError):
    """A stack file that cannot be converted; the file is left as it was."""


@dataclass(frozen=True)
class Migration:
    """The converted text of a stack file and the keys that changed (none: it was already native)."""

    text: str
    converted: tuple[str, ...]


def migrate_text(text: str, declarations: Mapping[str, Any], project: str, stack: str) -> Migration:
    """Convert every structured key of stack file ``text`` that is a string; raise MigrationError if any cannot be."""
    name = f"Pulumi.{stack}.yaml"
    try:
        document = load_yaml(text)
    except YamlError as err:
        where = f" at {err.where}" if err.where else ""
        raise MigrationError(name, [Problem(name, f"not valid YAML{where}: {err.problem}", "text", "YAML")]) from None
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        return Migration(text, ())
    structured = structured_keys(declarations)
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    config_node = next(v for k, v in root.value if isinstance(k, yaml.ScalarNode) and k.value == "config")
    problems: list[Problem] = []
    todo: list[tuple[str, yaml.Node, yaml.Node, str, Any]] = []  # key, its nodes, its text, its value
    for key_node, value_node in config_node.value if isinstance(config_node, yaml.MappingNode) else []:
        full_key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else ""
        namespace, _, short = full_key.partition(":")
        if namespace != project or short not in structured or not isinstance(config.get(full_key), str):
            if namespace == project and short in structured and _is_secure(config.get(full_key)):
                problem = old_form_problem(stack, short, structured[short], config[full_key])
                problems += [problem] if problem else []
            continue
        content: str = config[full_key]
        try:
            value = load_yaml(content)
        except YamlError as err:
            where = f" at {err.where} of its text" if err.where else ""
            problems.append(Problem(short, f"not valid YAML{where}: {err.problem}", "a string", "a YAML document"))
            continue
        if value is None and structured[short] == "object":
            value = {}  # the program read an empty document as {}
        if not _shape_ok(structured[short], value):
            got = _described(value)
            shape = "a mapping" if structured[short] == "object" else "a list of mappings"
            problems.append(Problem(short, f"its YAML is not {structured[short]!r}", got, shape))
            continue
        todo.append((full_key, key_node, value_node, content, value))
    if problems:
        raise MigrationError(name, problems)
    edits: list[_Edit] = []
    failed: list[str] = []
    for full_key, key_node, value_node, content, value in todo:
        edit = _converted(text, document, full_key, key_node, value_node, content, value)
        if edit is None:
            failed.append(full_key.partition(":")[2])
        else:
            edits.append(edit)
    new_text = _applied(text, edits)
    expected = {**document, "config": {**config, **{item[0]: item[4] for item in todo}}}
    if not failed and not _reads_as(new_text, expected):  # each edit alone was right, so this cannot happen
        failed = [full_key.partition(":")[2] for full_key, *_ in todo]
    if failed:
        raise MigrationError(
            name,
            [
                Problem(key, "would not read back as the same value once converted", "a string", "by hand")
                for key in failed
            ],
        )
    return Migration(new_text, tuple(full_key.partition(":")[2] for full_key, *_ in todo))


def _applied(text: str, edits: list[_Edit]) -> str:
    for edit in sorted(edits, key=lambda e: e.start, reverse=True):
        text = text[: edit.start] + edit.text + text[edit.end :]
    return text


def _reads_as(text: str, expected: Any) -> bool:
    try:
        return _same(load_yaml(text), expected)
    except YamlError:
        return False


def _converted(
    text: str,
    document: dict[str, Any],
    full_key: str,
    key_node: yaml.Node,
    value_node: yaml.Node,
    content: str,
    value: Any,
) -> _Edit | None:
    """The edit that turns one key's string into its YAML, checked alone: the text moved as it is, else
    ruamel.yaml's round trip of it; None when neither reads back as the same document."""
    indent = key_node.start_mark.column + 2
    expected = {**document, "config": {**document["config"], full_key: value}}
    for through_ruamel in (False, True):
        try:
            on_line, below = _ruamel_text(content, indent) if through_ruamel else _moved_text(content, value, indent)
        except Exception:  # ruamel.yaml refused what our reader accepted; refused below if nothing else works
            continue
        edit = _edit_for(text, value_node, on_line, below)
        if _reads_as(_applied(text, [edit]), expected):
            return edit
    return None


def _project(root: Path) -> tuple[str, Mapping[str, Any]]:
    try:
        document = load_yaml(decode_utf8((root / "Pulumi.yaml").read_bytes()))
    except YamlError as err:
        raise ValidationError(
            "Pulumi.yaml", [Problem("Pulumi.yaml", f"not valid YAML at {err.where}", "", "YAML")]
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("name"), str):
        raise ValidationError("Pulumi.yaml", [Problem("name", "not a project file", "no name:", "a `name:` string")])
    declarations = document.get("config") or {}
    return document["name"], declarations if isinstance(declarations, Mapping) else {}


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: 0 when the file is (now) native, 2 when it needs converting or cannot be."""
    parser = argparse.ArgumentParser(
        prog="python -m celery_platform.config.migrate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("stack", help="converts Pulumi.<stack>.yaml")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 2 if the file needs converting")
    parser.add_argument("--project-dir", type=Path, default=Path.cwd(), help="folder of Pulumi.yaml (default: here)")
    options = parser.parse_args(argv)
    root: Path = options.project_dir
    path = root / f"Pulumi.{options.stack}.yaml"
    command = COMMAND.format(stack=options.stack)
    try:
        project, declarations = _project(root)
        if not path.is_file() and options.check:
            return 0  # nothing to convert: the guard adds no refusal of its own to what pulumi says
        if not path.is_file():
            raise ValidationError(
                path.name, [Problem("stack", "no such stack file", repr(options.stack), "Pulumi.<stack>.yaml")]
            )
        text = decode_utf8(path.read_bytes())
        if options.check:
            document = load_yaml(text)
            values = document.get("config") if isinstance(document, dict) else None
            problems = stack_problems(options.stack, project, declarations, values if isinstance(values, dict) else {})
            if problems:
                raise ValidationError(f"{path.name} (stack {options.stack!r})", problems)
            return 0
        migration = migrate_text(text, declarations, project, options.stack)
    except YamlError as err:
        print(f"error: {path.name} is not valid YAML at {err.where}: {err.problem}", file=sys.stderr)
        return 2
    except OSError as err:  # no Pulumi.yaml here, or a file that cannot be read
        print(f"error: {err.strerror}: {err.filename}", file=sys.stderr)
        return 2
    except ValidationError as err:
        print(f"error: {err}", file=sys.stderr)
        if options.check or not isinstance(err, MigrationError):
            return 2
        print(f"{command}: {path.name} is unchanged; fix the keys above, then run it again", file=sys.stderr)
        return 2
    if not migration.converted:
        print(f"{command}: {path.name} already holds every structured key as YAML; nothing to change")
        return 0
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write(migration.text)
    print(f"{command}: converted {', '.join(migration.converted)} in {path.name} to YAML objects")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
