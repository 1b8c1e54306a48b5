"""Kubernetes resource quantities, parsed by the kubernetes client so that we agree with the API server."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from celery_platform.k8s_quantity import parse_quantity


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity of the kind asked for."""


def _parse(value: object) -> Decimal:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a string")
    try:
        return Decimal(parse_quantity(value))
    except (ValueError, InvalidOperation, TypeError) as err:
        raise QuantityError(f"{value!r} is not a Kubernetes quantity") from err


def parse_cpu(value: object) -> Decimal:
    """Return cores as a Decimal: ``'400m'`` gives ``0.4``."""
    amount = _parse(value)
    try:
        exact = amount == amount.quantize(Decimal("0.001"))
    except InvalidOperation as err:  # more digits than Decimal's context holds
        raise QuantityError(f"{value!r} is too large a quantity") from err
    if not exact:
        raise QuantityError(f"{value!r} is finer than 1m, the smallest CPU unit")
    return amount


def parse_memory(value: object) -> Decimal:
    """Return bytes as a Decimal: ``'1Gi'`` gives ``1073741824``.

    A fractional byte count is refused: ``512m`` is 0.512 bytes, almost always a typo for ``512Mi``.
    """
    amount = _parse(value)
    try:
        amount.quantize(Decimal(1))
    except InvalidOperation as err:  # more digits than Decimal's context holds
        raise QuantityError(f"{value!r} is too large a quantity") from err
    if amount != amount.to_integral_value():
        raise QuantityError(f"{value!r} is a fraction of a byte (did you mean Mi?)")
    return amount


def format_cpu(cores: Decimal) -> str:
    """Format cores as millicores, the unit the API server prints back: ``0.4`` gives ``'400m'``."""
    return f"{int(cores * 1000)}m"


def format_memory(amount: Decimal) -> str:
    """Format bytes in the largest binary unit that divides them exactly."""
    value = int(amount)
    for suffix, size in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if value and value % size == 0:
            return f"{value // size}{suffix}"
    return str(value)
