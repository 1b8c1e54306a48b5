"""The render's YAML as a reviewer reads it: block literals, a header that says what is render-only, and a
diff per object between two renders.

``dump_documents`` prints multi-line strings (the hooks module, scripts) as YAML block literals (``|``),
so that they read and diff line by line; a string that a block literal cannot hold exactly (trailing
spaces, control characters) keeps PyYAML's quoted form. ``diff_documents`` keys every object by
kind, namespace and name and prints one unified diff per object that was added, removed or changed.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

HEADER = (
    "# Rendered offline by `python -m celery_platform.render`: every Kubernetes object, in apply order.\n"
    "# Render-only: names that end in an 8-character suffix were auto-named, and the suffix here is a hash\n"
    "# of the resource name; pulumi-kubernetes picks a random one at `pulumi up`. Secret values print as\n"
    "# <secret>.\n"
)


class _ReviewDumper(yaml.SafeDumper):  # type: ignore[misc,unused-ignore]  # PyYAML ships no types
    """SafeDumper that prints multi-line strings as block literals."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        # PyYAML falls back to a quoted scalar by itself when a block cannot hold the text exactly.
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_str(value)


_ReviewDumper.add_representer(str, _represent_str)


def dump_documents(documents: Iterable[Mapping[str, Any]], header: bool = True) -> str:
    """Dump ``documents`` as deterministic multi-document YAML, the render-only note first."""
    text: str = yaml.dump_all(
        list(documents), Dumper=_ReviewDumper, sort_keys=False, default_flow_style=False, width=120
    )
    return (HEADER if header else "") + text


def object_key(document: Mapping[str, Any]) -> str:
    """Return ``Kind namespace/name`` (``Kind name`` when cluster-scoped): what identifies an object."""
    meta = document.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{document.get('kind', '?')} {where}{meta.get('name', '?')}"


def check_render(text: str) -> str | None:
    """Return why ``text`` is not a render's YAML (multi-document, each a Kubernetes object), or None."""
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return f"not YAML{where}: {getattr(err, 'problem', None) or type(err).__name__}"
    for i, document in enumerate(documents, 1):
        if not isinstance(document, dict) or not isinstance(document.get("metadata", {}), dict):
            return f"document {i} is not a Kubernetes object (a mapping with kind and metadata)"
    return None


def _by_key(text: str) -> dict[str, str]:
    return {object_key(d): dump_documents([d], header=False) for d in yaml.safe_load_all(text) if d}


def diff_documents(old_text: str, new_text: str, old_label: str = "old", new_label: str = "new") -> str:
    """Return one unified diff per object that differs between two renders, in the new render's order.

    Objects are matched by kind, namespace and name, so an object that moved in the file is no change,
    and a renamed one shows as removed and added.
    """
    old, new = _by_key(old_text), _by_key(new_text)
    keys = [*new, *(k for k in old if k not in new)]
    chunks: list[str] = []
    for key in keys:
        before, after = old.get(key, ""), new.get(key, "")
        if before == after:
            continue
        state = "added" if not before else "removed" if not after else "changed"
        chunks.append(f"### {key} ({state})\n")
        chunks += difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"{old_label}: {key}",
            tofile=f"{new_label}: {key}",
        )
    return "".join(chunks)
