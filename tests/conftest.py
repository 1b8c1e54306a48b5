"""Shared helpers: run code under the render mock engine and resolve its Outputs synchronously.

Also how ``make test`` spreads the tiers over pytest-xdist workers (``--dist loadgroup``): every test
is free to run anywhere, except that each tier built around one session-wide server (the cluster
tier's control plane, the engine tier's Pulumi CLI and backend) stays whole on one worker, so that
the server starts once and its tests keep their order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pulumi
import pytest
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from celery_platform.render import RenderMocks
from celery_platform.stack_config import PROJECT

T = TypeVar("T")

TESTS = Path(__file__).resolve().parent
# Tiers whose tests share one expensive session fixture: one xdist group (one worker) each.
ONE_WORKER_TIERS = ("cluster", "engine")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put every test of a one-worker tier in that tier's xdist group."""
    for item in items:
        tier = item.path.relative_to(TESTS).parts[0] if item.path.is_relative_to(TESTS) else ""
        if tier in ONE_WORKER_TIERS:
            item.add_marker(pytest.mark.xdist_group(tier))


def run(fn: Callable[[], T]) -> T:
    """Run ``fn`` as a Pulumi program and wait until every resource it registered is done."""
    box: list[T] = []
    _sync_await(run_pulumi_func(lambda: box.append(fn())))
    return box[0]


def resolve(output: pulumi.Output[T]) -> T | None:
    """Return the value an Output resolves to."""
    return _sync_await(output.future())


def is_secret(output: pulumi.Output[Any]) -> bool:
    """Tell whether an Output is marked secret (the SDK's Output.is_secret, awaited)."""
    return _sync_await(output.is_secret())


def objects_of(mocks: RenderMocks, kind: str) -> list[dict[str, Any]]:
    """Return the registered Kubernetes objects of one kind, as the provider would receive them."""
    return [o for o in mocks.objects if o.get("kind") == kind]


@pytest.fixture
def mocks() -> Iterator[RenderMocks]:
    """A fresh mock engine for one test."""
    engine = RenderMocks()
    pulumi.runtime.config.set_all_config({}, [])
    pulumi.runtime.set_mocks(engine, project=PROJECT, stack="unit", preview=False)
    yield engine
