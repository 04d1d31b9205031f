import os

import numpy as np
import pytest

from datadir import Dataset, PairWriter
from gazelab.cli import main


def _write_pair(root, pair_id, size=(16, 12), mask_ids=(1, 2), scene_ids=(1, 2), with_maps=True):
    """Files of one clevr pair at `size` (width, height); returns its pairs.csv row."""
    width, height = size
    rng = np.random.default_rng(abs(hash(pair_id)) % 2**32)
    images, masks, maps = {}, {}, {}
    for side in ("x", "y"):
        images[side] = rng.integers(0, 255, (height, width, 3), np.uint8)
        masks[side] = np.zeros((height, width), np.uint8)
        for k, mask_id in enumerate(mask_ids):
            masks[side][2 + 3 * k : 4 + 3 * k, 2:6] = mask_id
        if with_maps:
            maps[side] = np.full((height, width), 1.0 / (height * width), np.float32)
    objects = [{"id": i, "mask_id": i} for i in scene_ids]
    scene = {"x": {"objects": objects}, "y": {"objects": objects}, "edit": {"type": "recolor"}}
    row = PairWriter(root).write(pair_id, split="train", source="clevr", edit_type="recolor", n_edited=1,
                                 images=images, masks=masks, scene=scene)
    if with_maps:
        writer = PairWriter(root)
        row.update({f"{side}_map": writer.map(pair_id, side, maps[side], png=False) for side in maps},
                   n_observers_x=7, n_observers_y=8)
    return row


@pytest.fixture
def write_pair():
    """write_pair(root, pair_id, size=(w, h), mask_ids=..., scene_ids=..., with_maps=True) -> row."""
    return _write_pair


@pytest.fixture
def dataset(tmp_path):
    """A valid three-pair dataset."""
    ds = Dataset.create(tmp_path / "ds", "tiny", seed=3)
    ds.add_pairs([_write_pair(ds.path, f"{i:06d}") for i in range(3)])
    return ds


@pytest.fixture
def run_cli(capsys):
    """run_cli(*args) -> (exit code, stdout, stderr) of the real console entry point."""

    def run(*args):
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in args])
        out, err = capsys.readouterr()
        return exit_info.value.code, out, err

    return run


def pytest_collection_modifyitems(config, items):
    """`gpu` tests need CUDA; without it they are skipped (and say so in the summary)."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL server for `postgres` tests; its SQLAlchemy URL.

    Starts Debian's server binaries on a free loopback port in a fresh data directory, as the
    `nobody` user when the tests run as root (PostgreSQL refuses to run as root), and removes
    everything afterwards. Skips, saying why, where the binaries are missing.
    """
    import glob
    import shutil
    import socket
    import subprocess
    import tempfile

    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bindirs:
        pytest.skip("PostgreSQL server binaries not found (apt install postgresql); postgres tests SKIPPED")
    bindir = os.path.dirname(bindirs[-1])
    run_as = {"user": "nobody", "group": "nogroup"} if os.geteuid() == 0 else {}
    root = tempfile.mkdtemp(prefix="gazelab-pg-")
    if run_as:
        shutil.chown(root, **run_as)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = os.path.join(root, "data")

    def pg(*args):
        subprocess.run([os.path.join(bindir, args[0]), *args[1:]], check=True, capture_output=True, cwd=root, **run_as)

    try:
        pg("initdb", "-D", data, "-U", "gazelab", "--auth=trust", "-E", "UTF8")
        pg("pg_ctl", "-D", data, "-l", os.path.join(root, "log"), "-w", "start",
           "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off")
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {exc.stderr.decode(errors='replace')[-500:]}")
    try:
        yield f"postgresql+psycopg://gazelab@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([os.path.join(bindir, "pg_ctl"), "-D", data, "-m", "immediate", "stop"],
                       capture_output=True, cwd=root, **run_as)
        shutil.rmtree(root, ignore_errors=True)

def _write_scene_pair(root, pair_id: str, rng: np.random.Generator, size=(32, 24)):
    """Coloured rectangles on a grey ground; masks label them 1..k; maps peak on one object."""
    width, height = size
    n_objects = int(rng.integers(2, 4))
    boxes = []
    for k in range(n_objects):
        w, h = int(rng.integers(5, 9)), int(rng.integers(4, 7))
        x0 = int(rng.integers(0, width - w)) if k else 2
        y0 = 2 + 7 * k if 2 + 7 * k + h <= height else int(rng.integers(0, height - h))
        boxes.append((x0, y0, w, h))
    writer = PairWriter(root)
    row = {"n_observers_x": 7, "n_observers_y": 7}
    images, masks = {}, {}
    for side in ("x", "y"):
        image = np.full((height, width, 3), 110, np.uint8) + rng.integers(0, 12, (height, width, 3), np.uint8)
        mask = np.zeros((height, width), np.uint8)
        for k, (x0, y0, w, h) in enumerate(boxes, start=1):
            colour = rng.integers(20, 255, 3)
            image[y0 : y0 + h, x0 : x0 + w] = colour
            mask[y0 : y0 + h, x0 : x0 + w] = k
        images[side], masks[side] = image[..., ::-1], mask  # drawn in OpenCV's BGR order
        ys, xs = np.mgrid[0:height, 0:width]
        x0, y0, w, h = boxes[int(rng.integers(0, n_objects))]
        centre = (x0 + w / 2, y0 + h / 2)
        density = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * 3.0**2)) + 1e-3
        row[f"{side}_map"] = writer.map(pair_id, side, density, png=False)
    objects = [{"id": k, "mask_id": k} for k in range(1, n_objects + 1)]
    scene = {"x": {"objects": objects}, "y": {"objects": objects}, "edit": {"type": "recolor"}}
    return writer.write(pair_id, split="train", source="clevr", edit_type="recolor", n_edited=1, images=images,
                        masks=masks, scene=scene, **row)


@pytest.fixture(scope="session")
def scene_dataset(tmp_path_factory):
    """A valid dataset of 6 train pairs (32×24) with 2–3 objects each, masks and peaked maps."""
    ds = Dataset.create(tmp_path_factory.mktemp("models") / "ds", "tiny-scenes", seed=5)
    rng = np.random.default_rng(5)
    ds.add_pairs([_write_scene_pair(ds.path, f"{i:06d}", rng) for i in range(6)])
    return ds
