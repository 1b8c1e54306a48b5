"""Render a stack offline: run the real program under the mock engine and print its Kubernetes objects.

``python -m celery_platform.render <stack> [-o FILE] [--project-dir DIR] [--diff OTHER.yaml]`` reads ``Pulumi.yaml`` and
``Pulumi.<stack>.yaml`` of any Pulumi project that uses these components (the current directory by
default), runs its ``main:`` program in-process under ``pulumi.runtime.set_mocks`` and prints every Kubernetes
object as multi-document YAML, in apply order. It behaves like pulumi-kubernetes where correctness
depends on it (auto-names with a suffix, the default namespace). Generated, encrypted or absent
secret values are placeholders; the output is the same bytes for the same input.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import runpy
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from celery_platform.render.mocks import RenderMocks
from celery_platform.render.output import HEADER, check_render, diff_documents, dump_documents
from celery_platform.render.stack_files import StackInput, load_project, read_stack
from celery_platform.resources.preflight import OFFLINE


@dataclass
class ProgramRun:
    """What one run of the program left behind: the mocks' records and the program's globals."""

    mocks: RenderMocks
    globals: dict[str, Any]


def run_program(stack: str, config: Mapping[str, str], secret_keys: list[str], root: Path | None = None) -> ProgramRun:
    """Run the project's ``main:`` program under the render mocks with ``config``."""
    project = load_project(root)
    os.environ["PULUMI_CONFIG"] = json.dumps(dict(config))
    os.environ["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(secret_keys)
    pulumi.runtime.config.set_all_config({}, secret_keys)
    mocks = RenderMocks()
    pulumi.runtime.set_mocks(mocks, project=project.name, stack=stack, preview=False)
    # A folder, as Pulumi runs `main:`: runpy puts it first on sys.path, so the program's siblings import.
    program = str(project.main)
    namespace: dict[str, Any] = {}
    _sync_await(run_pulumi_func(lambda: namespace.update(runpy.run_path(program, run_name="__main__"))))
    return ProgramRun(mocks, namespace)


@contextlib.contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for one run of the program (reference counting goes on).

    Every resource the program registers stays alive until the run ends, and each full collection
    walks all of them, so with the collector on a render of 4x the pools cost 7x the collection time
    (cProfile charges it to whichever SDK call allocated). The cycles left behind are collected once,
    when the run is over: one pass, linear in what the run built.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def render_documents(stack: str, root: Path | None = None) -> list[dict[str, Any]]:
    """Return the stack's Kubernetes objects, scrubbed and in apply order."""
    return _documents(stack, read_stack(stack, root), root)


def _documents(stack: str, read: StackInput, root: Path | None) -> list[dict[str, Any]]:
    """Run the program on a stack file already read; the cyclic collector paused (see cyclic_gc_paused)."""
    with cyclic_gc_paused():
        return run_program(stack, read.config, read.secret_keys, root).mocks.ordered()


def to_yaml(documents: list[dict[str, Any]]) -> str:
    """Dump ``documents`` as deterministic multi-document YAML, block literals for multi-line strings."""
    return dump_documents(documents)


def standin_header(standins: Mapping[str, str]) -> str:
    """YAML comments naming every key whose value the render could not know, and why."""
    if not standins:
        return ""
    lines = ["# The render could not know these config values; it used stand-ins, and secret ones print as <secret>:"]
    lines += [f"#   {key}: {why}" for key, why in sorted(standins.items())]
    return "\n".join(lines) + "\n"


def render_text(stack: str, root: Path | None = None) -> tuple[str, dict[str, str]]:
    """Return the stack's YAML, stand-ins named at the top, and the stand-ins themselves."""
    read = read_stack(stack, root)
    # The render-only note stays first; the stand-ins come right after it.
    body = to_yaml(_documents(stack, read, root)).removeprefix(HEADER)
    return HEADER + standin_header(read.standins) + body, read.standins


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; exits 2 with the validation message on invalid config."""
    parser = argparse.ArgumentParser(prog="python -m celery_platform.render", description=__doc__.splitlines()[0])
    parser.add_argument("stack", help="stack name: renders Pulumi.<stack>.yaml")
    parser.add_argument("-o", "--output", type=Path, help="write the YAML here instead of stdout")
    parser.add_argument(
        "--project-dir", type=Path, default=None, help="folder of Pulumi.yaml (default: the current one)"
    )
    parser.add_argument(
        "--diff",
        type=Path,
        metavar="OTHER.yaml",
        help="print what changed per object from OTHER.yaml (an earlier render) to this one; exit 1 if anything did",
    )
    options = parser.parse_args(argv)
    earlier = ""
    if options.diff:
        try:  # read first: a wrong path is said before a render, never as a traceback after it
            earlier = options.diff.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else type(err).__name__
            print(
                f"error: --diff {options.diff}: cannot read it ({reason}); give an earlier render's YAML",
                file=sys.stderr,
            )
            return 2
        if (unreadable := check_render(earlier)) is not None:
            print(f"error: --diff {options.diff}: {unreadable}; give an earlier render's YAML", file=sys.stderr)
            return 2
    try:
        text, standins = render_text(options.stack, options.project_dir)
    except pulumi.RunError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if standins:
        print(
            f"note: rendered with stand-ins for {', '.join(sorted(standins))} (see the top of the YAML)",
            file=sys.stderr,
        )
    # The program's own note goes to the mock engine's log, which a render does not print.
    print(f"note: {OFFLINE}", file=sys.stderr)
    if options.output:
        options.output.parent.mkdir(parents=True, exist_ok=True)
        options.output.write_text(text)
    if options.diff:
        changes = diff_documents(earlier, text, str(options.diff), f"{options.stack} now")
        sys.stdout.write(changes)
        return 1 if changes else 0
    if not options.output:
        sys.stdout.write(text)
    return 0
