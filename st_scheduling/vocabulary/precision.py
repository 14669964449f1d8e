"""The precision ServiceTitan's /performance rates are given to, read from the values themselves."""

from __future__ import annotations

from collections.abc import Iterable

FULL_PRECISION = 1e-9  # rates the API does not round still differ from ours by float arithmetic


def rate_decimals(values: Iterable[float | None]) -> int | None:
    """The decimals the API rounds its rates to (None: not rounded, or no rates to tell from)."""
    values = [v for v in values if v is not None]
    for decimals in range(0, 10):
        if values and all(abs(v - round(v, decimals)) < 1e-12 for v in values):
            return decimals
    return None


def rate_tolerance(decimals: int | None) -> float:
    """How far a reproduced rate may lie from the API's: half its last decimal place."""
    return FULL_PRECISION if decimals is None else 0.5 * 10.0**-decimals + 1e-12
