"""The celery-platform-guardrails policy pack: thin adapters around celery_guardrails and autoscaler_guardrails.

This file only wires the pure validate functions into pulumi_policy. Constructing the PolicyPack
starts the analyzer's gRPC server and blocks, so tests import those modules, never this file.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import autoscaler_guardrails as autoscalers
import celery_guardrails as guardrails
from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

Validate = Callable[[str, Mapping[str, Any]], Sequence[str]]


def _report_all(messages: Sequence[str], report_violation: ReportViolation) -> None:
    for message in messages:
        report_violation(message, None)


def _adapter(validate: Validate) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def run(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        _report_all(validate(args.resource_type, args.props), report_violation)

    return run


# Namespace -> (cpu, memory) maxLimitRequestRatio of the LimitRanges this stack registers. The engine
# analyzes resources in registration order in this one process, and a namespace's LimitRange is
# registered before the workloads that run in it (its component comes first).
_NAMESPACE_RATIOS: dict[str, tuple[Any, Any]] = {}


def _resources(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    seen = guardrails.limit_range_ratios(args.resource_type, args.props)
    if seen is not None:
        _NAMESPACE_RATIOS[seen[0]] = (seen[1], seen[2])
    # A ratio set in the pack's config wins; else the namespace's own LimitRange; else 2.
    config = args.get_config()
    namespace = guardrails.namespace_of(args.props)
    default = _NAMESPACE_RATIOS.get(namespace or "", (guardrails.DEFAULT_MAX_LIMIT_REQUEST_RATIO,) * 2)
    messages = guardrails.validate_resources(
        args.resource_type,
        args.props,
        max_cpu_ratio=config.get("maxCpuLimitRequestRatio") or default[0],
        max_memory_ratio=config.get("maxMemoryLimitRequestRatio") or default[1],
    )
    _report_all(messages, report_violation)


def _secret_env(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    allowed = args.get_config().get("allowedLiteralEnvNames", [])
    _report_all(guardrails.validate_secret_env(args.resource_type, args.props, allowed), report_violation)


def _beat_not_autoscaled(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    resources = [(resource.resource_type, resource.props) for resource in args.resources]
    for index, message in autoscalers.autoscaled_beat_violations(resources):
        report_violation(message, args.resources[index].urn)


# Workloads and autoscalers seen so far, in registration order (see ReplicasOwnership): a stack
# policy cannot do this, because it sees outputs, where the API server has defaulted spec.replicas.
_REPLICAS = autoscalers.ReplicasOwnership()


def _autoscaled_replicas(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    _report_all(_REPLICAS.see(args.resource_type, args.props), report_violation)


# No default: unset means "the namespace's own LimitRange ratio", which the policy reads from the stack.
_RATIO = {"type": "number", "minimum": 1}

PolicyPack(
    name="celery-platform-guardrails",
    enforcement_level=EnforcementLevel.MANDATORY,
    description="Makes the failures of the hand-written Celery deployment impossible before `pulumi up`.",
    policies=[
        ResourceValidationPolicy(
            name="containers-have-bounded-resources",
            description="Every container and init container sets cpu and memory requests and limits, "
            "with limit/request at most the configured ratio, else its namespace's LimitRange ratio, else 2.",
            validate=_resources,
            config_schema=PolicyConfigSchema(
                properties={"maxCpuLimitRequestRatio": _RATIO, "maxMemoryLimitRequestRatio": _RATIO}
            ),
        ),
        ResourceValidationPolicy(
            name="images-are-pinned",
            description="No :latest or untagged images; use a version tag or an @sha256 digest.",
            validate=_adapter(guardrails.validate_image_tags),
        ),
        ResourceValidationPolicy(
            name="probes-check-health",
            description="No exec probe that only inspects /proc or the process list, and no "
            "`celery inspect ping` probe.",
            validate=_adapter(guardrails.validate_probes),
        ),
        ResourceValidationPolicy(
            name="celery-beat-runs-at-most-once",
            description="A workload running celery beat has at most one replica and, as a Deployment, "
            "the Recreate strategy.",
            validate=_adapter(guardrails.validate_beat_singleton),
        ),
        StackValidationPolicy(
            name="celery-beat-is-not-autoscaled",
            description="No HorizontalPodAutoscaler or KEDA ScaledObject targets a celery beat workload.",
            validate=_beat_not_autoscaled,
        ),
        ResourceValidationPolicy(
            name="autoscaled-workloads-leave-replicas-to-the-autoscaler",
            description="A workload that an HPA or KEDA ScaledObject scales does not set spec.replicas "
            "(reported on whichever of the two is registered second).",
            validate=_autoscaled_replicas,
        ),
        ResourceValidationPolicy(
            name="autoscaler-credentials-come-from-secrets",
            description="KEDA triggers hold no password, key or credentialed URL as a literal: a "
            "TriggerAuthentication reads them from Secrets.",
            validate=_adapter(autoscalers.validate_scaler_credentials),
        ),
        ResourceValidationPolicy(
            name="secrets-come-from-secret-refs",
            description="Env vars with secret-looking names use valueFrom.secretKeyRef, never a literal value.",
            validate=_secret_env,
            config_schema=PolicyConfigSchema(
                properties={"allowedLiteralEnvNames": {"type": "array", "items": {"type": "string"}, "default": []}}
            ),
        ),
        ResourceValidationPolicy(
            name="pods-are-restricted",
            description="Pod Security Standards restricted: runAsNonRoot, no privilege escalation, "
            "capabilities drop ALL, seccomp RuntimeDefault, not privileged, no host namespaces, and no API token "
            "of the namespace's default ServiceAccount.",
            validate=[
                _adapter(guardrails.validate_security_context),
                _adapter(guardrails.validate_service_account_token),
            ],
        ),
    ],
)
