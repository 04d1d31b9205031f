import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pandas as pd
import pytest

from datadir import Dataset
from datagen.generator_config import GeneratorConfig
from datagen.pipeline import (
    GenerationAborted, RunSummary, check_render_device, generate, open_for_generation, plan_resume,
)
from datagen.sampling import sample_pair

TINY = dict(width=64, height=48, samples=4, objects="3-5")


def _config(n_pairs=3, **overrides):
    return GeneratorConfig.from_options(n_pairs, **{**TINY, **overrides})


def test_a_folder_holding_another_dataset_is_refused_untouched(tmp_path):
    open_for_generation(tmp_path / "ds", _config(seed=1))
    before = (tmp_path / "ds/dataset.json").read_bytes()
    with pytest.raises(ValueError, match=r"different dataset \(seed: 1 there, 2 now\)"):
        open_for_generation(tmp_path / "ds", _config(seed=2))
    with pytest.raises(ValueError, match="image_size"):
        open_for_generation(tmp_path / "ds", _config(seed=1, width=80))
    assert (tmp_path / "ds/dataset.json").read_bytes() == before
    # more pairs, another device: the same dataset, resumable
    open_for_generation(tmp_path / "ds", _config(n_pairs=10, seed=1, device="cpu"))


def test_a_non_empty_folder_without_a_dataset_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        open_for_generation(tmp_path, _config())
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(width=8), "--width 8"),
        (dict(height=100000), "--height 100000"),
        (dict(samples=0), "samples=0"),
        (dict(objects="3-x"), "--objects '3-x'"),
        (dict(objects="9-4"), "--objects '9-4'"),
        (dict(objects="200-255"), "impossible placement"),
        (dict(splits="1,1,1"), "splits"),
        (dict(edit_mix="add=1,explode=2"), "explode"),
    ],
)
def test_bad_options_name_the_value(overrides, match):
    with pytest.raises(ValueError, match=match):
        _config(**overrides)


def test_bad_properties_file(tmp_path):
    bad = tmp_path / "props.yaml"
    bad.write_text("colors: {teal: [0, 300, 0]}\n")
    with pytest.raises(ValueError, match="teal"):
        _config(properties_file=str(bad))


def _fake_complete_pair(root, pair_id, edit_type="move"):
    for rel in (f"images/{pair_id}_x.png", f"images/{pair_id}_y.png", f"masks/{pair_id}_x.png", f"masks/{pair_id}_y.png"):
        cv2.imwrite(str(root / rel), np.zeros((48, 64), np.uint8))
    (root / f"scenes/{pair_id}.json").write_text(json.dumps({"edit": {"type": edit_type, "object_ids": [2, 3]}}))


def test_plan_resume_skips_adopts_and_cleans(tmp_path):
    config = _config(n_pairs=4)
    dataset = open_for_generation(tmp_path, config)
    _fake_complete_pair(tmp_path, "000000")
    dataset.add_pairs([{"pair_id": "000000", "split": "train", "source": "clevr", "edit_type": "move"}])
    _fake_complete_pair(tmp_path, "000001", edit_type="recolor")  # crashed before pairs.csv was written
    cv2.imwrite(str(tmp_path / "images/000002_x.png"), np.zeros((4, 4), np.uint8))  # half a pair
    (tmp_path / "images/.000003_x.png.tmp.png").write_bytes(b"partial")
    summary = RunSummary(tmp_path, 4)
    todo, adopted = plan_resume(dataset, config, summary)
    assert todo == [2, 3]
    assert (summary.skipped, summary.adopted) == (1, 1)
    assert adopted[0]["pair_id"] == "000001" and adopted[0]["edit_type"] == "recolor" and adopted[0]["n_edited"] == 2
    assert not (tmp_path / "images/000002_x.png").exists()
    assert not list((tmp_path / "images").glob(".*"))


