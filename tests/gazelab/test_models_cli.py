"""`gazelab train predictor|editor`, `predict` and `edit` end to end on a tiny scene dataset (CPU)."""

import json
import socket

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, scene_dataset):
    """A SalGAN predictor and a GazeShiftNet editor trained for a few steps through the CLI."""
    from gazelab.cli import cli

    root = tmp_path_factory.mktemp("runs")
    runs = {"predictor": root / "salgan", "editor": root / "gsn"}

    def run(*args):
        cli.main(args=[str(a) for a in args], standalone_mode=False)

    run("train", "predictor", "salgan", "--data", scene_dataset.path, "--preset", "tiny", "--random-backbone",
        "--steps", 3, "--batch-size", 2, "--out", runs["predictor"], "--device", "cpu", "--no-progress")
    run("train", "editor", "gazeshiftnet", "--data", scene_dataset.path, "--preset", "tiny", "--random-backbone",
        "--predictor", runs["predictor"] / "checkpoints/last.pt", "--steps", 3, "--batch-size", 2,
        "--out", runs["editor"], "--device", "cpu", "--no-progress")
    return runs


def test_train_predictor_prints_outputs_and_resumes(run_cli, scene_dataset, tmp_path):
    out = tmp_path / "run"
    args = ["train", "predictor", "salgan", "--data", scene_dataset.path, "--preset", "tiny", "--random-backbone",
            "--batch-size", 2, "--out", out, "--device", "cpu", "--no-progress"]
    code, stdout, err = run_cli(*args, "--steps", 2)
    assert code == 0, err
    assert "random backbone" in stdout.lower() and "step 2/2" in stdout
    assert f"checkpoint: {out}/checkpoints/last.pt" in stdout
    assert (out / "checkpoints/config.yaml").is_file() and (out / "log.csv").is_file()
    # the same folder again without --resume: refused, nothing overwritten
    before = (out / "checkpoints/last.pt").read_bytes()
    code, _, err = run_cli(*args, "--steps", 4)
    assert code == 2 and "--resume" in err and "Traceback" not in err
    assert (out / "checkpoints/last.pt").read_bytes() == before
    code, stdout, err = run_cli(*args, "--steps", 4, "--resume", "--ckpt-every", 1, "--keep-checkpoints", 1)
    assert code == 0, err
    assert "from step 2 to 4" in stdout and "trained salgan to step 4" in stdout
    assert [p.name for p in (out / "checkpoints").glob("step_*.pt")] == ["step_000004.pt"]


def test_predict_writes_densities(run_cli, trained, scene_dataset, tmp_path):
    code, stdout, err = run_cli("predict", "--ckpt", trained["predictor"] / "checkpoints/last.pt",
                                "--images", scene_dataset.path / "images", "--out", tmp_path / "pred",
                                "--device", "cpu")
    assert code == 0, err
    assert "12 saliency maps" in stdout and "random backbone" in stdout.lower()
    density = np.load(tmp_path / "pred/000000_x.npy")
    assert density.shape == (24, 32) and abs(density.sum() - 1) < 1e-4 and density.min() >= 0
    info = json.loads((tmp_path / "pred/predictions.json").read_text())
    assert info["model"] == "salgan" and info["weights_info"]["random_backbone"] is True


def test_edit_one_image_with_a_mask(run_cli, trained, scene_dataset, tmp_path):
    ckpt = trained["editor"] / "checkpoints/last.pt"
    image, mask = scene_dataset.path / "images/000000_x.png", scene_dataset.path / "masks/000000_x.png"
    code, stdout, err = run_cli("edit", "gazeshiftnet", "--ckpt", ckpt, "--image", image, "--mask", mask,
                                "--object-id", 1, "--strength", 0.5, "--out", tmp_path / "edited.png",
                                "--device", "cpu")
    assert code == 0, err
    edited = cv2.imread(str(tmp_path / "edited.png"))
    assert edited.shape == (24, 32, 3)
    info = json.loads((tmp_path / "edited.json").read_text())
    assert info["options"] == {"strength": 0.5} and info["weights_info"]["predictor"]["name"] == "salgan"
    # strength 0 is the input image itself
    code, _, err = run_cli("edit", "gazeshiftnet", "--ckpt", ckpt, "--image", image, "--mask", mask,
                           "--strength", 0, "--out", tmp_path / "same.png", "--device", "cpu")
    assert code == 0, err
    assert np.array_equal(cv2.imread(str(tmp_path / "same.png")), cv2.imread(str(image)))


def test_edit_a_dataset_split(run_cli, trained, scene_dataset, tmp_path):
    code, stdout, err = run_cli("edit", "gazeshiftnet", "--ckpt", trained["editor"] / "checkpoints/last.pt",
                                "--data", scene_dataset.path, "--split", "train", "--out", tmp_path / "edits",
                                "--device", "cpu")
    assert code == 0, err
    assert "6 edited images" in stdout
    assert len(list((tmp_path / "edits").glob("*.png"))) == 6


