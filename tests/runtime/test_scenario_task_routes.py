"""The stack's taskRoutes route for every Celery process the platform runs: a worker's `.delay()` and beat.

The dev stack as committed, with two routes that the sample app's own ``task_routes`` send elsewhere,
to a queue of the other pool (the dev pools split the queues: main has default, high, low,
maintenance; io has email, reports, media, webhooks):

- ``periodic_task``, which beat sends: the app says maintenance (main), the stack says email (io);
- ``deliver_webhook``, which a worker sends with ``relay``: the app says webhooks (io), the stack says low (main).

``unrouted_task`` is named by no route: a worker sends it to the default queue (main).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import yaml

from tests.runtime.conftest import SAMPLE_APP_DIR
from tests.runtime.harness import celery_client, wait_until

if TYPE_CHECKING:
    from tests.runtime.harness import Kubelet, Pod

ROUTES = {"sample_app.tasks.periodic_task": "email", "sample_app.tasks.deliver_webhook": "low"}


def _received(pod: Pod, task: str, task_id: str | None = None) -> bool:
    ident = re.escape(task_id) if task_id else r"[0-9a-f-]+"
    return re.search(rf"Task {re.escape(task)}\[{ident}\] received", pod.log()) is not None


def test_beat_and_a_worker_route_by_the_stacks_task_routes_ahead_of_the_apps_own(
    kubelet: Callable[..., Kubelet],
) -> None:
    # The control: the app's own routes send both tasks to the other pool.
    own = (SAMPLE_APP_DIR / "sample_app" / "celery.py").read_text()
    assert '"sample_app.tasks.periodic_task": {"queue": "maintenance"}' in own
    assert '"sample_app.tasks.deliver_webhook": {"queue": "webhooks"}' in own
    node = kubelet("dev", {"taskRoutes": yaml.safe_dump(ROUTES)})
    main, io, beat = node.create_pod("celery-main"), node.create_pod("celery-io"), node.create_pod("celery-beat")
    pods = (main, io, beat)

    def why() -> str:
        return "\n".join(p.describe() + "\n" + p.log()[-3000:] for p in pods)

    assert wait_until(lambda: all(p.ready for p in pods), timeout=90), why()
    client = celery_client(node.broker.url(), ["email"])

    # Beat sends the periodic task (every 5 s): to email, so io runs it and main never does.
    assert wait_until(lambda: _received(io, "sample_app.tasks.periodic_task"), timeout=30), why()
    assert not _received(main, "sample_app.tasks.periodic_task"), why()

    # The io worker sends deliver_webhook and unrouted_task itself (relay runs on io: it is sent to email).
    webhook = client.send_task(
        "sample_app.tasks.relay", args=("sample_app.tasks.deliver_webhook", ["u"]), queue="email"
    )
    unrouted = client.send_task("sample_app.tasks.relay", args=("sample_app.tasks.unrouted_task", []), queue="email")
    webhook_id, unrouted_id = webhook.get(timeout=30), unrouted.get(timeout=30)
    assert _received(io, "sample_app.tasks.relay", webhook.id), why()
    assert wait_until(lambda: _received(main, "sample_app.tasks.deliver_webhook", webhook_id), timeout=30), why()
    assert not _received(io, "sample_app.tasks.deliver_webhook"), why()
    assert wait_until(lambda: _received(main, "sample_app.tasks.unrouted_task", unrouted_id), timeout=30), why()
    assert client.AsyncResult(unrouted_id).get(timeout=30) == "default"
    client.close()
