"""PlatformNamespace: the namespace and the guardrails every pod in it must pass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from celery_platform.builders.labels import standard_labels
from celery_platform.config.addresses import check_cidr
from celery_platform.config.egress import POD_SECURITY_LEVELS, EgressRule
from celery_platform.config.guardrails import LimitRangeSpec, QuotaSpec
from celery_platform.config.problems import Problem, raise_if_any, shown, untyped, validated_by_parent
from celery_platform.config.validation import check_dns_label, check_string_tuple


@dataclass(frozen=True, kw_only=True)
class NamespaceArgs:
    """Arguments of PlatformNamespace."""

    name: str
    """The namespace's name (an RFC 1123 label). Required: it is a contract with everything in it."""
    limit_range: LimitRangeSpec = field(default_factory=LimitRangeSpec)
    """Container defaults, bounds and limit/request ratios. Default: ``LimitRangeSpec()``."""
    quota: QuotaSpec = field(default_factory=QuotaSpec)
    """The namespace's ResourceQuota. Default: ``QuotaSpec()``."""
    pod_security_level: str = "restricted"
    """Pod Security Admission level, enforced, audited and warned. Default: ``"restricted"``."""
    egress_cidrs: tuple[str, ...] = ()
    """Where pods may connect outside the namespace on any port, besides DNS; ``0.0.0.0/0`` only when
    asked for. Default: none (an external broker adds its own egress)."""
    egress_rules: tuple[EgressRule, ...] = ()
    """Where pods may connect outside the namespace, on given ports (the database). Default: none."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Extra labels for the Namespace object. Default: none."""

    def validate(self) -> list[Problem]:
        """Return every problem with these arguments."""
        problems = check_dns_label("name", self.name)
        problems += check_string_tuple("egressCidrs", self.egress_cidrs)
        if not problems:
            for i, cidr in enumerate(self.egress_cidrs):
                problems += check_cidr(f"egressCidrs[{i}]", cidr)
        for i, rule in enumerate(self.egress_rules):
            problems += rule.validate(f"egressRules[{i}]")
        problems += self.limit_range.validate("limitRange")
        problems += self.quota.validate("quota")
        if self.pod_security_level not in POD_SECURITY_LEVELS:
            problems.append(
                Problem(
                    "podSecurityLevel",
                    "unknown level",
                    shown(self.pod_security_level),
                    " or ".join(POD_SECURITY_LEVELS),
                )
            )
        return problems


class PlatformNamespace(pulumi.ComponentResource):
    """A Namespace with Pod Security labels, a LimitRange, a ResourceQuota and default-deny networking.

    ``limit_range`` and ``quota`` stay available as plain data, so that the workloads can be checked
    against them before ``pulumi up`` (see ``celery_platform.builders.admission``).
    """

    name: pulumi.Output[str]
    limit_range: LimitRangeSpec
    quota: QuotaSpec

    def __init__(self, resource_name: str, args: NamespaceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        # Validate before registering anything, the component included: nothing half applied.
        if not validated_by_parent(opts):
            raise_if_any(f"PlatformNamespace {resource_name!r}", args.validate())
        super().__init__("celery-platform:index:PlatformNamespace", resource_name, None, opts)
        self.limit_range = args.limit_range
        self.quota = args.quota
        child = pulumi.ResourceOptions(parent=self)
        labels = standard_labels("celery-platform", resource_name, "namespace")
        level = args.pod_security_level

        self.namespace = k8s.core.v1.Namespace(
            resource_name,
            metadata={
                "name": args.name,
                "labels": {
                    **labels,
                    **args.labels,
                    "pod-security.kubernetes.io/enforce": level,
                    "pod-security.kubernetes.io/enforce-version": "latest",
                    "pod-security.kubernetes.io/audit": level,
                    "pod-security.kubernetes.io/warn": level,
                },
            },
            opts=child,
        )
        self.name = self.namespace.metadata.name
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])

        def meta(suffix: str) -> Any:
            return {"name": f"{resource_name}-{suffix}", "namespace": self.name, "labels": labels}

        self.limit_range_object = k8s.core.v1.LimitRange(
            f"{resource_name}-limits",
            metadata=meta("limits"),
            spec=untyped({"limits": args.limit_range.to_k8s_limits()}),
            opts=in_ns,
        )
        self.quota_object = k8s.core.v1.ResourceQuota(
            f"{resource_name}-quota",
            metadata=meta("quota"),
            spec=untyped({"hard": args.quota.hard()}),
            opts=in_ns,
        )
        # Nothing may talk to or from a pod unless a policy says so; components add their own allows.
        self.default_deny = k8s.networking.v1.NetworkPolicy(
            f"{resource_name}-default-deny",
            metadata=meta("default-deny"),
            spec=untyped({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
            opts=in_ns,
        )
        dns_ports = [{"protocol": proto, "port": 53} for proto in ("UDP", "TCP")]
        self.allow_egress = k8s.networking.v1.NetworkPolicy(
            f"{resource_name}-allow-egress",
            metadata=meta("allow-egress"),
            spec=untyped(
                {
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [
                        {"to": [{"podSelector": {}}]},
                        {"to": [{"namespaceSelector": {}}], "ports": dns_ports},
                        *(
                            [{"to": [{"ipBlock": {"cidr": cidr}} for cidr in args.egress_cidrs]}]
                            if args.egress_cidrs
                            else []
                        ),
                        *(rule.to_k8s() for rule in args.egress_rules),
                    ],
                }
            ),
            opts=in_ns,
        )
        self.register_outputs({"name": self.name})
