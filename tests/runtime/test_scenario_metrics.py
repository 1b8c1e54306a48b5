"""Scenario: the rendered exporter is scraped while real workers run real tasks, and the numbers match.

The dev stack as committed, except the exporter's port (a free one, since the test runs on the host)
and a shorter beat interval. The exporter runs from its rendered command, env and ConfigMap, with its
rendered httpGet probes; the workers and beat from theirs (workers with ``--task-events``). The
client sends ``task-sent`` events (``task_send_sent_event``), which the oldest-message age needs.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client.parser import text_string_to_metric_families

from tests.runtime.harness import celery_client, wait_until

if TYPE_CHECKING:
    from tests.runtime.harness import Kubelet, Pod


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics and parse it with prometheus-client's own parser: {(sample name, labels): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_the_exporter_counts_queued_running_and_finished_tasks_as_they_really_happen(
    kubelet: Callable[..., Kubelet],
) -> None:
    from tests.runtime.conftest import free_port

    port = free_port()
    node = kubelet("dev", {"monitoring": f"port: {port}", "beat": "maxIntervalSeconds: 2"})
    exporter, main = node.create_pod("celery-exporter"), node.create_pod("celery-main")
    beat = node.create_pod("celery-beat")
    pods: list[Pod] = [exporter, main, beat]

    def why() -> str:
        return "\n".join(p.describe() + "\n" + p.log()[-3000:] for p in pods)

    assert wait_until(lambda: exporter.ready and main.ready and beat.ready, timeout=90), why()
    client = celery_client(node.broker.url(), ["default", "email", "reports"])
    client.conf.task_send_sent_event = True

    # 1. Four emails wait with no consumer: two at the default priority, one at 5 and one at 9, which
    # kombu's Redis transport keeps in sub-lists named "email\x06\x16<step>": LLEN email alone says 2.
    for priority in (None, None, 5, 9):
        client.send_task("sample_app.tasks.send_email", args=("a@b.c",), queue="email", priority=priority)
    redis = node.broker.client()
    lists = {k.decode(): redis.llen(k) for k in redis.keys("email*")}
    assert sum(lists.values()) == 4 and lists["email"] < 4 and any("\x06\x16" in k for k in lists), lists

    def scraped(check: Callable[[dict[Any, float]], bool], timeout: float = 30) -> dict[Any, float]:
        last: dict[Any, float] = {}

        def ok() -> bool:
            nonlocal last
            last = scrape(port)
            return check(last)

        assert wait_until(ok, timeout=timeout, interval=1), (
            "\n".join(f"{k}: {v}" for k, v in sorted(last.items()) if k[0].startswith("celery_")) + "\n" + why()
        )
        return last

    samples = scraped(
        lambda m: (
            value(m, "celery_queue_messages", queue="email") == 4
            and value(m, "celery_queue_consumers", queue="default") == 1
            and (value(m, "celery_queue_oldest_message_age_seconds", queue="email") or 0) >= 1
        )
    )
    assert value(samples, "celery_queue_consumers", queue="email") == 0
    assert value(samples, "celery_workers_online", pool="main") == 1
    assert value(samples, "celery_beat_last_tick_timestamp_seconds") is not None
    assert time.time() - value(samples, "celery_beat_last_tick_timestamp_seconds") <= 2 * 2 + 2  # type: ignore[operator]

    # 2. Real tasks on the main pool: five succeed, three fail (a str plus an int raises TypeError).
    ok = [client.send_task("sample_app.tasks.short_task", args=(i, 1), queue="default") for i in range(5)]
    bad = [client.send_task("sample_app.tasks.short_task", args=("x", 1), queue="default") for _ in range(3)]
    assert [r.get(timeout=30) for r in ok] == [1, 2, 3, 4, 5]
    for r in bad:
        r.get(timeout=30, propagate=False)
    assert all(r.state == "FAILURE" for r in bad)
    samples = scraped(
        lambda m: (
            value(m, "celery_tasks_total", task="sample_app.tasks.short_task", state="succeeded") == 5
            and value(m, "celery_tasks_total", task="sample_app.tasks.short_task", state="failed") == 3
        )
    )
    assert value(samples, "celery_task_runtime_seconds_count", task="sample_app.tasks.short_task") == 5

    # 3. The io pool starts: it drains the four emails, and holds its two children with long reports.
    io = node.create_pod("celery-io")
    pods.append(io)
    assert wait_until(lambda: io.ready, timeout=60), why()
    samples = scraped(
        lambda m: (
            value(m, "celery_queue_messages", queue="email") == 0
            and value(m, "celery_tasks_total", task="sample_app.tasks.send_email", state="succeeded") == 4
            and value(m, "celery_queue_consumers", queue="email") == 1
        )
    )
    assert value(samples, "celery_workers_online", pool="io") == 1
    long = [client.send_task("sample_app.tasks.long_task", args=(20,), queue="reports") for _ in range(2)]
    assert wait_until(lambda: all(r.state == "STARTED" for r in long), timeout=20), why()
    samples = scraped(lambda m: value(m, "celery_pool_tasks_active", pool="io") == 2)
    assert value(samples, "celery_pool_tasks_active", pool="main") == 0
    assert exporter.restarts == 0 and all(r.exit_code == 0 for r in exporter.probe_results("liveness")), why()
    client.close()
