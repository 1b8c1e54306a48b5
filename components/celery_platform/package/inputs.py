"""The component package's inputs, as the engine hands them to Construct, read into CeleryPlatformArgs.

They go through the stack config's own parser (``read_stack_config``), so a consumer in any language
meets the types, the defaults and the messages of the stack file. Two things differ from config:

- numbers arrive as floats (``2.0``), which the parser already takes for whole numbers;
- a secret field may be an Output (``config.requireSecret(...)``, another resource's password). It is
  handed to CeleryPlatform as it is, which keeps it secret and checks it when it resolves. Any other
  field must be a plain value: the whole platform is checked before anything is created.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.output import Unknown

from celery_platform.config.keys import KEYS
from celery_platform.config.platform import CeleryPlatformArgs, field_problems
from celery_platform.config.problems import Problem, ValidationError, mask_secrets
from celery_platform.config.stack import read_stack_config
from celery_platform.resources.platform import secret_texts

KNOWN = frozenset(k.name for k in KEYS)
SECRET_KEYS = {k.name: k for k in KEYS if k.secret}
# Stands in for a secret Output while the plain fields are parsed: the parser reads text, and a secret
# is checked by CeleryPlatform when it resolves. Problems about a stand-in are never reported.
STAND_IN = "an Output, read when it resolves"


def is_eventual(value: Any) -> bool:
    """Whether a value is, or holds, an Output or an unknown (a value known only during the deployment)."""
    if isinstance(value, pulumi.Output | Unknown):
        return True
    if isinstance(value, Mapping):
        return any(is_eventual(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(is_eventual(item) for item in value)
    return False


def _refusal(name: str) -> Problem:
    return Problem(
        name,
        "is an Output (a secret, or a value known only after another resource is created)",
        "an Output",
        "a plain value: every field but the secret ones is checked before anything is created",
    )


def _about(problem: Problem, names: set[str]) -> bool:
    """Whether a problem is about one of ``names`` (the field itself, or a part of it)."""
    return any(problem.field == n or problem.field.startswith((f"{n}.", f"{n}[")) for n in names)


def platform_args(name: str, inputs: Mapping[str, Any]) -> CeleryPlatformArgs:
    """Read Construct's inputs (camelCase) into CeleryPlatformArgs, or raise one ValidationError.

    Types are checked here, as for the stack config; CeleryPlatform checks the rules once, with every
    problem in one message under the same subject.
    """
    subject = f"CeleryPlatform {name!r}"
    outputs = {k: v for k, v in inputs.items() if k in SECRET_KEYS and isinstance(v, pulumi.Output)}
    refused = sorted(k for k, v in inputs.items() if k in KNOWN and k not in outputs and is_eventual(v))
    # An unknown input is refused by the parser, whatever its value, which it never shows.
    raw = {k: STAND_IN if k in outputs or is_eventual(v) else v for k, v in inputs.items() if k not in refused}
    problems = [_refusal(k) for k in refused]
    try:
        args = read_stack_config(raw, subject)
    except ValidationError as err:
        # A refused field is absent from what was parsed ("is required"); a stand-in is no one's value.
        problems += [p for p in err.problems if not _about(p, {*refused, *outputs})]
        raise ValidationError(subject, problems) from None
    if problems:
        # As the stack config does when a key cannot be parsed: the rules of the keys that could be, too.
        given = frozenset(raw) - frozenset(outputs)
        raise ValidationError(subject, [*problems, *mask_secrets(field_problems(args, given), secret_texts(args))])
    secrets: dict[str, Any] = {SECRET_KEYS[k].attribute: v for k, v in outputs.items()}
    return dataclasses.replace(args, **secrets)
