"""The one labels helper: the app.kubernetes.io recommended labels on every object."""

from __future__ import annotations

PART_OF = "celery-platform"
MANAGED_BY = "pulumi"


def standard_labels(name: str, instance: str, component: str) -> dict[str, str]:
    """Return the recommended ``app.kubernetes.io/*`` labels for one object.

    ``name`` is what runs (``celery-worker``, ``redis``), ``instance`` tells this deployment of it
    apart (the component's resource name), ``component`` is its role (``broker``, ``worker``).
    """
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def selector_labels(name: str, instance: str) -> dict[str, str]:
    """Return the immutable subset used in selectors (never the version or component)."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": instance}
