"""Kubernetes resource quantities: the API server's grammar first, then the kubernetes client's parser.

``parse_quantity`` (Decimal-based) accepts spellings that the API server refuses: Unicode digits,
``_`` separators, a ``K`` suffix, an exponent with a suffix, surrounding whitespace. So every value
is first matched, in full, against the grammar that ``k8s.io/apimachinery/pkg/api/resource`` documents::

    <quantity>        ::= <signedNumber><suffix>
    <signedNumber>    ::= <number> | +<number> | -<number>
    <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
    <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
    <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
    <decimalSI>       ::= m | "" | k | M | G | T | P | E
    <decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber>

The exponent is an integer in the API server's parser, and the digits are ASCII.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import sys
from collections.abc import Callable
from decimal import Context, Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import Any


def _client_parse_quantity() -> Callable[[str], Any]:
    """Return the kubernetes client's ``kubernetes.utils.quantity.parse_quantity``, without ``import kubernetes``.

    The package's ``__init__`` imports its whole REST client, about 870 modules: 0.3 s at every start
    (1.5 s where no bytecode is written) and 22 MB of bytecode in the venv, for one function that
    imports only ``decimal``. So the client's own module file is loaded by itself, from where pip put it.
    """
    imported = sys.modules.get("kubernetes.utils.quantity")
    if imported is not None:
        return imported.parse_quantity  # type: ignore[no-any-return]
    package = importlib.util.find_spec("kubernetes")  # finds the package; imports nothing
    if package is None or not package.submodule_search_locations:
        raise ImportError("the kubernetes client is not installed: pip install kubernetes")
    path = Path(next(iter(package.submodule_search_locations)), "utils", "quantity.py")
    spec = importlib.util.spec_from_file_location("celery_platform._kubernetes_quantity", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the kubernetes client's quantity parser from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parse_quantity  # type: ignore[no-any-return]


parse_quantity = _client_parse_quantity()

QUANTITY = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[KMGTPE]i|[mkMGTPE]|[eE][+-]?[0-9]{1,3})?")
# Pulumi carries numbers as doubles and Kubernetes counts in int64 milli-units: nothing we render may be
# larger. 2**53 bytes is 8 PiB and 2**53 millicores 9 billion cores, far beyond any namespace.
MAX_AMOUNT = Decimal(2**53)
SUFFIXES = {
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
    "m": Decimal("0.001"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity of the kind asked for."""


def _parse(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise QuantityError(f"{value!r} is not a string")
    return _parse_text(str(value))


# A stack repeats a handful of quantities, and the admission arithmetic parses each one again for every
# pod it checks: about 100 parses per pool, of the same few strings. Decimals are immutable, the parse
# depends on the text alone, and a failed parse raises (lru_cache keeps no exceptions).
@functools.lru_cache(maxsize=1024)
def _parse_text(text: str) -> Decimal:
    if len(text) > 64 or not QUANTITY.fullmatch(text):
        raise QuantityError(f"{text!r} is not in the Kubernetes quantity grammar")
    try:
        # A fixed context, not a copy of the caller's: the answer depends on the text alone.
        with localcontext(Context(prec=80)):
            amount = Decimal(parse_quantity(text))
    except (ValueError, InvalidOperation, TypeError, ArithmeticError) as err:
        raise QuantityError(f"{text!r} is not a Kubernetes quantity") from err
    if abs(amount) > MAX_AMOUNT:
        raise QuantityError(f"{text!r} is too large (at most 2**53 units)")
    return amount


def parse_cpu(value: object) -> Decimal:
    """Return cores as a Decimal: ``'400m'`` gives ``0.4``."""
    amount = _parse(value)
    if amount != amount.quantize(Decimal("0.001")):
        raise QuantityError(f"{value!r} is finer than 1m, the smallest CPU unit")
    return amount


def parse_memory(value: object) -> Decimal:
    """Return bytes as a Decimal: ``'1Gi'`` gives ``1073741824``.

    A fractional byte count is refused: ``512m`` is 0.512 bytes, almost always a typo for ``512Mi``.
    """
    amount = _parse(value)
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


def suffix_of(quantity: str) -> str:
    """Return the unit suffix a quantity was written with (``"Gi"`` for ``"4Gi"``, ``""`` for ``"2"``)."""
    match = re.search(r"(?:[KMGTPE]i|[mkMGTPE])$", quantity)
    return match.group(0) if match and not re.search(r"[eE][+-]?[0-9]+$", quantity) else ""


def format_like(amount: Decimal, like: str) -> str:
    """Format ``amount`` (cores or bytes) in the unit the user wrote ``like`` in: ``5Gi`` next to ``4Gi``.

    At most three decimals, never an exponent, so a message reads like the stack file.
    """
    suffix = suffix_of(like)
    scaled = amount / SUFFIXES[suffix]
    text = f"{scaled.quantize(Decimal('0.001')):f}".rstrip("0").rstrip(".")
    return f"{text}{suffix}"
