"""Our copy of the kubernetes client's quantity parser agrees with the client on every input."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes.utils.quantity import parse_quantity as client_parse_quantity  # type: ignore[import-untyped]

from celery_platform.k8s_quantity import parse_quantity

SUFFIXES = ["", "n", "u", "m", "k", "K", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "ki", "x", "i"]
NUMBERS = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**12).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
    st.sampled_from(["", ".5", "1.", "1e3", "NaN", "+1", " 1", "0x10", "1_000"]),
)


def _outcome(parse: Callable[[object], Decimal], value: object) -> str:
    """The parsed value as text (so that NaN equals NaN), or the error's message."""
    try:
        return f"value {parse(value)}"
    except ValueError as err:
        return f"error {err}"


# A property of the output, not of its speed: no deadline, since the tiers run side by side.
@settings(deadline=None)
@given(NUMBERS, st.sampled_from(SUFFIXES))
def test_parses_every_quantity_string_as_the_kubernetes_client_does(number: str, suffix: str) -> None:
    text = number + suffix
    assert _outcome(parse_quantity, text) == _outcome(client_parse_quantity, text)


# A property of the output, not of its speed: no deadline, since the tiers run side by side.
@settings(deadline=None)
@given(st.text(max_size=8))
def test_parses_arbitrary_text_as_the_kubernetes_client_does(text: str) -> None:
    assert _outcome(parse_quantity, text) == _outcome(client_parse_quantity, text)


@pytest.mark.parametrize(("text", "expected"), [("400m", Decimal("0.4")), ("1Gi", Decimal(1 << 30)), ("2k", 2000)])
def test_reads_the_usual_cpu_and_memory_quantities(text: str, expected: Decimal) -> None:
    assert parse_quantity(text) == expected


def test_fails_when_the_suffix_is_lowercase_binary_kilo() -> None:
    with pytest.raises(ValueError, match="unknown suffix"):
        parse_quantity("1ki")
