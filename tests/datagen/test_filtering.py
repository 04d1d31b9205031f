"""`gazelab dataset filter`: SGIT-S's kl_xy filter writes a valid subset and counts what it left."""
import pytest

from datadir import Dataset
from datagen.filtering import filter_by_kl


@pytest.fixture
def with_kl(dataset):
    """The 3-pair dataset with kl_xy 0.05, 0.3 and none (pair 000002: no study exported its kl_xy)."""
    dataset.update_pairs([{"pair_id": "000000", "kl_xy": 0.05}, {"pair_id": "000001", "kl_xy": 0.3}])
    return dataset


def test_pairs_at_or_above_the_threshold_are_copied_with_their_files(with_kl, tmp_path):
    summary = filter_by_kl(with_kl.path, tmp_path / "s", 0.2)
    assert (summary["kept"], summary["below"], summary["without_kl"]) == (1, 1, 1)
    out = Dataset.open(tmp_path / "s")
    assert list(out.pairs["pair_id"]) == ["000001"] and out.validate() == []
    for name in ("images/000001_x.png", "masks/000001_y.png", "scenes/000001.json", "maps/000001_x.npy"):
        assert (tmp_path / "s" / name).read_bytes() == (with_kl.path / name).read_bytes()
    assert not (tmp_path / "s" / "images/000000_x.png").exists()
    assert out.settings["min_kl"] == 0.2 and out.settings["filtered_from"] == str(with_kl.path)


@pytest.mark.parametrize("min_kl, match", [(-1, "min_kl must be a number >= 0"), (float("nan"), "min_kl"),
                                           (5.0, "no pair .* has kl_xy >= 5 \\(2 below it, 1 without")])
def test_bad_thresholds_and_empty_results_write_nothing(with_kl, tmp_path, min_kl, match):
    with pytest.raises(ValueError, match=match):
        filter_by_kl(with_kl.path, tmp_path / "s", min_kl)
    assert not (tmp_path / "s").exists()


def test_cli_filter_prints_counts_and_validates(run_cli, with_kl, tmp_path):
    code, out, _ = run_cli("dataset", "filter", with_kl.path, "--min-kl", 0.2, "--out", tmp_path / "s")
    assert code == 0 and "kept 1 of 3 pairs with kl_xy >= 0.2 (train 1); 1 below, 1 without kl_xy" in out
    assert "follows the dataset contract" in out
    code, _, err = run_cli("dataset", "filter", with_kl.path, "--min-kl", 0.2, "--out", tmp_path / "s")
    assert code == 2 and "is not empty" in err
