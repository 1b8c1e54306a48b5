"""The rule of every duration rendered for Prometheus: ``for:``, range selectors and scrape intervals.

Prometheus reads each with ``model.ParseDuration`` (github.com/prometheus/common v0.72.1, the version
promtool and the Prometheus Operator's Prometheus link): a value times its unit must stay within int64
nanoseconds (about 292 years), or the rule group or scrape config does not load. The check is Go's:
``v > 1<<63 / unit`` is out of range, and so is a product above ``1<<63 - 1``.
"""

from __future__ import annotations

from celery_platform.config.problems import Problem, shown

# Nanoseconds per unit, as model.ParseDuration's unitMap has them.
UNIT_NANOSECONDS = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9}
UNIT_NAMES = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
INT64_MAX = 2**63 - 1


def prometheus_max(unit: str) -> int:
    """The largest whole number of ``unit`` that ``model.ParseDuration`` accepts (``153722867`` minutes)."""
    mult = UNIT_NANOSECONDS[unit]
    v = 2**63 // mult
    return v if v * mult <= INT64_MAX else v - 1


def check_prometheus_duration(field: str, value: object, unit: str, minimum: int = 1) -> list[Problem]:
    """Check a whole number of ``unit`` that is rendered as ``<value><unit>`` for Prometheus."""
    maximum = prometheus_max(unit)
    name = UNIT_NAMES[unit]
    if isinstance(value, bool) or not isinstance(value, int):
        return [Problem(field, f"not a whole number of {name}", shown(value), f"{minimum} to {maximum}")]
    if value < minimum:
        return [Problem(field, "too small", shown(value), f"a whole number of {name} >= {minimum}")]
    if value > maximum:
        return [
            Problem(
                field,
                "beyond Prometheus' duration limit (int64 nanoseconds, about 292 years)",
                shown(value),
                f"at most {maximum} {name}",
            )
        ]
    return []
