"""Preflight: look the platform's needs up in the target cluster while the program runs, before anything is applied.

A missing CRD (KEDA's for autoscaling, the Prometheus Operator's for monitoring) is a refusal: the
engine would otherwise create the Deployments' new specs first and fail on the custom resources
later, leaving the stack half-applied. A missing Secret or ConfigMap is a warning: it may be created
by another team or pipeline between preview and the pods' start.

The lookup reads the cluster the stack's default kubernetes provider deploys to: ``kubernetes:kubeconfig``
(a path or the file's content) and ``kubernetes:context`` from the stack config, else ``$KUBECONFIG`` or
``~/.kube/config``, else the in-cluster account; it runs during preview and up alike. It reads only
API discovery (``/apis/<group>/<version>``, readable by every authenticated user) and the named
Secrets and ConfigMaps. Without a cluster (the offline render, Pulumi mocks, no kubeconfig, an
unreachable server), with an explicit provider (whose cluster the program cannot read), or when a read
is forbidden, the checks are skipped and the program says so once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pulumi
import yaml  # type: ignore[import-untyped, unused-ignore]  # a consumer may lack types-PyYAML

from celery_platform.config.preflight import NeededCrd, Reference, needed_crds, references

if TYPE_CHECKING:
    from kubernetes.client import ApiClient  # type: ignore[import-untyped, unused-ignore]

    from celery_platform.config.platform import CeleryPlatformArgs

__all__ = ["OFFLINE", "PreflightError", "cluster_client", "missing_crds", "missing_references", "preflight"]

# Seconds to connect and to read: a cluster that does not answer in this is "unreachable", not waited for.
TIMEOUT = (5, 10)
_said: set[str] = set()
SKIPPED = "preflight: the CRDs and the Secrets and ConfigMaps that the stack names were not looked up"
OFFLINE = f"{SKIPPED}: no cluster here (the offline render, or Pulumi mocks)"


class PreflightError(pulumi.RunError):
    """The cluster lacks CRDs that the platform needs; raised before anything is registered."""


def _say_once(message: str, *, warn: bool = False) -> None:
    if message in _said:
        return
    _said.add(message)
    (pulumi.log.warn if warn else pulumi.log.info)(message)


def _under_mocks() -> bool:
    from pulumi.runtime.mocks import MockMonitor

    return isinstance(pulumi.runtime.settings.get_monitor(), MockMonitor)


def cluster_client() -> tuple[ApiClient | None, str]:
    """Return a client for the stack's kubernetes provider's cluster and its description, or None and why not."""
    from kubernetes import client, config  # type: ignore[import-untyped, unused-ignore]
    from kubernetes.config.config_exception import ConfigException  # type: ignore[import-untyped, unused-ignore]

    kubeconfig = pulumi.runtime.get_config("kubernetes:kubeconfig")
    context = pulumi.runtime.get_config("kubernetes:context") or None
    cfg = client.Configuration()
    try:
        if kubeconfig:
            path = Path(str(kubeconfig)).expanduser()
            if "\n" not in str(kubeconfig) and path.is_file():
                config.load_kube_config(config_file=str(path), context=context, client_configuration=cfg)
            else:
                loaded = yaml.safe_load(str(kubeconfig))
                config.load_kube_config_from_dict(loaded, context=context, client_configuration=cfg)
            where = f"kubernetes:kubeconfig, context {context or '(current)'}"
        elif os.environ.get("KUBECONFIG") or Path("~/.kube/config").expanduser().is_file():
            config.load_kube_config(context=context, client_configuration=cfg)
            where = f"{os.environ.get('KUBECONFIG') or '~/.kube/config'}, context {context or '(current)'}"
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=cfg)
            where = "the in-cluster service account"
        else:
            return None, "no kubeconfig (kubernetes:kubeconfig, $KUBECONFIG, ~/.kube/config) and not in a cluster"
    except (ConfigException, OSError, yaml.YAMLError, TypeError, KeyError, ValueError) as err:
        return None, f"cannot read the kubeconfig ({type(err).__name__}: {err})"
    cfg.retries = 0  # urllib3 retries: an unreachable cluster is said at once
    return client.ApiClient(cfg), where


def missing_crds(api: ApiClient, crds: list[NeededCrd]) -> list[NeededCrd]:
    """Return the kinds of ``crds`` that the cluster does not serve, by API discovery."""
    from kubernetes import client  # type: ignore[import-untyped, unused-ignore]
    from kubernetes.client.exceptions import ApiException  # type: ignore[import-untyped, unused-ignore]

    served: dict[str, set[str]] = {}
    for api_version in dict.fromkeys(c.api_version for c in crds):
        group, version = api_version.split("/")
        try:
            listing = client.CustomObjectsApi(api).get_api_resources(group, version, _request_timeout=TIMEOUT)
            served[api_version] = {r.name for r in listing.resources or []}
        except ApiException as err:
            if err.status != 404:
                raise
            served[api_version] = set()
    return [c for c in crds if c.plural not in served[c.api_version]]


def missing_references(api: ApiClient, namespace: str, refs: list[Reference]) -> list[Reference]:
    """Return the references whose Secret or ConfigMap does not exist in ``namespace``."""
    from kubernetes import client  # type: ignore[import-untyped, unused-ignore]
    from kubernetes.client.exceptions import ApiException  # type: ignore[import-untyped, unused-ignore]

    core = client.CoreV1Api(api)
    read = {"Secret": core.read_namespaced_secret, "ConfigMap": core.read_namespaced_config_map}
    exists: dict[tuple[str, str], bool] = {}
    for ref in refs:
        key = (ref.kind, ref.name)
        if key not in exists:
            try:
                read[ref.kind](ref.name, namespace, _request_timeout=TIMEOUT)
                exists[key] = True
            except ApiException as err:
                if err.status != 404:
                    raise
                exists[key] = False
    return [r for r in refs if not exists[(r.kind, r.name)]]


def crd_refusal(subject: str, missing: list[NeededCrd], where: str) -> str:
    """The one message of a refusal: each missing CRD, what needs it, and how to install it."""
    lines = []
    for install in dict.fromkeys(c.install for c in missing):
        group = [c for c in missing if c.install == install]
        names = ", ".join(c.name for c in group)
        lines.append(f"  - {names} ({group[0].api_version}), needed by {group[0].needed_by}: {install}")
    return (
        f"{subject}: the cluster ({where}) has no CustomResourceDefinition for {len(missing)} kind(s) this stack "
        "creates; nothing was applied:\n" + "\n".join(lines) + "\n(preflight: false in the platform's args or "
        "the stack config turns this check off)"
    )


def missing_warning(namespace: str, missing: list[Reference]) -> str:
    """The one warning naming every missing Secret and ConfigMap, and the setting that names it."""
    named = "; ".join(f"{r.kind} {r.name!r} ({r.field})" for r in missing)
    return (
        f"preflight: namespace {namespace!r} has no {named}: the pods that use them will not start until they exist "
        "(create them before `up`, or mark the reference optional)"
    )


def preflight(subject: str, args: CeleryPlatformArgs, opts: pulumi.ResourceOptions | None) -> list[str]:
    """Look the platform's CRDs and references up; raise :class:`PreflightError` on a missing CRD.

    Return the warnings to log (each on the component, once it is registered).
    """
    crds, refs = needed_crds(args), references(args)
    if not crds and not refs:
        return []
    skipped = SKIPPED
    if _under_mocks():
        _say_once(OFFLINE)
        return []
    if opts is not None and (opts.provider is not None or opts.providers):
        _say_once(f"{skipped}: an explicit provider is given, whose cluster the program cannot read", warn=True)
        return []
    api, where = cluster_client()
    if api is None:
        _say_once(f"{skipped}: {where}", warn=True)
        return []
    from kubernetes.client.exceptions import ApiException  # type: ignore[import-untyped, unused-ignore]
    from urllib3.exceptions import HTTPError

    warnings: list[str] = []
    with api:
        try:
            absent = missing_crds(api, crds) if crds else []
        except ApiException as err:
            _say_once(f"{skipped}: the cluster ({where}) answered {err.status} {err.reason}", warn=True)
            return []
        except (HTTPError, OSError) as err:
            _say_once(f"{skipped}: cannot reach the cluster ({where}): {type(err).__name__}", warn=True)
            return []
        if absent:
            raise PreflightError(crd_refusal(subject, absent, where))
        if refs and isinstance(args.namespace, str):
            try:
                gone = missing_references(api, args.namespace, refs)
            except (ApiException, HTTPError, OSError) as err:
                reason = f"{err.status} {err.reason}" if isinstance(err, ApiException) else type(err).__name__
                _say_once(f"preflight: the Secrets and ConfigMaps that the stack names were not looked up: {reason}")
                return []
            if gone:
                warnings.append(missing_warning(args.namespace, gone))
    return warnings
