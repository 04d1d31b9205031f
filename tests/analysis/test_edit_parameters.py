"""analysis.edit_parameters: each parameter's share at a limit, per parameter and bound, never averaged."""
import numpy as np
import pandas as pd
import pytest

from analysis.edit_parameters import parameter_limit_shares


def test_per_parameter_limit_shares_by_hand():
    parameters = {
        "exposure": np.array([3.0, 2.95, -3.0, 0.0, 1.0]),  # range 6: within 0.12 of ±3 → 2 high, 1 low
        "contrast": np.array([0.0, 0.1, -0.2, 0.3, 0.5]),  # never near ±1
        "sharpen": np.array([2.5, -2.5, 2.0, 2.0, -1.0]),  # beyond a bound counts as at it
    }
    limits = {"exposure": (-3, 3), "contrast": (-1, 1), "sharpen": (-2, 2), "unused": (0, 1)}
    table = parameter_limit_shares(parameters, limits)
    expected = pd.DataFrame({"parameter": ["exposure", "contrast", "sharpen"], "n": [5, 5, 5],
                             "share_at_low": [0.2, 0.0, 0.2], "share_at_high": [0.4, 0.0, 0.6],
                             "share_at_limit": [0.6, 0.0, 0.8]})
    pd.testing.assert_frame_equal(table, expected)
    # one row per parameter: a pinned exposure is not diluted by the other parameters
    assert len(table) == 3 and table.loc[0, "share_at_limit"] != table["share_at_limit"].mean()


def test_the_tolerance_is_a_fraction_of_each_range():
    values = {"a": np.array([0.99, 0.95]), "b": np.array([9.9, 9.5])}  # the same positions in ranges 1 and 10
    limits = {"a": (0, 1), "b": (0, 10)}
    assert list(parameter_limit_shares(values, limits)["share_at_high"]) == [0.5, 0.5]
    assert list(parameter_limit_shares(values, limits, tol=0.06)["share_at_high"]) == [1.0, 1.0]
    assert list(parameter_limit_shares(values, limits, tol=0.0)["share_at_high"]) == [0.0, 0.0]


def test_no_values_give_nan_shares():
    table = parameter_limit_shares({"a": np.array([])}, {"a": (0, 1)})
    assert table.loc[0, "n"] == 0 and table[["share_at_low", "share_at_high", "share_at_limit"]].isna().all(axis=None)


@pytest.mark.parametrize("parameters, limits, tol, message", [
    ({"a": [0.5], "b": [1.0]}, {"a": (0, 1)}, 0.02, r"no limits for parameter\(s\) \['b'\]"),
    ({"a": [0.5]}, {"a": (1, 1)}, 0.02, r"'a': limits \(1.0, 1.0\); expected low < high"),
    ({"a": [[0.5]]}, {"a": (0, 1)}, 0.02, r"shape \(1, 1\); expected one per image"),
    ({"a": [np.nan, 0.1]}, {"a": (0, 1)}, 0.02, r"'a' has 1 non-finite value"),
    ({"a": [0.5]}, {"a": (0, 1)}, 0.5, r"tol must lie in \[0, 0.5\)"),
])
def test_bad_input_is_refused(parameters, limits, tol, message):
    with pytest.raises(ValueError, match=message):
        parameter_limit_shares(parameters, limits, tol=tol)
