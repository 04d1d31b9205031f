"""Numbers as the report prints them: fixed decimals, '–' for a missing value, '∞' for an
infinite one (the PSNR of a perfect output), never a negative zero."""
from __future__ import annotations

import math


def number(value, digits: int) -> str:
    """`value` with `digits` decimals: '–' for None or NaN, '∞' / '-∞' for infinities (the PSNR of
    a perfect output), never a negative zero ('-0.000' prints '0.000')."""
    if value is None:
        return "–"
    value = float(value)
    if math.isnan(value):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def plus_minus(mean, std, digits: int = 2) -> str:
    """'mean ± std' through `number`; the mean alone where std is NaN or the mean infinite."""
    if mean is None or math.isnan(float(mean)):
        return "–"
    if math.isinf(float(mean)) or std is None or not math.isfinite(float(std)):
        return number(mean, digits)
    return f"{number(mean, digits)} ± {number(std, digits)}"


def interval(low, high, digits: int) -> str:
    """'[low, high]' through `number`; '–' when either end is missing."""
    if low is None or high is None or math.isnan(float(low)) or math.isnan(float(high)):
        return "–"
    return f"[{number(low, digits)}, {number(high, digits)}]"


def p_value(value) -> str:
    """A p-value with 3 decimals, '<0.001' below, '–' when missing."""
    if value is None or math.isnan(float(value)):
        return "–"
    return "<0.001" if value < 0.001 else number(value, 3)
