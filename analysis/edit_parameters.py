"""An editor's predicted edit parameters: how often each one sits at a limit of its range.

A parameter pinned at its bound (GazeShiftNet's exposure at ±3 stops, say) is a sign that the
attention term overwhelms the realism term. The share is reported per parameter and per bound,
never averaged over parameters: one pinned parameter among five averages to a harmless-looking
20%, and which one it is matters.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["parameter_limit_shares", "LIMIT_TOLERANCE"]

LIMIT_TOLERANCE = 0.02  # a value within 2% of the range from a bound counts as at it


def parameter_limit_shares(parameters: Mapping[str, np.ndarray], limits: Mapping[str, tuple[float, float]],
                           tol: float = LIMIT_TOLERANCE) -> pd.DataFrame:
    """Per parameter, the share of images whose value is at its low / high limit.

    parameters: name -> values (n_images,), one per edited image, in the parameter's own units;
    limits: name -> (low, high), the range the editor can output (every parameter needs one).
    A value counts as at a limit within `tol` × (high − low) of it, or beyond it. Returns one row
    per parameter, in the order given: parameter, n, share_at_low, share_at_high, share_at_limit
    (the two together), shares in [0, 1]; NaN shares for a parameter with no values. ValueError
    for a parameter without limits, low >= high, tol outside [0, 0.5), non-finite values or values
    that are not one per image."""
    if not 0.0 <= tol < 0.5:
        raise ValueError(f"tol must lie in [0, 0.5) (a fraction of each parameter's range), got {tol}")
    unknown = [name for name in parameters if name not in limits]
    if unknown:
        raise ValueError(f"no limits for parameter(s) {unknown}; expected (low, high) for each of "
                         f"{list(parameters)}")
    rows = []
    for name, given in parameters.items():
        values = np.asarray(given, np.float64)
        low, high = (float(v) for v in limits[name])
        if not low < high:
            raise ValueError(f"parameter {name!r}: limits ({low}, {high}); expected low < high")
        if values.ndim != 1:
            raise ValueError(f"parameter {name!r} has values of shape {values.shape}; expected one per image (n,)")
        if not np.isfinite(values).all():
            raise ValueError(f"parameter {name!r} has {int((~np.isfinite(values)).sum())} non-finite value(s); "
                             "expected finite numbers")
        margin = tol * (high - low)
        at_low, at_high = values <= low + margin, values >= high - margin
        share = (lambda mask: float(mask.mean())) if len(values) else (lambda mask: np.nan)
        rows.append({"parameter": name, "n": len(values), "share_at_low": share(at_low),
                     "share_at_high": share(at_high), "share_at_limit": share(at_low | at_high)})
    return pd.DataFrame(rows, columns=["parameter", "n", "share_at_low", "share_at_high", "share_at_limit"])
