"""What the docs-driven engine tests share: the command lines of a guide's marked blocks, and a plan's names."""

from __future__ import annotations

from pathlib import Path


def marked_blocks(page: Path, marker: str) -> list[list[str]]:
    """The command lines of each ``sh`` block that follows ``marker`` in ``page`` (comments and blanks dropped)."""
    blocks = []
    for part in page.read_text().split(marker)[1:]:
        block = part.split("```sh\n", 1)[1].split("```", 1)[0]
        lines = [line.split("  #", 1)[0].strip() for line in block.splitlines()]
        blocks.append([line for line in lines if line and not line.startswith("#")])
    return blocks


def type_and_name(urn: str) -> tuple[str, str]:
    """The resource type (without its parents' types) and the name in a URN."""
    parts = urn.split("::")
    return parts[2].split("$")[-1], parts[3]
