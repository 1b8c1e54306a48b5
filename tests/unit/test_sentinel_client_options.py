"""How the hooks module and the exporter turn the platform's Sentinel env into Celery transport options."""

from __future__ import annotations

import pytest
from celery import Celery

from celery_platform.exporter import celery_platform_exporter as exporter
from celery_platform.hooks import celery_platform_hooks as hooks

URL = "sentinel://:pw@s-0:26379/0;sentinel://:pw@s-1:26379/0;sentinel://:pw@s-2:26379/0"


@pytest.fixture
def sentinel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hooks.SENTINEL_MASTER_ENV, "celery")
    monkeypatch.setenv(hooks.SENTINEL_PASSWORD_ENV, "sentinel-secret")


@pytest.mark.usefixtures("sentinel_env")
def test_the_hooks_add_master_name_and_sentinel_password_to_the_broker_and_a_sentinel_result_backend() -> None:
    app = Celery("t", broker=URL, backend=URL)
    app.conf.broker_transport_options = {"visibility_timeout": 600}
    hooks.apply_sentinel_options(app)
    expected = {"master_name": "celery", "sentinel_kwargs": {"password": "sentinel-secret"}}
    assert app.conf.broker_transport_options == {**expected, "visibility_timeout": 600}
    assert app.conf.result_backend_transport_options == expected
    # kombu reads them: the channel's class takes master_name and sentinel_kwargs from the options.
    with app.connection_for_write() as conn:
        assert conn.transport_options["master_name"] == "celery"


@pytest.mark.usefixtures("sentinel_env")
def test_the_apps_own_transport_options_win_and_a_redis_result_backend_is_left_alone() -> None:
    app = Celery("t", broker=URL, backend="redis://:pw@r:6379/0")
    app.conf.broker_transport_options = {"master_name": "mine"}
    hooks.apply_sentinel_options(app)
    assert app.conf.broker_transport_options == {
        "master_name": "mine",
        "sentinel_kwargs": {"password": "sentinel-secret"},
    }
    assert not app.conf.result_backend_transport_options


def test_without_the_sentinel_env_nothing_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(hooks.SENTINEL_MASTER_ENV, raising=False)
    app = Celery("t", broker="redis://:pw@r:6379/0")
    app.conf.broker_transport_options = {"visibility_timeout": 60}
    hooks.apply_sentinel_options(app)
    assert app.conf.broker_transport_options == {"visibility_timeout": 60}
    assert exporter.transport_options("60") == {"visibility_timeout": 60}


@pytest.mark.usefixtures("sentinel_env")
def test_the_exporter_asks_for_the_same_master_with_the_same_sentinel_password() -> None:
    assert exporter.transport_options("") == {
        "master_name": "celery",
        "sentinel_kwargs": {"password": "sentinel-secret"},
    }
    assert exporter.SENTINEL_MASTER_ENV == hooks.SENTINEL_MASTER_ENV
    assert exporter.SENTINEL_PASSWORD_ENV == hooks.SENTINEL_PASSWORD_ENV
