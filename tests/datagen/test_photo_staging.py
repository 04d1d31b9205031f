"""A photo import killed at any point (SIGKILL: no clean-up runs) leaves the old dataset or the
new one, and the next import completes or discards what it left.

The import runs in a child process that pauses at a chosen step (the k-th image decode, or the
k-th staged file moved into the dataset), so the kill lands at the same point on any machine;
the test waits for the pause, never for a time."""
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from datadir import Dataset
from datagen.photos import import_pairs

REPO = Path(__file__).resolve().parents[2]
HANG_GUARD_S = 300  # only against a child that never pauses; no test outcome depends on speed

PAUSING_IMPORT = r"""
import os, sys, time
from pathlib import Path
import cv2

marker, step, pause_at, x_dir, y_dir, out = sys.argv[1:7]
calls = 0

def count():
    global calls
    calls += 1
    if calls == int(pause_at):
        Path(marker).write_text(str(os.getpid()))
        time.sleep(3600)

def counted(function):
    def wrapper(*args, **kwargs):
        count()
        return function(*args, **kwargs)
    return wrapper

if step == "decode":
    cv2.imdecode, cv2.imread = counted(cv2.imdecode), counted(cv2.imread)
else:  # "move": a staged file moved into the dataset
    real_replace = os.replace
    def replace(src, dst, *args, **kwargs):
        real_replace(src, dst, *args, **kwargs)
        if "/.import-" in str(src) and "/.import-" not in str(dst):
            count()
    os.replace = replace

from datagen.photos import import_pairs
import_pairs(x_dir, y_dir, out)
raise SystemExit("the import ended without pausing")
"""


def _photo(path, value):
    image = np.full((30, 40, 3), value, np.uint8)
    image[5:9, 6:12] = 255 - value
    assert cv2.imwrite(str(path), image)


@pytest.fixture
def sources(tmp_path):
    """Photo folders with 3 pairs (old_0..2) and a function adding 8 more (new_0..7)."""
    x_dir, y_dir = tmp_path / "x", tmp_path / "y"
    x_dir.mkdir(), y_dir.mkdir()

    def add(prefix, count):
        for i in range(count):
            _photo(x_dir / f"{prefix}_{i}.png", 10 + i), _photo(y_dir / f"{prefix}_{i}.png", 100 + i)

    add("old", 3)
    return x_dir, y_dir, add


def _contents(root):
    """{path relative to root: SHA-256} of every file, leaving out import staging folders."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".import-" not in str(p.relative_to(root))}


def _paused_import(tmp_path, step, pause_at, x_dir, y_dir, out):
    """A child importing x_dir, y_dir into out, stopped at its `pause_at`-th `step`."""
    marker = tmp_path / "paused"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    with open(tmp_path / "child.err", "w") as err:
        child = subprocess.Popen([sys.executable, "-c", PAUSING_IMPORT, marker, step, str(pause_at), x_dir, y_dir, out],
                                 env=env, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + HANG_GUARD_S
    while not marker.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill(), child.wait()
            errors = (tmp_path / "child.err").read_text()[-3000:]
            pytest.fail(f"the import did not pause at {step} {pause_at}: {errors}")
        time.sleep(0.05)
    return child


def _kill(child):
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL


def test_a_kill_while_reading_leaves_the_old_dataset(tmp_path, sources, run_cli):
    x_dir, y_dir, add = sources
    out = tmp_path / "out"
    import_pairs(x_dir, y_dir, out)
    before = _contents(out)
    add("new", 8)
    _kill(_paused_import(tmp_path, "decode", 7, x_dir, y_dir, out))  # 3 new pairs read and written
    assert _contents(out) == before
    assert Dataset.open(out).validate() == []
    again = import_pairs(x_dir, y_dir, out)
    assert (again.imported, again.skipped) == (8, 3)
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
    assert run_cli("dataset", "validate", out)[:2] == (0, f"ok: 11 pairs in {out} follow the dataset contract\n")


def test_a_kill_while_importing_into_a_new_folder_leaves_no_folder(tmp_path, sources, run_cli):
    x_dir, y_dir, add = sources
    add("new", 8)
    out = tmp_path / "data" / "out"
    _kill(_paused_import(tmp_path, "decode", 9, x_dir, y_dir, out))
    assert not out.exists()
    again = import_pairs(x_dir, y_dir, out)
    assert (again.imported, again.skipped) == (11, 0)
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]  # the killed import's staging is gone
    assert run_cli("dataset", "validate", out)[:2] == (0, f"ok: 11 pairs in {out} follow the dataset contract\n")


def test_a_kill_while_moving_files_in_is_completed_by_the_next_import(tmp_path, sources, run_cli, caplog):
    x_dir, y_dir, add = sources
    out = tmp_path / "out"
    import_pairs(x_dir, y_dir, out)
    pairs_before = (out / "pairs.csv").read_bytes()
    add("new", 8)
    _kill(_paused_import(tmp_path, "move", 2, x_dir, y_dir, out))  # journal written, 2 of 16 files moved
    assert (out / "pairs.csv").read_bytes() == pairs_before
    code, report, _ = run_cli("dataset", "validate", out)  # the 2 moved files are named until the next import
    assert code == 1 and report.splitlines() == ["dataset: unlisted: images/new_0_x.png is a file that no pairs.csv"
                                                 " row lists", "dataset: unlisted: images/new_0_y.png is a file that"
                                                 " no pairs.csv row lists"]
    again = import_pairs(x_dir, y_dir, out)
    assert (again.imported, again.skipped) == (0, 11)  # the journal's 8 pairs went in first
    assert any("completing an import" in r.getMessage() for r in caplog.records)
    table = Dataset.open(out).pairs.set_index("pair_id")
    assert sorted(table.index) == sorted([f"old_{i}" for i in range(3)] + [f"new_{i}" for i in range(8)])
    assert cv2.imread(str(out / table.loc["new_7", "y_image"]))[0, 0, 0] == 107
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
    assert run_cli("dataset", "validate", out)[:2] == (0, f"ok: 11 pairs in {out} follow the dataset contract\n")


def test_a_second_import_into_a_dataset_while_one_runs_is_refused(tmp_path, sources):
    x_dir, y_dir, add = sources
    out = tmp_path / "out"
    import_pairs(x_dir, y_dir, out)
    add("new", 2)
    child = _paused_import(tmp_path, "decode", 1, x_dir, y_dir, out)
    try:
        with pytest.raises(ValueError, match=f"another import into {out} is running; wait for it to end"):
            import_pairs(x_dir, y_dir, out)
    finally:
        _kill(child)
    assert import_pairs(x_dir, y_dir, out).imported == 2  # the lock went with the killed import
