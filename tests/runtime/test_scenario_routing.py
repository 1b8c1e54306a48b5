"""Scenario 6, routing: a task sent to each of the 8 queues is consumed by the pool that lists it.

Nothing is shortened: the dev stack as committed, which splits the queues over two pools.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from tests.runtime.harness import celery_client, wait_until, worker_queues

if TYPE_CHECKING:
    from tests.runtime.harness import Kubelet

# The sample app's task for each queue (examples/sample_app/README.md) and its arguments.
TASKS = {
    "default": ("short_task", (1, 2)),
    "high": ("urgent_task", ("now",)),
    "low": ("batch_task", ([1, 2, 3],)),
    "email": ("send_email", ("a@b.c",)),
    "reports": ("long_task", (0.1,)),
    "media": ("process_media", (0.1,)),
    "webhooks": ("deliver_webhook", ("https://example.invalid/hook",)),
    "maintenance": ("periodic_task", ()),
}


def test_a_task_sent_to_each_of_the_eight_queues_is_consumed_by_the_pool_that_lists_that_queue(
    kubelet: Callable[..., Kubelet],
) -> None:
    node = kubelet("dev")
    workloads = [
        d["metadata"]["name"]
        for d in node.manifests.of_kind("Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"  # not the metrics exporter
    ]
    assert len(workloads) == 2, workloads
    pods = {name: node.create_pod(name) for name in workloads}
    assert wait_until(lambda: all(p.ready for p in pods.values()), timeout=60)
    owner = {q: name for name in workloads for q in worker_queues(node.pod_spec(name))}
    assert sorted(owner) == sorted(TASKS), "every queue is listed by exactly one dev pool"

    client = celery_client(node.broker.url(), list(TASKS))
    sent = {q: client.send_task(f"sample_app.tasks.{task}", args=args, queue=q) for q, (task, args) in TASKS.items()}
    assert wait_until(lambda: all(r.state == "SUCCESS" for r in sent.values()), timeout=30)

    for queue, result in sent.items():
        consumed_by = [name for name, pod in pods.items() if re.search(rf"\[{result.id}\] received", pod.log())]
        assert consumed_by == [owner[queue]], f"{queue}: consumed by {consumed_by}, listed by {owner[queue]}"
        # The node name (-n <pool>@%h) also says which pod ran it: each pod has its own hostname.
        pool = owner[queue].removeprefix("celery-")
        assert f"{pool}@{pods[owner[queue]].name} ready" in pods[owner[queue]].log()
    client.close()
