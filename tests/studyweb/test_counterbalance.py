"""studyweb.counterbalance: Williams squares and one participant's blocks (Gatys' design)."""
from collections import Counter

import pytest

from studyweb.counterbalance import (condition_order, counterbalanced_blocks, first_block_counts,
                                     williams_square)

IMAGES = [f"img{i:02d}" for i in range(24)]
GATYS = ["original", "increase", "decrease"]


@pytest.mark.parametrize("n", range(1, 9))
def test_williams_square_is_a_latin_square_balanced_for_order_and_carry_over(n):
    rows = williams_square(n)
    assert len(rows) == (n if n % 2 == 0 else 2 * n)
    for row in rows:
        assert sorted(row) == list(range(n))  # every condition once per participant
    for column in zip(*rows):
        assert Counter(column) == Counter({c: len(rows) // n for c in range(n)})  # each position balanced
    if n > 1:
        pairs = Counter((row[k], row[k + 1]) for row in rows for k in range(n - 1))
        assert len(pairs) == n * (n - 1) and len(set(pairs.values())) == 1  # each ordered pair equally often


def test_gatys_three_blocks_over_many_participants():
    """Each participant sees each source image once per block, in every condition once over
    the three blocks; first blocks spread evenly over the conditions."""
    n_participants = 600
    firsts, followers = Counter(), Counter()
    for p in range(n_participants):
        blocks = counterbalanced_blocks(IMAGES, GATYS, p, seed=7)
        assert len(blocks) == 3
        for block in blocks:
            assert sorted(image for image, _ in block) == IMAGES
            assert len({condition for _, condition in block}) == 1  # blocked: one version per block
        seen = [block[0][1] for block in blocks]
        assert sorted(seen) == sorted(GATYS)
        firsts[seen[0]] += 1
        followers.update(zip(seen, seen[1:]))
    assert firsts == Counter({c: n_participants // 3 for c in GATYS})
    assert len(followers) == 6 and len(set(followers.values())) == 1
    assert first_block_counts(GATYS, n_participants) == dict(firsts)


def test_23_participants_are_as_balanced_as_23_can_be():
    counts = first_block_counts(GATYS, 23)
    assert sum(counts.values()) == 23 and max(counts.values()) - min(counts.values()) <= 1


def test_mixed_layout_spreads_conditions_within_each_block():
    for p in range(12):
        blocks = counterbalanced_blocks(IMAGES, GATYS, p, layout="mixed", seed=1)
        for block in blocks:
            assert Counter(c for _, c in block) == Counter({c: 8 for c in GATYS})
        by_image = {image: [] for image in IMAGES}
        for block in blocks:
            for image, condition in block:
                by_image[image].append(condition)
        assert all(sorted(conditions) == sorted(GATYS) for conditions in by_image.values())


def test_image_order_is_seeded_per_participant():
    a = counterbalanced_blocks(IMAGES, GATYS, 4, seed=3)
    assert a == counterbalanced_blocks(IMAGES, GATYS, 4, seed=3)
    assert [i for i, _ in a[0]] != [i for i, _ in counterbalanced_blocks(IMAGES, GATYS, 7, seed=3)[0]]
    assert [i for i, _ in counterbalanced_blocks(IMAGES, GATYS, 4)[0]] == IMAGES  # no seed: as given


@pytest.mark.parametrize("kwargs, match", [
    (dict(images=[], conditions=GATYS), "at least one image"),
    (dict(images=IMAGES, conditions=[]), "at least one condition"),
    (dict(images=["a", "a"], conditions=GATYS), "images must be distinct; repeated: \\['a'\\]"),
    (dict(images=IMAGES, conditions=["x", "x"]), "conditions must be distinct"),
    (dict(images=IMAGES, conditions=GATYS, layout="random"), "layout must be one of"),
])
def test_impossible_designs_are_refused_with_the_reason(kwargs, match):
    with pytest.raises(ValueError, match=match):
        counterbalanced_blocks(participant_index=0, **kwargs)


def test_bad_counts_are_refused():
    with pytest.raises(ValueError, match="integer >= 1, got 0"):
        williams_square(0)
    with pytest.raises(ValueError, match="participant_index must be an integer >= 0, got -1"):
        condition_order(3, -1)
