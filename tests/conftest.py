"""Shared helpers: run code under the render mock engine and resolve its Outputs synchronously."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pulumi
import pytest
from hypothesis import settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from celery_platform.config.stack import PROJECT
from celery_platform.render.mocks import RenderMocks

T = TypeVar("T")

# Property tests explore new examples on every local run; CI (.ci/run sets HYPOTHESIS_PROFILE=ci) runs
# the same derandomized examples every time, so that a submission lands or not on its own merits.
# `make fuzz` is where the long random exploration lives.
# No deadline in CI: a property test checks what the code decides, never how fast a loaded runner is.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True, deadline=None)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


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
