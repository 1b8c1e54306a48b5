"""Kubernetes' quantity grammar, parsed exactly as the kubernetes Python client parses it.

A copy of ``kubernetes.utils.quantity.parse_quantity`` (Apache-2.0, The Kubernetes Authors), so that
deploying and rendering do not install the whole kubernetes client (80 MB, 860 modules on import)
for one function. ``tests/unit/test_k8s_quantity.py`` keeps it equal to the client's, which the dev
set still installs.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

# The power of the base that each suffix's first letter stands for (``Mi`` is 1024**2, ``M`` 1000**2).
_EXPONENTS = {"n": -3, "u": -2, "m": -1, "K": 1, "k": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}


def parse_quantity(quantity: object) -> Decimal:
    """Return a quantity such as ``200Mi`` or ``400m`` as a Decimal; raise ValueError when it is not one.

    Suffixes: ``Ki Mi Gi Ti Pi Ei`` (base 1024) and ``n u m k M G T P E`` (base 1000).
    """
    if isinstance(quantity, int | float | Decimal):
        return Decimal(quantity)
    text = str(quantity)
    number, suffix = text, ""
    if len(text) >= 2 and text[-1] == "i":
        if text[-2] in _EXPONENTS:
            number, suffix = text[:-2], text[-2:]
    elif text and text[-1] in _EXPONENTS:
        number, suffix = text[:-1], text[-1:]
    try:
        amount = Decimal(number)
    except InvalidOperation as err:
        raise ValueError(f"Invalid number format: {number}") from err
    if not suffix:
        return amount
    # "ki" is not a suffix: the binary kilo is "Ki", and "k" alone is the decimal one.
    if suffix == "ki":
        raise ValueError(f"{text} has unknown suffix")
    base = 1024 if suffix.endswith("i") else 1000
    return amount * (base ** Decimal(_EXPONENTS[suffix[0]]))