def test_bad_input_gets_one_line(run_cli, trained, scene_dataset, tmp_path):
    editor_ckpt = trained["editor"] / "checkpoints/last.pt"
    predictor_ckpt = trained["predictor"] / "checkpoints/last.pt"
    image = scene_dataset.path / "images/000000_x.png"
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(predictor_ckpt.read_bytes()[:5000])  # a copy cut short
    cases = [
        (("train", "editor", "gazeshiftnet", "--data", scene_dataset.path, "--preset", "tiny",
          "--out", tmp_path / "a"), "--predictor"),
        (("train", "editor", "gazeshiftnet", "--data", scene_dataset.path, "--preset", "tiny",
          "--predictor", editor_ckpt, "--out", tmp_path / "b"), "expected a predictor"),
        (("train", "predictor", "nosuch", "--data", scene_dataset.path), "unknown predictor 'nosuch'"),
        (("train", "predictor", "salgan", "--data", scene_dataset.path, "--preset", "huge"), "unknown preset"),
        (("edit", "fgtransform", "--ckpt", editor_ckpt, "--image", image, "--mask", image,
          "--out", tmp_path / "c.png"), "not 'fgtransform'"),
        (("edit", "gazeshiftnet", "--ckpt", predictor_ckpt, "--image", image, "--out", tmp_path / "d.png"),
         "expected a editor"),
        (("edit", "gazeshiftnet", "--ckpt", editor_ckpt, "--image", image, "--out", tmp_path / "e.png"), "--mask"),
        (("predict", "--ckpt", tmp_path / "missing.pt", "--images", image, "--out", tmp_path / "p"), "does not exist"),
        (("predict", "--ckpt", truncated, "--images", image, "--out", tmp_path / "p"), "is it truncated"),
        (("edit", "gazeshiftnet", "--ckpt", editor_ckpt, "--image", image, "--mask", image, "--out",
          tmp_path / "x.xyz"), "unknown image format '.xyz'"),
    ]
    for args, expected in cases:
        code, _, err = run_cli(*args)
        assert code == 2 and expected in err and "Traceback" not in err, (args, err)
        assert len(err.strip().splitlines()) == 1, err
    empty = tmp_path / "empty_mask.png"
    cv2.imwrite(str(empty), np.zeros((24, 32), np.uint8))
    small = tmp_path / "small_mask.png"
    cv2.imwrite(str(small), np.ones((12, 16), np.uint8))
    for mask, expected in ((empty, "no foreground"), (small, "16×12 (W×H) but the image")):
        code, _, err = run_cli("edit", "gazeshiftnet", "--ckpt", editor_ckpt, "--image", image, "--mask", mask,
                               "--out", tmp_path / "f.png")
        assert code == 2 and expected in err, err


def test_missing_backbone_weights_is_one_clear_line(run_cli, scene_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def refuse(*args, **kwargs):
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(socket, "create_connection", refuse)
    code, _, err = run_cli("train", "predictor", "salgan", "--data", scene_dataset.path, "--steps", 1,
                           "--out", tmp_path / "run", "--device", "cpu")
    assert code == 2
    assert "ImageNet weights for vgg16 are missing" in err and "--weights random" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run/checkpoints").exists()


@pytest.mark.parametrize("name", ["fgtransform", "sagim"])
def test_target_map_editors_train_and_edit(run_cli, trained, scene_dataset, tmp_path, name):
    out = tmp_path / name
    code, stdout, err = run_cli("train", "editor", name, "--data", scene_dataset.path, "--preset", "tiny",
                                "--predictor", trained["predictor"] / "checkpoints/last.pt", "--steps", 2,
                                "--batch-size", 2, "--out", out, "--device", "cpu", "--no-progress")
    assert code == 0, err
    assert f"trained {name} to step 2" in stdout
    image = scene_dataset.path / "images/000001_x.png"
    target = scene_dataset.path / "maps/000001_y.npy"
    code, stdout, err = run_cli("edit", name, "--ckpt", out / "checkpoints/last.pt", "--image", image,
                                "--target-map", target, "--out", tmp_path / "edited.png", "--device", "cpu")
    assert code == 0, err
    assert cv2.imread(str(tmp_path / "edited.png")).shape == (24, 32, 3)
    assert json.loads((tmp_path / "edited.json").read_text())["target_map"] == str(target)
    # a map that is not a density, and an option this editor does not take: one line each
    bad = tmp_path / "bad.npy"
    np.save(bad, np.full((24, 32), 0.5, np.float32))
    for extra, expected in ((("--target-map", bad), "not a density"),
                            (("--target-map", target, "--strength", 0.5), "takes no option")):
        code, _, err = run_cli("edit", name, "--ckpt", out / "checkpoints/last.pt", "--image", image, *extra,
                               "--out", tmp_path / "x.png", "--device", "cpu")
        assert code == 2 and expected in err, err
