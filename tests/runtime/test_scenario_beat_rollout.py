"""Scenario 5, beat rollout: never two beats, and periodic tasks neither duplicated nor skipped.

Nothing is shortened: the dev stack as committed (beat ``--max-interval`` 10 s); the sample app's
periodic task runs every 5 s (its default, SAMPLE_APP_PERIODIC_SECONDS is not set by the platform).
The rollout follows the rendered kind and strategy (see ``Kubelet.rollout``).
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from tests.runtime.harness import processes_matching, wait_until

if TYPE_CHECKING:
    from tests.runtime.harness import Kubelet, Pod

PERIOD_SECONDS = 5.0
RUN_SECONDS = 12
SENT = re.compile(
    r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/MainProcess\] Scheduler: Sending due task periodic-task"
)


def _send_times(pod: Pod) -> list[float]:
    return [datetime.strptime(m, "%Y-%m-%d %H:%M:%S,%f").timestamp() for m in SENT.findall(pod.log())]


def test_a_beat_rollout_never_runs_two_beats_and_neither_duplicates_nor_skips_periodic_tasks(
    kubelet: Callable[..., Kubelet],
) -> None:
    node = kubelet("dev")
    assert node.manifests.workload("celery-beat")["kind"] == "StatefulSet"
    worker = node.create_pod("celery-main")  # consumes the maintenance queue
    (old,) = node.scale_up("celery-beat")
    assert wait_until(lambda: worker.ready and old.ready, timeout=60), worker.describe() + old.describe()

    # Count live beat processes among this test's pods, from /proc, every 50 ms.
    most, stop = [0], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            groups = {p.process.pid for p in node.pods if p.process is not None}
            beats = [pid for pid in processes_matching(" beat ") if _group(pid) in groups]
            most[0] = max(most[0], len(beats))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    time.sleep(RUN_SECONDS)
    rollout_began = time.time()
    (new,) = node.rollout("celery-beat", [old])
    rollout_ended = time.time()
    assert old.termination is not None and not old.termination.killed, old.describe()
    time.sleep(RUN_SECONDS)
    stop.set()
    watcher.join()
    assert most[0] == 1, f"{most[0]} beats ran at once"
    assert new.ready and new.restarts == 0 and old.restarts == 0, new.describe()

    # Stop the new beat, so that no send is still on its way to the worker when sends and results are counted.
    new.delete()
    old_sends, new_sends = _send_times(old), _send_times(new)
    assert len(old_sends) >= 2 and len(new_sends) >= 2, (old.log(), new.log())
    # Not duplicated: every beat sends once a period, and the new one does not resend at once.
    for sends in (old_sends, new_sends):
        gaps = [b - a for a, b in itertools.pairwise(sends)]
        assert all(PERIOD_SECONDS - 0.5 <= g <= PERIOD_SECONDS + 1.5 for g in gaps), gaps
    # Not skipped beyond the rollout: the old beat sent every period until the rollout began, and the
    # new one sends one period after it is up (a new pod has a new emptyDir, hence a fresh schedule
    # whose first run is one period away). The gap between them is the old beat's last period, the
    # rollout and the new beat's first period; bounding it by the rollout alone assumed a rollout
    # at least one period long, which a Ready that follows the first tick within a second is not.
    downtime = new_sends[0] - old_sends[-1]
    assert downtime >= PERIOD_SECONDS - 0.5, downtime
    assert old_sends[-1] >= rollout_began - PERIOD_SECONDS - 1.5, (old_sends[-1], rollout_began)
    assert new_sends[0] <= rollout_ended + PERIOD_SECONDS + 1.5, (new_sends[0], rollout_ended)

    # Every send ran exactly once on the worker: one result per send.
    def succeeded() -> int:
        return len(re.findall(r"Task sample_app\.tasks\.periodic_task\[[^\]]+\] succeeded", worker.log()))

    sent = len(old_sends) + len(new_sends)
    assert wait_until(lambda: succeeded() >= sent, timeout=10), (succeeded(), old_sends, new_sends)
    assert succeeded() == sent, (succeeded(), old_sends, new_sends)


def _group(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return -1
