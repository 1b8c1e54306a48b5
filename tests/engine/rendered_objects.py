"""The Kubernetes objects that a ``renderYamlToDirectory`` provider wrote, normalised so that runs compare.

Two runs of the same platform differ in what is random by design: the values of its Secrets (generated
keys and passwords), anything derived from them, and the suffix the provider gives an auto-named object.
``normalised`` takes those out, and only those; ``differences`` lists every other difference.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

AUTONAMED = "pulumi.com/autonamed"
FROM_A_SECRET = "<from a Secret>"
# Shorter strings than this are not taken as secret values (a "0" would mask every zero).
MIN_SECRET_LENGTH = 8

Key = tuple[str, str, str, str]
"""apiVersion, kind, namespace, name (auto-named suffix replaced)."""


def load_rendered(directory: Path) -> list[dict[str, Any]]:
    """Every object in the YAML files under ``directory`` (the provider writes 0-crd/ and 1-manifest/)."""
    docs: list[dict[str, Any]] = []
    for path in sorted(directory.rglob("*.yaml")):
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def _secret_values(docs: Iterable[Mapping[str, Any]]) -> set[str]:
    values: set[str] = set()
    for doc in docs:
        if doc.get("kind") != "Secret":
            continue
        values.update(str(v) for v in (doc.get("stringData") or {}).values())
        for v in (doc.get("data") or {}).values():
            try:
                values.add(base64.b64decode(str(v), validate=True).decode())
            except (binascii.Error, UnicodeDecodeError):
                values.add(str(v))
    return {v for v in values if len(v) >= MIN_SECRET_LENGTH}


def _autonames(docs: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Each auto-named object's name -> its name with the random suffix replaced."""
    names = {}
    for doc in docs:
        metadata = doc.get("metadata") or {}
        if (metadata.get("annotations") or {}).get(AUTONAMED) != "true":
            continue
        base, _, suffix = str(metadata["name"]).rpartition("-")
        if base and re.fullmatch(r"[0-9a-z]{4,}", suffix):
            names[metadata["name"]] = f"{base}-<autonamed>"
    return names


def _scrub(value: Any, secrets: set[str], names: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _scrub(v, secrets, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets, names) for v in value]
    if isinstance(value, str):
        if any(secret in value for secret in secrets):
            return FROM_A_SECRET
        # Longest first, so that no name that another one extends is replaced inside it.
        for name in sorted(names, key=len, reverse=True):
            value = value.replace(name, names[name])
    return value


def normalised(docs: Iterable[Mapping[str, Any]]) -> dict[Key, dict[str, Any]]:
    """The objects by key, without Secrets' data, secret-derived strings or auto-name suffixes."""
    docs = list(docs)
    secrets = _secret_values(docs)
    names = _autonames(docs)
    out: dict[Key, dict[str, Any]] = {}
    for doc in docs:
        doc = {k: v for k, v in doc.items() if not (doc.get("kind") == "Secret" and k in ("data", "stringData"))}
        doc = _scrub(doc, secrets, names)
        metadata = doc.get("metadata") or {}
        key = (doc["apiVersion"], doc["kind"], metadata.get("namespace", ""), metadata["name"])
        if key in out:
            raise AssertionError(f"two objects are {key}")
        out[key] = doc
    return out


def _paths(expected: Any, actual: Any, where: str) -> Iterable[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        for k in sorted(expected.keys() | actual.keys(), key=str):
            here = f"{where}.{k}" if where else str(k)
            if k not in actual:
                yield f"{here}: missing (expected {_short(expected[k])})"
            elif k not in expected:
                yield f"{here}: unexpected {_short(actual[k])}"
            else:
                yield from _paths(expected[k], actual[k], here)
    elif isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            yield from _paths(e, a, f"{where}[{i}]")
    elif expected != actual or type(expected) is not type(actual):
        yield f"{where}: expected {_short(expected)}, got {_short(actual)}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


def differences(expected: Mapping[Key, Any], actual: Mapping[Key, Any]) -> list[str]:
    """Every difference of ``actual`` from ``expected``: objects missing or extra, then field by field."""
    out = [f"missing {'/'.join(key)}" for key in sorted(expected.keys() - actual.keys())]
    out += [f"extra {'/'.join(key)}" for key in sorted(actual.keys() - expected.keys())]
    for key in sorted(expected.keys() & actual.keys()):
        out += [f"{'/'.join(key)}: {path}" for path in _paths(expected[key], actual[key], "")]
    return out
