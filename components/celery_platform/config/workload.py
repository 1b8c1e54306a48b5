"""What every Celery pod of a platform shares: image, app, timing, identity and the broker wait."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from celery_platform.config.podsettings import PodSettings
from celery_platform.config.problems import Problem, shown
from celery_platform.config.specs import PodResources, pod_resources
from celery_platform.config.validation import SAFE_INT_MAX, check_count, check_image_pinned

# What `celery -A` imports: a dotted module path, optionally `:attribute` (also dotted).
CELERY_APP = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*(?::[A-Za-z_][A-Za-z0-9_.]*)?")


def check_celery_app(field: str, app: str) -> list[Problem]:
    """Return a problem unless ``app`` is what ``celery -A`` imports."""
    if CELERY_APP.fullmatch(app):
        return []
    return [
        Problem(
            field,
            "not a Celery app name",
            shown(app),
            "the app as `celery -A` takes it: a dotted module path, optionally ':attribute'",
        )
    ]


@dataclass(frozen=True, kw_only=True)
class WorkloadSettings:
    """What every Celery pod of a platform shares: image, app, timing and the broker wait."""

    image: str
    """The app image (pinned tag or digest) that has Celery and the tasks. Required."""
    app: str
    """The Celery app as ``celery -A`` takes it, e.g. ``proj`` or ``proj.celery:app``. Required."""
    redis_image: str = "redis:7.2.7"
    """Image of the wait-for-broker init container (it needs sh and redis-cli). Default: ``"redis:7.2.7"``."""
    longest_task_seconds: int = 300
    """Longest task; sets the visibility timeout and the grace period of ``shutdown: finish`` pools.
    Default: ``300``."""
    heartbeat_max_age_seconds: int = 60
    """Liveness: how stale the heartbeat may be; covers a broker reconnect. Default: ``60``."""
    run_as_user: int = 10001
    """Non-root UID (and GID, fsGroup) of Celery pods. Default: ``10001``."""
    init_resources: PodResources = field(default_factory=lambda: pod_resources("10m", "16Mi", "20m", "32Mi"))
    """Resources of the wait-for-broker init container (LimitRange applies to it too).
    Default: ``10m``/``16Mi`` requests, ``20m``/``32Mi`` limits."""
    rollout_timeout_seconds: int = 600
    """How long ``pulumi up`` waits for a pool or beat to become ready before it fails, naming the
    workload and why (a pod that fits no node, a crash loop). Default: ``600``, the provider's own."""
    pod: PodSettings = field(default_factory=PodSettings)
    """Pod settings of every Celery pod (identity, pull secrets, placement, extra env and volumes);
    a pool or beat may override each field. Default: ``PodSettings()``, none of them."""
    task_routes: Mapping[str, str] = field(default_factory=dict)
    """Task name (or glob) to queue, routed by every Celery process of the platform. Default: none."""

    def validate(self) -> list[Problem]:
        """Return every problem of the shared settings."""
        problems = check_image_pinned("image", self.image) + check_celery_app("celeryApp", self.app)
        problems += check_count("longestTaskSeconds", self.longest_task_seconds, 1, MAX_LONGEST_TASK_SECONDS)
        problems += check_count("heartbeatMaxAgeSeconds", self.heartbeat_max_age_seconds, 10)
        problems += check_count("runAsUser", self.run_as_user, 1)
        problems += check_count("rolloutTimeoutSeconds", self.rollout_timeout_seconds, 30)
        problems += self.init_resources.validate("initResources")
        problems += self.pod.validate("pod") + self.pod.validate_references("pod")
        return problems


# terminationGracePeriodSeconds is longest + 30 and must survive Pulumi's doubles exactly.
MAX_LONGEST_TASK_SECONDS = SAFE_INT_MAX - 30
