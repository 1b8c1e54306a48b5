"""Pulumi.yaml's ``config:`` block, derived from the stack config keys (each a field of CeleryPlatformArgs).

``python -m celery_platform.config.project_file [--check] [--project-dir DIR]`` rewrites the block, or
with ``--check`` exits 1 when the committed file differs (``make pulumi-yaml`` writes it; a unit test
checks it). Everything before ``config:`` is the project's own and stays as it is.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter

from celery_platform.config.keys import KEYS, REQUIRED, UNSET, Key

OPTIONAL_SECRETS_NOTE = """\
# Optional secrets, set only with `pulumi config set --secret KEY VALUE`. They are not declared above:
# the engine refuses a declared key that a stack leaves out, and a declared default is plain text.
"""


def _default(key: Key) -> Any:
    """The smallest value that the program reads as the key's default: ``{}`` when every field has one."""
    value = key.default
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        try:
            if TypeAdapter(type(value)).validate_python({}) == value:
                return {}
        except ValueError:
            pass
        return TypeAdapter(type(value)).dump_python(value, mode="json", by_alias=True)
    if isinstance(value, tuple):
        return TypeAdapter(Any).dump_python(list(value), mode="json")
    return value


def declaration(key: Key) -> dict[str, Any]:
    """Return the Pulumi.yaml declaration of one key: type, items, description, secret and default."""
    decl: dict[str, Any] = {"type": key.pulumi_type, "description": key.description}
    if key.pulumi_type == "array":
        decl["items"] = {"type": "object" if key.structured else "string"}
    if key.secret:
        decl["secret"] = True
    if key.default is not REQUIRED and key.default is not UNSET:
        decl["default"] = _default(key)
    return decl


def config_block() -> str:
    """Return the ``config:`` block, and the note that names every optional secret, as Pulumi.yaml text."""
    block: str = yaml.safe_dump(
        {"config": {k.name: declaration(k) for k in KEYS if k.declared}},
        sort_keys=False,
        width=110,
        allow_unicode=True,
    )
    undeclared = "".join(f"#   {k.name}: {k.description}\n" for k in KEYS if not k.declared)
    return block + OPTIONAL_SECRETS_NOTE + undeclared


def with_config_block(text: str) -> str:
    """Return Pulumi.yaml's text with its ``config:`` block (and everything after it) generated anew."""
    head, marker, _ = text.partition("\nconfig:")
    if not marker:
        head = text.rstrip("\n")
    return head + "\n" + config_block()


def main(argv: list[str] | None = None) -> int:
    """Write Pulumi.yaml's config block, or check that it is current."""
    parser = argparse.ArgumentParser(prog="python -m celery_platform.config.project_file", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 when Pulumi.yaml is stale")
    parser.add_argument("--project-dir", type=Path, default=Path.cwd())
    options = parser.parse_args(argv)
    path = options.project_dir / "Pulumi.yaml"
    text = path.read_text(encoding="utf-8")
    wanted = with_config_block(text)
    if options.check:
        if text != wanted:
            print(f"{path}: its config block is stale; run `make pulumi-yaml`", file=sys.stderr)
            return 1
        return 0
    if text != wanted:
        path.write_text(wanted, encoding="utf-8")
        print(f"{path}: config block written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
