"""A refusal's parts: each problem names the field, the value (never a secret) and what is allowed."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pulumi

SHOWN_MAX = 80


@dataclass(frozen=True)
class Problem:
    """One invalid field: where it is, what is wrong, what was given and what is allowed."""

    field: str
    problem: str
    got: str
    expected: str

    def __str__(self) -> str:
        parts = (self.field, self.problem, self.got, self.expected)
        field, problem, got, expected = (escaped(part) for part in parts)
        return f"{field}: {problem} (got {got}, expected {expected})"


def escaped(text: str) -> str:
    """``text`` with every unprintable character as its escape: a key may hold a line break or a control.

    A user's map key ends up in a field path; ``\x1e`` or ``\u2028`` in it would otherwise split
    one problem over two lines of the message, or move the terminal's cursor.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


class ValidationError(pulumi.RunError):
    """Every problem found in one set of inputs, raised once, before anything is registered.

    It subclasses ``pulumi.RunError`` so that the Pulumi CLI prints the sentence, not a traceback.
    """

    def __init__(self, subject: str, problems: Iterable[Problem]) -> None:
        self.subject = subject
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{subject} is invalid ({len(self.problems)} problem(s)):\n{lines}")


def untyped(value: Any) -> Any:
    """Hand a plain Kubernetes mapping to the typed SDK, whose TypedDicts cannot describe built dicts."""
    return value


def validated_by_parent(opts: pulumi.ResourceOptions | None) -> bool:
    """Whether a component's parent validated it with the whole platform (a CeleryPlatform), so it need not again."""
    return bool(getattr(getattr(opts, "parent", None), "validates_children", False))


def raise_if_any(subject: str, problems: list[Problem]) -> None:
    """Raise one ValidationError listing every problem, or return when there are none."""
    if problems:
        raise ValidationError(subject, problems)


def shown(value: object) -> str:
    """Render a non-secret value for an error message, cut short so that no value floods a terminal."""
    text = str(value) if isinstance(value, Decimal) else repr(value)
    if len(text) > SHOWN_MAX:
        return f"{text[:SHOWN_MAX]}... ({len(text)} characters)"
    return text


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, or ``""``: a typo gets its fix."""
    choices = list(choices)
    by_lower = {c.lower(): c for c in choices}
    match = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return f"; did you mean {by_lower[match[0]]!r}?" if match else ""


def redacted(value: str) -> str:
    """Show the shape of a secret value: URL punctuation kept, every other run of characters masked.

    Error messages must name the value without printing a secret: ``https://abc@x.io/1`` becomes
    ``'*://*@*.*/*'``, enough to see that a scheme or an ``@`` is missing.
    """
    shape = re.sub(r"[^:/@.?#]+", "*", value)
    if len(shape) > SHOWN_MAX:
        shape = shape[:SHOWN_MAX] + "..."
    return "secret shaped " + repr(shape)


def mask_secrets(problems: Iterable[Problem], secrets: Iterable[str]) -> list[Problem]:
    """Replace every occurrence of a secret value in every part of every problem by ``***``.

    The checks show the values they refuse; when a key holds a secret, no part of its value may reach
    a message, wherever a check happened to copy it (a field path, an expected value, a quota share).
    """
    needles = sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True)
    if not needles:
        return list(problems)
    pattern = re.compile("|".join(re.escape(n) for n in needles))

    def clean(text: str) -> str:
        return pattern.sub("***", text)

    return [Problem(clean(p.field), clean(p.problem), clean(p.got), clean(p.expected)) for p in problems]
