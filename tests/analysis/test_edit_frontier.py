"""analysis.edit_frontier: the upper envelope of fixed edits, the above/below call, the line search."""
import numpy as np
import pytest

from analysis.edit_frontier import above_frontier, fixed_edit_frontier, matching_position


def test_the_frontier_is_the_upper_envelope_through_the_identity_linear_between_its_points():
    # (0.02, 0.05) is beaten by a smaller edit; (0.04, 0.18) by (0.03, 0.2) at less size.
    frontier = fixed_edit_frontier([0.01, 0.02, 0.03, 0.04], [0.1, 0.05, 0.2, 0.18])
    assert frontier.sizes.tolist() == [0.0, 0.01, 0.03]
    assert frontier.gains.tolist() == [0.0, 0.1, 0.2]
    assert frontier.gain_at(0.005) == pytest.approx(0.05)
    assert frontier.gain_at(0.02) == pytest.approx(0.15)
    assert frontier.gain_at(0.5) == pytest.approx(0.2)  # beyond the largest edit tried: flat


def test_an_edit_is_above_only_when_strictly_higher_than_the_frontier_at_its_size():
    frontier = fixed_edit_frontier([0.01, 0.03], [0.1, 0.2])
    assert above_frontier(0.02, 0.151, frontier)
    assert not above_frontier(0.02, 0.15, frontier)  # a tie is not above
    assert not above_frontier(0.02, 0.149, frontier)
    assert above_frontier(0.0, 1e-9, frontier)  # any gain without changing the image beats the identity
    assert not above_frontier(0.0, 0.0, frontier)
    assert not above_frontier(1.0, 0.2, frontier) and above_frontier(1.0, 0.21, frontier)


def test_fixed_edits_that_only_lose_leave_the_identity_as_the_frontier():
    frontier = fixed_edit_frontier([0.01, 0.02], [-0.1, -0.3])
    assert frontier.sizes.tolist() == [0.0] and frontier.gains.tolist() == [0.0]
    assert frontier.gain_at(0.05) == 0.0
    assert above_frontier(0.05, 0.001, frontier) and not above_frontier(0.05, -0.001, frontier)
    assert fixed_edit_frontier([], []).gain_at(0.3) == 0.0


def test_equal_sizes_keep_the_larger_gain_and_a_size_zero_gain_replaces_the_identity():
    frontier = fixed_edit_frontier([0.02, 0.02, 0.0], [0.05, 0.12, 0.01])
    assert frontier.sizes.tolist() == [0.0, 0.02]
    assert frontier.gains.tolist() == [0.01, 0.12]


@pytest.mark.parametrize("sizes, gains, message", [
    ([0.01], [0.1, 0.2], "one per edit"),
    ([-0.01], [0.1], "sizes must be >= 0"),
    ([np.nan], [0.1], "sizes must be finite"),
    ([0.01], [np.inf], "gains must be finite"),
])
def test_bad_points_are_refused(sizes, gains, message):
    with pytest.raises(ValueError, match=message):
        fixed_edit_frontier(sizes, gains)


def test_a_bad_size_or_gain_to_compare_is_refused():
    frontier = fixed_edit_frontier([0.01], [0.1])
    with pytest.raises(ValueError, match="size must be >= 0"):
        above_frontier(-0.1, 0.1, frontier)
    with pytest.raises(ValueError, match="gain must be finite"):
        above_frontier(0.01, float("nan"), frontier)


def test_the_line_search_finds_the_first_strength_whose_edit_is_that_large():
    # sizes along +1, +2, +3, +4 stops: the edit grows, then saturates (clipped) and stays
    path = [0.01, 0.03, 0.04, 0.04]
    assert matching_position(path, 0.0) == 0.0
    assert matching_position(path, 0.005) == pytest.approx(0.5)  # halfway from the identity to +1
    assert matching_position(path, 0.02) == pytest.approx(1.5)
    assert matching_position(path, 0.04) == pytest.approx(3.0)  # the first to reach it, not the last
    assert matching_position(path, 0.041) is None
    with pytest.raises(ValueError, match="path_sizes must be >= 0"):
        matching_position([-0.01], 0.0)