def test_cli_render_errors_exit_2(run_cli, tmp_path):
    code, _, err = run_cli("datagen", "render", "--out", tmp_path / "a", "--pairs", 2, "--width", 5)
    assert code == 2 and "--width 5" in err and len(err.splitlines()) == 1
    code, _, err = run_cli("datagen", "render", "--out", tmp_path / "a", "--pairs", 2, "--samples", 99999)
    assert code == 2 and "samples=99999" in err
    code, _, err = run_cli("datagen", "render", "--out", tmp_path / "a", "--pairs", 2, "--properties", tmp_path / "none.json")
    assert code == 2 and "none.json" in err
    assert not (tmp_path / "a").exists()


def test_an_aborted_run_removes_the_empty_dataset_it_created(tmp_path, monkeypatch):
    """A fatal error before any pair (here a Ray worker without the requested GPU) leaves no folder
    behind that this run made; an existing folder or dataset stays."""
    from datagen.worker import PairOutcome

    def no_gpu(config, out, todo, *args):
        yield PairOutcome("000000", error="render device 'cuda' was requested but Blender found no CUDA device",
                          fatal=True)

    monkeypatch.setattr("datagen.pipeline._ray_results", no_gpu)
    with pytest.raises(GenerationAborted, match="CUDA"):
        generate(tmp_path / "new", _config(n_pairs=2, device="cuda"), ray_address="auto", progress=False)
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(GenerationAborted):
        generate(tmp_path / "empty", _config(n_pairs=2, device="cuda"), ray_address="auto", progress=False)
    assert list((tmp_path / "empty").iterdir()) == []
    open_for_generation(tmp_path / "old", _config(n_pairs=2, device="cuda"))
    with pytest.raises(GenerationAborted):
        generate(tmp_path / "old", _config(n_pairs=2, device="cuda"), ray_address="auto", progress=False)
    assert Dataset.open(tmp_path / "old").pairs.empty  # a dataset from before is kept


def test_preview_records_the_samples_it_renders(tmp_path, monkeypatch):
    """--preview caps the samples at 8: dataset.json (and the scene files, below) say 8, not the 64 asked."""
    seen = []
    monkeypatch.setattr("datagen.pipeline._local_results", lambda config, *args: iter(seen.append(config) or []))
    generate(tmp_path / "p", _config(n_pairs=1, samples=64, preview=True), progress=False)
    meta = json.loads((tmp_path / "p/dataset.json").read_text())
    assert meta["settings"]["generator"]["render"]["samples"] == 8 and seen[0].render.samples == 8
    # the same preview asked with other samples renders the same images: it resumes the dataset
    open_for_generation(tmp_path / "p", _config(n_pairs=1, samples=32, preview=True))


# --- with Blender -------------------------------------------------------------------------


def _missing_gpu():
    """A GPU backend Blender does not find here (skips when it finds all three)."""
    for device in ("hip", "optix", "cuda"):
        try:
            check_render_device(_config(device=device))
        except GenerationAborted:
            return device
    pytest.skip("Blender finds a HIP, an OptiX and a CUDA device here")


@pytest.mark.blender
def test_a_missing_gpu_is_refused_before_anything_is_written(run_cli, tmp_path):
    pytest.importorskip("bpy")
    device = _missing_gpu()
    code, out, err = run_cli("datagen", "render", "--out", tmp_path / "ds", "--pairs", 2, "--width", 64,
                             "--height", 48, "--device", device, "--quiet")
    assert code == 2 and not (tmp_path / "ds").exists()
    assert len(err.splitlines()) == 1 and f"render device {device!r} was requested" in err
    assert "nothing was written" in err


@pytest.mark.blender
def test_a_preview_scene_file_records_the_samples_used(tmp_path):
    pytest.importorskip("bpy")
    summary = generate(tmp_path / "p", _config(n_pairs=1, samples=64, preview=True), progress=False)
    assert summary.rendered == 1
    record = _scene_files(tmp_path / "p")["000000.json"]
    assert record["render"]["samples"] == 8 and record["render"]["preview"] is True


def _scene_files(root):
    return {p.name: json.loads(p.read_text()) for p in sorted((root / "scenes").glob("*.json"))}


