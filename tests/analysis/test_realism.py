"""analysis.realism: the classifier two-sample test on sets that cannot and that can be told apart."""
import cv2
import numpy as np
import pytest

pytest.importorskip("torch")

from analysis.realism import MIN_PAIRS, realism_c2st  # noqa: E402

FAST = {"size": 32, "steps": 60}  # small and few: each test trains in well under a second


def _scenes(seed: int, count: int, height: int = 24, width: int = 32) -> list[np.ndarray]:
    """CLEVR-like uint8 RGB images: a noisy grey floor with three coloured boxes at random places."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        image = (np.full((height, width, 3), 100) + rng.integers(0, 30, (height, width, 3))).astype(np.uint8)
        for _ in range(3):
            x, y = int(rng.integers(0, width - 8)), int(rng.integers(0, height - 8))
            size = int(rng.integers(4, 8))
            cv2.rectangle(image, (x, y), (x + size, y + size), tuple(int(c) for c in rng.integers(20, 240, 3)), -1)
        images.append(image)
    return images


def _brighter(images, amount: int = 60) -> list[np.ndarray]:
    return [np.clip(image.astype(np.int16) + amount, 0, 255).astype(np.uint8) for image in images]


def _with_square(images) -> list[np.ndarray]:
    edited = [image.copy() for image in images]
    for image in edited:
        image[2:10, 2:10] = (255, 0, 255)
    return edited


def test_identical_sets_are_indistinguishable():
    scenes = _scenes(0, 20)
    result = realism_c2st(scenes, [s.copy() for s in scenes], **FAST)
    # one logit per distinct image: of a held-out pair's two copies exactly one is called right
    assert result.accuracy == 0.5 and result.n_test == 20 and result.n_train == 20
    assert result.ci_low < 0.5 < result.ci_high and result.p_value > 0.5


@pytest.mark.parametrize("alter", [_brighter, _with_square], ids=["+60 brightness", "magenta square"])
def test_a_visibly_altered_set_is_told_apart(alter):
    scenes = _scenes(1, 20)
    result = realism_c2st(alter(scenes), scenes, **FAST)
    assert result.accuracy >= 0.95 and result.ci_low > 0.8 and result.p_value < 1e-4


def test_other_scenes_of_the_same_kind_are_not_told_apart_unpaired():
    result = realism_c2st(_scenes(2, 30), _scenes(3, 30), paired=False, **FAST)
    assert result.ci_low < 0.5 < result.ci_high and result.n_test == 30


def test_the_interval_and_p_are_the_exact_binomial_ones():
    from scipy.stats import binomtest

    scenes = _scenes(4, 10)
    result = realism_c2st(_brighter(scenes), scenes, **FAST)
    correct = round(result.accuracy * result.n_test)
    interval = binomtest(correct, result.n_test).proportion_ci(method="exact")
    assert (result.ci_low, result.ci_high) == pytest.approx((interval.low, interval.high))
    assert result.p_value == pytest.approx(binomtest(correct, result.n_test, alternative="greater").pvalue)
    assert result.n_test == 10 and result.n_train == 10


def test_the_seed_fixes_the_result_and_the_caller_random_stream_is_left_alone():
    import torch

    scenes = _scenes(5, 12)
    edited = _brighter(scenes, 8)  # subtle: the accuracy depends on the split and the training
    torch.manual_seed(123)
    first = realism_c2st(edited, scenes, seed=0, **FAST)
    after = torch.rand(1)
    torch.manual_seed(123)
    assert realism_c2st(edited, scenes, seed=0, **FAST) == first
    assert 0.5 < first.accuracy < 1  # neither trivial outcome: the same value twice means something
    assert torch.equal(torch.rand(1), after)
    threads = torch.get_num_threads()
    realism_c2st(edited, scenes, seed=1, **FAST)
    assert torch.get_num_threads() == threads


def test_the_pair_aware_split_keeps_both_images_of_a_pair_on_one_side(monkeypatch):
    from analysis import realism

    seen = {}

    def record(train, labels, test, seed, steps, device):
        seen["train"], seen["test"] = train, test
        return np.zeros(len(test), bool)

    monkeypatch.setattr(realism, "_train_and_predict", record)
    scenes = _scenes(6, 9)
    realism_c2st(_with_square(scenes), scenes, **FAST)
    half = len(seen["test"]) // 2
    # the unedited images of the held-out pairs, and no held-out scene among the training ones
    held_out = seen["test"][half:]
    assert not any(np.array_equal(image, other) for image in held_out for other in seen["train"])
    assert half == 4 and len(seen["train"]) == 10  # round(0.5 * 9) pairs held out, 5 trained on


@pytest.mark.parametrize("call, message", [
    (lambda s: realism_c2st(s[:3], s[:3]), rf"at least {MIN_PAIRS} images per set .* got 3 edited"),
    (lambda s: realism_c2st(s[:5], s[:6]), r"got 5 edited and 6 unedited; pass paired=False"),
    (lambda s: realism_c2st(s, s, paired=False, test_fraction=1.0), r"test_fraction must lie in \(0, 1\), got 1.0"),
    (lambda s: realism_c2st([s[0] / 255.0] + s[1:], s), r"edited\[0\] is float64 .*expected uint8 RGB"),
    (lambda s: realism_c2st(s, s[:5] + [s[5][..., 0]]), r"unedited\[5\] must be an RGB image"),
])
def test_bad_input_is_refused_with_a_clear_message(call, message):
    with pytest.raises(ValueError, match=message):
        call(_scenes(7, 6))
