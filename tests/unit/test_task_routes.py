"""taskRoutes: rendered into every worker and beat, applied by the hooks ahead of the app's own routes, exported."""

from __future__ import annotations

import json

import pytest
import yaml
from celery import Celery

from celery_platform.builders.celery_pods import PLAN_REFS, beat_pod_spec, worker_pod_spec
from celery_platform.builders.probes import TASK_ROUTES_ENV
from celery_platform.config.stack import parse_stack_config
from celery_platform.hooks import celery_platform_hooks as hooks
from celery_platform.render import run_program
from celery_platform.render.stack_files import stack_config
from tests.conftest import resolve

STACK = {
    "image": "registry.example.com/app:1.0.0",
    "databaseUrl": "postgresql://app:pw@10.20.1.5:5432/app",
    "pools": yaml.safe_dump([{"name": "main", "queues": ["default"]}, {"name": "io", "queues": ["email"]}]),
}
ROUTES = {"proj.mail.*": "email", "proj.tasks.report": "default"}


def _env(spec: dict[str, object]) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}  # type: ignore[index]


def test_every_worker_and_beat_gets_the_routes_as_sorted_json_and_none_without_routes() -> None:
    args = parse_stack_config({**STACK, "taskRoutes": yaml.safe_dump(ROUTES)})
    settings = args.workload_settings()
    specs = [worker_pod_spec(settings, pool, PLAN_REFS, "celery") for pool in args.pools]
    specs.append(beat_pod_spec(settings, args.beat, PLAN_REFS))
    for spec in specs:
        assert _env(spec)[TASK_ROUTES_ENV] == '{"proj.mail.*":"email","proj.tasks.report":"default"}'
    plain = parse_stack_config(STACK).workload_settings()
    assert TASK_ROUTES_ENV not in _env(worker_pod_spec(plain, args.pools[0], PLAN_REFS, "celery"))
    assert TASK_ROUTES_ENV not in _env(beat_pod_spec(plain, args.beat, PLAN_REFS))


def test_the_hooks_and_the_builders_name_the_same_variable() -> None:
    assert hooks.ROUTES_ENV == TASK_ROUTES_ENV


def _app(own: object = None) -> Celery:
    app = Celery("t", broker="memory://", set_as_current=False)
    if own is not None:
        app.conf.task_routes = own
    return app


def _queue(app: Celery, task: str) -> str:
    return str(app.amqp.router.route({}, task)["queue"].name)


def test_the_stacks_routes_come_before_the_apps_own_which_still_route_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TASK_ROUTES_ENV, json.dumps(ROUTES))
    app = _app({"proj.tasks.report": {"queue": "reports"}, "proj.tasks.other": {"queue": "low"}})
    assert _queue(app, "proj.tasks.report") == "reports"  # before: the app's route, and the router is cached
    assert hooks.install_task_routes(app) == ROUTES
    assert _queue(app, "proj.tasks.report") == "default"  # the stack's route wins
    assert _queue(app, "proj.mail.send") == "email"  # a glob
    assert _queue(app, "proj.tasks.other") == "low"  # the app's own route, kept
    assert _queue(app, "proj.tasks.unnamed") == "celery"  # task_default_queue
    # A second install (beat resolves the app once more) replaces the stack's table, never stacks it twice.
    hooks.install_task_routes(app)
    assert len(app.conf.task_routes) == 2


@pytest.mark.parametrize("own", [None, "proj.routers:route", [{"a": "low"}, "proj.routers:route"]])
def test_any_shape_of_the_apps_own_routes_is_kept_after_the_stacks(
    own: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TASK_ROUTES_ENV, json.dumps(ROUTES))
    app = _app(own)
    hooks.install_task_routes(app)
    kept = [] if own is None else own if isinstance(own, list) else [own]
    assert list(app.conf.task_routes) == [{k: {"queue": v} for k, v in ROUTES.items()}, *kept]


def test_without_the_variable_the_apps_routes_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TASK_ROUTES_ENV, raising=False)
    app = _app({"a": {"queue": "low"}})
    assert hooks.install_task_routes(app) == {}
    assert app.conf.task_routes == {"a": {"queue": "low"}}


@pytest.mark.parametrize("raw", ["{not json", '["email"]', '{"a": 1}'])
def test_fails_when_the_variable_is_not_a_table_of_task_to_queue(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TASK_ROUTES_ENV, raw)
    with pytest.raises(RuntimeError, match=f"{TASK_ROUTES_ENV} is not valid"):
        hooks.install_task_routes(_app())


def test_the_program_exports_the_routes_for_producers_outside_the_platform() -> None:
    config, secret_keys = stack_config("dev")
    program = run_program("dev", {**config, "celery-platform:taskRoutes": json.dumps(ROUTES)}, secret_keys)
    assert resolve(program.globals["platform"].task_routes) == ROUTES
    plain = run_program("dev", config, secret_keys)
    assert resolve(plain.globals["platform"].task_routes) == {}