@pytest.mark.blender
def test_render_pairs_with_two_workers_is_valid_and_deterministic(tmp_path):
    pytest.importorskip("bpy")
    config = _config(n_pairs=3, seed=5)
    summary = generate(tmp_path / "two", config, workers=2, progress=False)
    assert summary.rendered == 3 and not summary.failed
    dataset = Dataset.open(tmp_path / "two")
    assert dataset.validate() == []
    assert sorted(dataset.pairs["pair_id"]) == ["000000", "000001", "000002"]
    for name, record in _scene_files(tmp_path / "two").items():
        index = record["index"]
        spec = sample_pair(5, index, config.properties, config.placement, config.edit_mix, config.image_size,
                           attempt=record["attempt"])
        assert record["x"] == spec.scene_x.to_dict() and record["y"] == spec.scene_y.to_dict()
        assert record["x"]["camera"] == record["y"]["camera"] and record["x"]["lights"] == record["y"]["lights"]
        for side in ("x", "y"):
            mask = cv2.imread(str(tmp_path / f"two/masks/{name[:-5]}_{side}.png"), cv2.IMREAD_UNCHANGED)
            visible = {int(k) for k, v in record["visibility"][side].items() if v > 0}
            assert set(np.unique(mask)) - {0} == visible
    one = generate(tmp_path / "one", _config(n_pairs=3, seed=5), workers=1, progress=False)
    assert one.rendered == 3
    strip = lambda files: {k: {s: v[s] for s in ("x", "y", "edit", "attempt")} for k, v in files.items()}  # noqa: E731
    assert strip(_scene_files(tmp_path / "one")) == strip(_scene_files(tmp_path / "two"))


@pytest.mark.blender
def test_every_file_written_has_the_usual_mode(tmp_path):
    """Images, masks, scene files and the tables are 0666 & ~umask, as files people share are
    (write-then-rename through mkstemp had left scene files and images 0600)."""
    pytest.importorskip("bpy")
    old = os.umask(0o022)
    try:
        generate(tmp_path / "ds", _config(n_pairs=1, seed=2), workers=1, progress=False)
    finally:
        os.umask(old)
    modes = {str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777)
             for p in (tmp_path / "ds").rglob("*") if p.is_file()}
    assert {"ds/images/000000_x.png", "ds/masks/000000_y.png", "ds/scenes/000000.json", "ds/pairs.csv"} <= set(modes)
    assert {path: mode for path, mode in modes.items() if mode != "0o644"} == {}


@pytest.mark.blender
def test_resume_after_the_process_is_killed(tmp_path):
    pytest.importorskip("bpy")
    out = tmp_path / "ds"
    args = [sys.executable, "-c", "from gazelab.cli import main; main()", "datagen", "render", "--out", str(out),
            "--pairs", "5", "--width", "64", "--height", "48", "--samples", "4", "--objects", "3-5", "--quiet"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list((out / "scenes").glob("*.json")) if out.exists() else True:
        assert time.monotonic() < deadline and process.poll() is None, "render never produced a pair"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the main process and its workers, mid-run
    process.wait()
    assert len(list((out / "scenes").glob("*.json"))) < 5
    summary = generate(out, _config(n_pairs=5), progress=False)
    assert summary.skipped + summary.adopted + summary.rendered == 5 and not summary.failed
    table = pd.read_csv(out / "pairs.csv", dtype=str)
    assert sorted(table["pair_id"]) == [f"{i:06d}" for i in range(5)]
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]
    assert Dataset.open(out).validate() == []
    again = generate(out, _config(n_pairs=5), progress=False)
    assert (again.skipped, again.rendered) == (5, 0)


@pytest.mark.blender
def test_missing_gpu_is_an_error_not_a_cpu_fallback(tmp_path):
    pytest.importorskip("bpy")
    with pytest.raises(GenerationAborted, match="(?i)cuda"):
        generate(tmp_path / "gpu", _config(n_pairs=1, device="cuda"), progress=False)
    assert not (tmp_path / "gpu").exists()
