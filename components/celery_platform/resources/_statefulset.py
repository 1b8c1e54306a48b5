"""A StatefulSet of exactly one pod with its headless governing Service, for Redis and beat."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from celery_platform.config.problems import untyped


def pod_metadata(
    labels: Mapping[str, str], extra_labels: Mapping[str, str] | None, annotations: Mapping[str, str] | None
) -> dict[str, Any]:
    """Return a pod template's metadata: extra labels first, ours last so that they always win."""
    meta: dict[str, Any] = {"labels": {**(extra_labels or {}), **labels}}
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def stateful_set_of_one(
    resource_name: str,
    *,
    namespace: pulumi.Input[str],
    labels: Mapping[str, str],
    selector: Mapping[str, str],
    pod_spec: Mapping[str, Any],
    opts: pulumi.ResourceOptions,
    ports: Sequence[Mapping[str, Any]] = (),
    claim_templates: Sequence[Mapping[str, Any]] = (),
    pod_labels: Mapping[str, str] | None = None,
    pod_annotations: Mapping[str, str] | None = None,
    object_name: str | None = None,
) -> k8s.apps.v1.StatefulSet:
    """Create ``<name>-headless`` and a StatefulSet ``<name>`` of one pod.

    A StatefulSet never runs two pods of one identity: it replaces a pod only once the old one is
    known to be gone, even on an unreachable node. That is what a broker with one data volume and a
    beat that must not send every periodic task twice both need. ``object_name`` names the Kubernetes
    objects when it differs from the Pulumi name.
    """
    object_name = object_name or resource_name
    service_spec: dict[str, Any] = {"clusterIP": "None", "selector": dict(selector)}
    if ports:
        service_spec["ports"] = [dict(p) for p in ports]
    headless = k8s.core.v1.Service(
        f"{resource_name}-headless",
        metadata={"name": f"{object_name}-headless", "namespace": namespace, "labels": dict(labels)},
        spec=untyped(service_spec),
        opts=opts,
    )
    spec: dict[str, Any] = {
        "replicas": 1,
        "serviceName": headless.metadata.name,
        "selector": {"matchLabels": dict(selector)},
        "podManagementPolicy": "OrderedReady",
        "updateStrategy": {"type": "RollingUpdate"},
        "template": {"metadata": pod_metadata(labels, pod_labels, pod_annotations), "spec": dict(pod_spec)},
    }
    if claim_templates:
        spec["volumeClaimTemplates"] = [dict(c) for c in claim_templates]
    return k8s.apps.v1.StatefulSet(
        resource_name,
        metadata={"name": object_name, "namespace": namespace, "labels": dict(labels)},
        spec=untyped(spec),
        opts=opts,
    )


def rollout_options(opts: pulumi.ResourceOptions, timeout_seconds: int) -> pulumi.ResourceOptions:
    """``opts`` with the provider's await bounded: create and update fail after ``timeout_seconds``."""
    bound = f"{timeout_seconds}s"
    return pulumi.ResourceOptions.merge(
        opts, pulumi.ResourceOptions(custom_timeouts=pulumi.CustomTimeouts(create=bound, update=bound))
    )
