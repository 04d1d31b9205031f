"""The Trainer on a tiny in-file regression model (CPU, seconds): the loop, checkpoints, exact
resume, logs (CSV and TensorBoard), loader workers, mixed precision and frozen backbones."""

import csv
import logging
import math
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from torch import nn

from models import amp
from models.arrays import collate
from models.backbones import VGGFeatures
from models.batching import batch_stream
from models.checkpoint import load_model, load_model_state, read_checkpoint
from models.config import load_config
from models.trainer import HookBase, Trainer, TrainingDiverged, ValidationHook, resolve_device

REPO = Path(__file__).resolve().parents[2]


@dataclass
class TinyConfig:
    PRESETS: ClassVar[dict[str, dict]] = {"tiny": {"hidden": 8}}
    hidden: int = 32
    lr: float = 3e-2
    dropout: float = 0.1
    nan_at_step: int = 0  # 0: never; else train_step returns NaN at that (1-based) step


class TinyRegressor(nn.Module):
    """y = x·w + noise, fitted by an MLP with dropout (so the RNG matters) and Adam + StepLR."""

    name = "tiny_regressor"

    def __init__(self, config: TinyConfig):
        super().__init__()
        self.config = config
        self.net = nn.Sequential(nn.Linear(4, config.hidden), nn.ReLU(), nn.Dropout(config.dropout),
                                 nn.Linear(config.hidden, 1))
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=20, gamma=0.5)
        self.calls = 0
        self.weights_info = {"backbone": "none", "random_init": True}

    def forward(self, x):
        return self.net(x)

    def train_step(self, batch):
        self.calls += 1
        self.optimizer.zero_grad()
        loss = nn.functional.mse_loss(self(batch["x"]).float(), batch["y"])
        amp.backward(loss)
        amp.step(self.optimizer)
        if self.config.nan_at_step and self.calls >= self.config.nan_at_step:
            return {"mse": torch.tensor(float("nan"))}
        return {"mse": loss.detach()}

    def optimizers(self):
        return {"net": self.optimizer}

    def schedulers(self):
        return {"net": self.scheduler}

    def validation_step(self, batch):
        return {"mse": nn.functional.mse_loss(self(batch["x"]), batch["y"]).item()}

    def networks(self):
        return {"net": self.net}


class NoisyRegression(torch.utils.data.Dataset):
    """Map-style: fixed inputs, targets plus noise drawn from the global RNG (an 'augmentation')."""

    def __init__(self, n=24):
        g = torch.Generator().manual_seed(123)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i] + 0.01 * torch.randn(1)}


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def make_model(**overrides):
    torch.manual_seed(0)
    return TinyRegressor(load_config(TinyConfig, overrides, preset="tiny"))


def make_trainer(model, out_dir, **kwargs):
    options = dict(max_steps=10, batch_size=4, ckpt_every=5, log_every=2, device="cpu", progress=False)
    options.update(kwargs)
    return Trainer(model, NoisyRegression(), out_dir=out_dir, **options)


def test_loss_goes_down_and_logs_are_written(tmp_path):
    trainer = make_trainer(make_model(), tmp_path, max_steps=60, log_every=10)
    trainer.train()
    rows = read_rows(tmp_path / "log.csv")
    assert [int(r["step"]) for r in rows] == [10, 20, 30, 40, 50, 60]
    assert set(rows[0]) == {"step", "seconds", "mse", "lr"}
    assert float(rows[-1]["mse"]) < 0.3 * float(rows[0]["mse"])
    assert float(rows[-1]["lr"]) < 3e-2  # the trainer stepped the scheduler
    assert (tmp_path / "checkpoints/step_000060.pt").is_file()


def test_checkpoint_holds_everything_and_config_beside(tmp_path):
    make_trainer(make_model(), tmp_path).train()
    ckpt = read_checkpoint(tmp_path / "checkpoints/last.pt")
    assert ckpt["step"] == 10 and ckpt["model_name"] == "tiny_regressor"
    assert ckpt["config"] == {"hidden": 8, "lr": 3e-2, "dropout": 0.1, "nan_at_step": 0}
    assert set(ckpt["rng"]) == {"python", "numpy", "torch", "cuda"}
    assert ckpt["weights_info"] == {"backbone": "none", "random_init": True}
    assert set(ckpt["optimizers"]) == {"net"} and set(ckpt["schedulers"]) == {"net"}
    assert load_config(TinyConfig, tmp_path / "checkpoints/config.yaml") == TinyConfig(hidden=8)
    assert not list((tmp_path / "checkpoints").glob(".*tmp"))


def test_save_load_gives_identical_outputs(tmp_path):
    model = make_model()
    make_trainer(model, tmp_path).train()
    fresh = make_model()
    x = torch.randn(5, 4)
    model.eval(), fresh.eval()
    assert not torch.equal(model(x), fresh(x))
    load_model(tmp_path / "checkpoints/last.pt", fresh)
    assert torch.equal(model(x), fresh(x))


def test_resume_equals_uninterrupted_run(tmp_path):
    # 24 samples / batch 4 = 6 batches an epoch: 7 + 7 steps crosses an epoch boundary.
    full = make_model()
    make_trainer(full, tmp_path / "full", max_steps=14).train()

    first = make_model()
    make_trainer(first, tmp_path / "split", max_steps=7).train()
    second = make_model()
    trainer = make_trainer(second, tmp_path / "split", max_steps=14, resume=True)
    assert trainer.step == 7
    trainer.train()

    for (name, a), (_, b) in zip(full.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name
    state_a, state_b = full.optimizer.state_dict()["state"], second.optimizer.state_dict()["state"]
    for key in state_a:
        for field_name in state_a[key]:
            assert torch.equal(torch.as_tensor(state_a[key][field_name]), torch.as_tensor(state_b[key][field_name]))
    assert full.scheduler.state_dict() == second.scheduler.state_dict()
    steps = [int(r["step"]) for r in read_rows(tmp_path / "split/log.csv")]
    assert steps == [2, 4, 6, 7, 8, 10, 12, 14]


def test_validation_hook_runs_and_does_not_change_training(tmp_path):
    with_val = make_model()
    trainer = make_trainer(with_val, tmp_path / "a", val_data=NoisyRegression(8), val_every=3)
    trainer.train()
    without = make_model()
    make_trainer(without, tmp_path / "b").train()
    assert all(torch.equal(a, b) for a, b in zip(with_val.parameters(), without.parameters()))
    rows = read_rows(tmp_path / "a/val.csv")
    assert [int(r["step"]) for r in rows] == [3, 6, 9, 10]
    assert all(math.isfinite(float(r["mse"])) for r in rows)


class Recorder(HookBase):
    """Appends (its name, the event, the trainer's step) to `calls` at every hook point."""

    def __init__(self, name, calls):
        self.name, self.calls = name, calls

    def before_train(self):
        self.calls.append((self.name, "before_train", self.trainer.step))

    def before_step(self):
        self.calls.append((self.name, "before_step", self.trainer.step))

    def after_step(self):
        self.calls.append((self.name, "after_step", self.trainer.step))

    def after_train(self):
        self.calls.append((self.name, "after_train", self.trainer.step))


def test_hooks_are_called_in_order(tmp_path):
    calls = []
    trainer = make_trainer(make_model(), tmp_path, max_steps=2, val_data=NoisyRegression(4),
                           hooks=[Recorder("a", calls), Recorder("b", calls)])
    assert [type(hook).__name__ for hook in trainer.hooks] == [
        "StopOnNonFinite", "LRScheduler", "LogWriter", "ValidationHook", "Recorder", "Recorder", "Checkpointer",
        "ProgressBar"]
    trainer.train()
    assert calls == [("a", "before_train", 0), ("b", "before_train", 0),
                     ("a", "before_step", 0), ("b", "before_step", 0), ("a", "after_step", 1), ("b", "after_step", 1),
                     ("a", "before_step", 1), ("b", "before_step", 1), ("a", "after_step", 2), ("b", "after_step", 2),
                     ("b", "after_train", 2), ("a", "after_train", 2)]  # torn down in reverse order


def test_after_train_runs_after_a_failure_for_the_hooks_that_began(tmp_path):
    calls = []

    class Broken(HookBase):
        def before_train(self):
            raise RuntimeError("cannot start")

    trainer = make_trainer(make_model(), tmp_path / "a", hooks=[Recorder("a", calls), Broken(), Recorder("b", calls)])
    with pytest.raises(RuntimeError, match="cannot start"):
        trainer.train()
    assert calls == [("a", "before_train", 0), ("a", "after_train", 0)]  # "b" never began

    calls.clear()
    with pytest.raises(TrainingDiverged):
        make_trainer(make_model(nan_at_step=3), tmp_path / "b", hooks=[Recorder("a", calls)]).train()
    assert [c for c in calls if c[1] != "before_step"] == [
        ("a", "before_train", 0), ("a", "after_step", 1), ("a", "after_step", 2), ("a", "after_train", 3)]
    assert [int(r["step"]) for r in read_rows(tmp_path / "b/log.csv")] == [2]  # the NaN step was never logged


class Counter(HookBase):
    """Counts the steps it saw; the count is its state."""

    def __init__(self):
        self.count = 0

    def after_step(self):
        self.count += 1

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


def test_hook_state_is_kept_in_checkpoints_and_restored_on_resume(tmp_path):
    make_trainer(make_model(), tmp_path, max_steps=7, hooks=[Counter(), Counter()]).train()
    saved = read_checkpoint(tmp_path / "checkpoints/last.pt")["hooks"]
    assert saved == {"LogWriter": {"window": {}}, "Counter": {"count": 7}, "Counter#2": {"count": 7}}
    first, second = Counter(), Counter()
    trainer = make_trainer(make_model(), tmp_path, max_steps=9, resume=True, hooks=[first, second])
    assert (trainer.step, first.count, second.count) == (7, 7, 7)
    trainer.train()
    assert (first.count, second.count) == (9, 9)


def test_a_run_resumed_after_a_crash_logs_what_the_uninterrupted_run_logs(tmp_path):
    options = dict(max_steps=14, log_every=4, ckpt_every=5, val_data=NoisyRegression(8), val_every=3)
    make_trainer(make_model(), tmp_path / "full", **options).train()

    class PowerCut(HookBase):
        def after_step(self):
            if self.trainer.step == 7:
                raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        make_trainer(make_model(), tmp_path / "split", hooks=[PowerCut()], **options).train()
    ckpt = read_checkpoint(tmp_path / "split/checkpoints/last.pt")
    assert ckpt["step"] == 5 and list(ckpt["hooks"]["LogWriter"]["window"]) == ["mse"]  # step 5's loss, unlogged
    resumed = make_trainer(make_model(), tmp_path / "split", resume=True, **options)
    resumed.train()
    for log in ("log.csv", "val.csv"):
        full, split = ([{k: v for k, v in row.items() if k != "seconds"} for row in read_rows(tmp_path / run / log)]
                       for run in ("full", "split"))
        assert split == full, log
    assert [int(r["step"]) for r in read_rows(tmp_path / "split/log.csv")] == [4, 8, 12, 14]
    assert [row["step"] for row in resumed.hook(ValidationHook).history] == [3, 6, 9, 12, 14]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    model = make_model(nan_at_step=8)
    with pytest.raises(TrainingDiverged, match=r"step 8.*loss mse = nan"):
        make_trainer(model, tmp_path, max_steps=10, ckpt_every=5).train()
    ckpt = read_checkpoint(tmp_path / "checkpoints/last.pt")
    assert ckpt["step"] == 5
    assert all(torch.isfinite(t).all() for t in ckpt["model"].values())
    load_model(tmp_path / "checkpoints/last.pt", make_model(nan_at_step=8))


def test_checkpoint_of_another_model_or_config_is_refused(tmp_path):
    make_trainer(make_model(), tmp_path).train()
    path = tmp_path / "checkpoints/last.pt"

    other = make_model()
    other.name = "other_model"
    with pytest.raises(ValueError, match="'tiny_regressor'.*'other_model'"):
        load_model(path, other)
    with pytest.raises(ValueError, match=r"hidden: checkpoint 8 vs model 16"):
        load_model(path, make_model(hidden=16))
    with pytest.raises(ValueError, match="another config"):
        make_trainer(make_model(hidden=16), tmp_path, resume=True)


def test_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="not one of|not supported"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
        with pytest.raises(ValueError, match="CUDA is not available"):
            Trainer(make_model(), NoisyRegression(), out_dir="unused", max_steps=1, device="cuda")


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="max_steps"):
        make_trainer(make_model(), tmp_path, max_steps=0)
    with pytest.raises(ValueError, match="train_step"):
        Trainer(nn.Module(), NoisyRegression(), out_dir=tmp_path, max_steps=1)
    model = make_model()
    model.validation_step = None
    with pytest.raises(ValueError, match="validation_step"):
        make_trainer(model, tmp_path, val_data=NoisyRegression(4))
    with pytest.raises(FileNotFoundError):
        make_trainer(make_model(), tmp_path).resume()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_on_cuda(tmp_path):
    model = make_model()
    trainer = make_trainer(model, tmp_path, device="cuda", max_steps=20)
    assert trainer.bf16
    losses = trainer.train()
    assert math.isfinite(losses["mse"])
    assert next(model.parameters()).device.type == "cuda"


def test_only_the_newest_step_checkpoints_are_kept(tmp_path):
    (tmp_path / "three/checkpoints").mkdir(parents=True)
    (tmp_path / "three/checkpoints/step_best.pt").write_bytes(b"a user's file")  # not ours: left alone
    make_trainer(make_model(), tmp_path / "three", max_steps=50, ckpt_every=10).train()
    kept = sorted(p.name for p in (tmp_path / "three/checkpoints").glob("step_*.pt"))
    assert kept == ["step_000030.pt", "step_000040.pt", "step_000050.pt", "step_best.pt"]
    last = tmp_path / "three/checkpoints/last.pt"
    assert read_checkpoint(last)["step"] == 50
    assert last.stat().st_ino == (tmp_path / "three/checkpoints/step_000050.pt").stat().st_ino  # no second copy
    make_trainer(make_model(), tmp_path / "all", max_steps=30, ckpt_every=10, keep_checkpoints=0).train()
    assert len(list((tmp_path / "all/checkpoints").glob("step_*.pt"))) == 3
    with pytest.raises(ValueError, match="keep_checkpoints"):
        make_trainer(make_model(), tmp_path / "bad", keep_checkpoints=-1)


# -- the loader: epochs, workers ---------------------------------------------------------------------


class EpochNoisyRegression(NoisyRegression):
    """NoisyRegression whose items say which epoch the dataset was told, which process read them,
    and their index."""

    epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __getitem__(self, i):
        return {**super().__getitem__(i), "epoch": self.epoch, "pid": os.getpid(), "index": i}


def take(stream, n):
    return [next(stream) for _ in range(n)]


def test_epochs_reach_the_dataset_and_workers_read_the_same_batches():
    data = EpochNoisyRegression()  # 24 items at batch 4: 6 batches an epoch
    options = dict(batch_size=4, seed=5, collate_fn=collate)
    rng_before = torch.get_rng_state()
    in_process = take(batch_stream(data, 0, **options), 15)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the items' noise left the caller's generator alone
    assert [b["epoch"] for b in in_process] == [[epoch] * 4 for epoch in [0] * 6 + [1] * 6 + [2] * 3]
    assert in_process[0]["index"] != in_process[6]["index"]  # each epoch its own order
    stream = batch_stream(data, 0, num_workers=2, **options)
    in_workers = take(stream, 15)
    stream.close()
    resumed = batch_stream(data, 8, num_workers=2, **options)
    from_step_8 = take(resumed, 7)
    resumed.close()
    for expected, got in zip(in_process + in_process[8:], in_workers + from_step_8, strict=True):
        assert got["index"] == expected["index"] and got["epoch"] == expected["epoch"]
        assert torch.equal(got["y"], expected["y"])  # the random noise too: each batch's generators are seeded
    pids = {pid for batch in in_workers for pid in batch["pid"]}
    assert len(pids) == 2 and os.getpid() not in pids  # the same two workers served all three epochs


def test_training_with_workers_equals_in_process_and_resumes_exactly(tmp_path):
    def run(out_dir, max_steps, workers, resume=False):
        model = make_model()
        Trainer(model, EpochNoisyRegression(), out_dir=out_dir, max_steps=max_steps, batch_size=4, ckpt_every=5,
                log_every=2, device="cpu", progress=False, num_workers=workers, resume=resume).train()
        return model

    in_process = run(tmp_path / "a", 14, 0)
    run(tmp_path / "b", 7, 2)
    resumed = run(tmp_path / "b", 14, 2, resume=True)
    for (name, a), (_, b) in zip(in_process.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


# -- mixed precision -----------------------------------------------------------------------------------


def test_precision_is_chosen_by_native_bf16_support(monkeypatch):
    asked = []

    def bf16_supported(answer):
        def is_bf16_supported(including_emulation=True):
            asked.append(including_emulation)
            return answer

        return is_bf16_supported

    cuda = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", bf16_supported(True))
    assert amp.choose_precision("auto", cuda) == "bf16" and amp.choose_precision("bf16", cuda) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", bf16_supported(False))
    assert amp.choose_precision("auto", cuda) == "fp16"
    with pytest.raises(ValueError, match="'bf16' was asked for but cuda:0 has no native bfloat16"):
        amp.choose_precision("bf16", cuda)
    assert asked and not any(asked)  # emulated bf16 (pre-Ampere GPUs report it) does not count
    assert amp.choose_precision("auto", torch.device("cpu")) == "fp32"
    assert amp.choose_precision("fp32", cuda) == "fp32"
    with pytest.raises(ValueError, match="precision 'fp8' is not one of auto, bf16, fp16, fp32"):
        amp.choose_precision("fp8", cuda)


def test_fp16_with_loss_scaling_resumes_exactly(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="models.trainer")
    full = make_model()
    trainer = make_trainer(full, tmp_path / "full", max_steps=14, precision="fp16")
    assert "float16 autocast with a GradScaler on cpu" in caplog.text and not trainer.bf16
    losses = trainer.train()
    assert math.isfinite(losses["mse"])

    make_trainer(make_model(), tmp_path / "split", max_steps=7, precision="fp16").train()
    saved = read_checkpoint(tmp_path / "split/checkpoints/last.pt")["precision"]
    assert saved["mode"] == "fp16" and saved["scaler"]["scale"] > 0
    second = make_model()
    resumed = make_trainer(second, tmp_path / "split", max_steps=14, precision="fp16", resume=True)
    resumed.train()
    # without the scaler's state the resumed run would restart its scale and growth count
    assert resumed.precision.scaler.state_dict() == trainer.precision.scaler.state_dict()
    for (name, a), (_, b) in zip(full.state_dict().items(), second.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


class PlainStepRegressor(TinyRegressor):
    """Steps its optimizer itself, bypassing models.amp."""

    def train_step(self, batch):
        self.optimizer.zero_grad()
        loss = nn.functional.mse_loss(self(batch["x"]).float(), batch["y"])
        loss.backward()
        self.optimizer.step()
        return {"mse": loss.detach()}


def test_fp16_refuses_a_model_that_steps_its_optimizer_itself(tmp_path, caplog):
    model = PlainStepRegressor(load_config(TinyConfig, {}, preset="tiny"))
    with pytest.raises(amp.AmpProtocolError, match=r"tiny_regressor stepped optimizer 'net'.*models\.amp\.step"):
        make_trainer(model, tmp_path / "fp16", precision="fp16").train()
    caplog.set_level(logging.INFO, logger="models.trainer")
    make_trainer(PlainStepRegressor(load_config(TinyConfig, {}, preset="tiny")), tmp_path / "fp32").train()
    assert "float32 on cpu (no autocast)" in caplog.text  # where a direct step is harmless
    with pytest.raises(ValueError, match="bf16=False asks for float32 but precision='fp16'"):
        make_trainer(make_model(), tmp_path / "bad", bf16=False, precision="fp16")


def test_every_training_step_in_models_goes_through_amp():
    """fp16 needs each backward and optimizer step of a train_step to pass through models.amp."""
    import ast

    allowed = {"models/amp.py", "models/editors/hag.py"}  # hag: per-image optimisation at edit time, not training
    direct = []
    for path in sorted((REPO / "models").rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            owner = ast.unparse(node.func.value)
            if owner != "amp" and (node.func.attr == "backward" or (node.func.attr == "step" and "optim" in owner)):
                direct.append(f"{relative}:{node.lineno}: {ast.unparse(node)}")
    assert [line for line in direct if line.split(":")[0] not in allowed] == []
    assert any(line.startswith("models/editors/hag.py") for line in direct)  # the scan sees direct calls


# -- TensorBoard ---------------------------------------------------------------------------------------


def test_tensorboard_scalars_match_the_csv_logs(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    make_trainer(make_model(), tmp_path / "on", val_data=NoisyRegression(8), val_every=5).train()
    events = EventAccumulator(str(tmp_path / "on/tensorboard"))
    events.Reload()
    assert {"train/mse", "train/lr", "val/mse"} <= set(events.Tags()["scalars"])
    rows = read_rows(tmp_path / "on/log.csv")
    for tag, column in (("train/mse", "mse"), ("train/lr", "lr")):
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [int(r["step"]) for r in rows] == [2, 4, 6, 8, 10]
        assert [s.value for s in scalars] == pytest.approx([float(r[column]) for r in rows], rel=1e-6)
    val_rows = read_rows(tmp_path / "on/val.csv")
    assert [(s.step, pytest.approx(s.value, rel=1e-6)) for s in events.Scalars("val/mse")] == \
        [(int(r["step"]), float(r["mse"])) for r in val_rows]
    make_trainer(make_model(), tmp_path / "off", tensorboard=False).train()
    assert (tmp_path / "off/log.csv").is_file() and not (tmp_path / "off/tensorboard").exists()


def test_without_the_tensorboard_package_the_logs_are_csv_and_the_log_says_how_to_add_it(tmp_path, monkeypatch,
                                                                                         caplog):
    import models.run_logs

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # an import of it fails
    monkeypatch.setattr(models.run_logs, "_TB_NOTICE_GIVEN", False)
    caplog.set_level(logging.WARNING, logger="models.run_logs")
    make_trainer(make_model(), tmp_path, val_data=NoisyRegression(8), val_every=5).train()
    assert "tensorboard package is not installed" in caplog.text and "`pip install tensorboard`" in caplog.text
    assert [int(r["step"]) for r in read_rows(tmp_path / "log.csv")] == [2, 4, 6, 8, 10]
    assert [int(r["step"]) for r in read_rows(tmp_path / "val.csv")] == [5, 10]
    assert not (tmp_path / "tensorboard").exists()


# -- frozen backbones ------------------------------------------------------------------------------------


@dataclass
class PerceptualConfig:
    lr: float = 1e-2
    backbone_weights: str = "random"


class PerceptualToy(nn.Module):
    """A 3×3 convolution trained through a frozen VGG16's relu2_2 features (a perceptual loss)."""

    name = "perceptual_toy"

    def __init__(self, config: PerceptualConfig):
        super().__init__()
        self.config = config
        self.head = nn.Conv2d(3, 3, 3, padding=1)
        self.vgg = VGGFeatures("vgg16", ("relu2_2",), weights=config.backbone_weights)
        self.optimizer = torch.optim.Adam(self.head.parameters(), lr=config.lr)
        self.weights_info = {"backbone": self.vgg.weights_info}

    def train_step(self, batch):
        self.optimizer.zero_grad()
        with torch.no_grad():
            target = self.vgg(batch["y"])["relu2_2"]
        loss = nn.functional.mse_loss(self.vgg(self.head(batch["x"]))["relu2_2"].float(), target.float())
        amp.backward(loss)
        amp.step(self.optimizer)
        return {"perceptual": loss.detach()}

    def optimizers(self):
        return {"head": self.optimizer}


class ImagePairs(torch.utils.data.Dataset):
    def __init__(self, n=8):
        self.x = torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(3))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.x[i].flip(-1)}


def make_toy(weights="random"):
    torch.manual_seed(0)
    return PerceptualToy(PerceptualConfig(backbone_weights=str(weights)))


TOY_OPTIONS = dict(batch_size=2, ckpt_every=3, log_every=3, device="cpu", progress=False)


def test_checkpoints_leave_frozen_backbones_out_and_resume_rebuilds_them(tmp_path):
    full = make_toy()
    Trainer(full, ImagePairs(), out_dir=tmp_path / "full", max_steps=6, **TOY_OPTIONS).train()
    Trainer(make_toy(), ImagePairs(), out_dir=tmp_path / "split", max_steps=3, **TOY_OPTIONS).train()
    path = tmp_path / "split/checkpoints/last.pt"
    ckpt = read_checkpoint(path)
    vgg_keys = sorted(key for key in full.state_dict() if key.startswith("vgg."))
    assert vgg_keys and sorted(ckpt["model"]) == ["head.bias", "head.weight"]
    assert sorted(ckpt["frozen"]["vgg"]["keys"]) == vgg_keys
    assert ckpt["frozen"]["vgg"]["weights_info"] == {"arch": "vgg16", "source": "random", "file": None}
    with_vgg = {**ckpt, "model": {**ckpt["model"], **{key: full.state_dict()[key] for key in vgg_keys}}}
    torch.save(with_vgg, tmp_path / "with_vgg.pt")  # what the checkpoint held before
    assert path.stat().st_size * 10 < (tmp_path / "with_vgg.pt").stat().st_size

    second = make_toy()
    with torch.no_grad():
        for parameter in second.vgg.parameters():
            parameter.zero_()  # so that only a rebuild from the record can bring the weights back
    trainer = Trainer(second, ImagePairs(), out_dir=tmp_path / "split", max_steps=6, resume=True, **TOY_OPTIONS)
    assert torch.equal(second.vgg.features[0].weight, full.vgg.features[0].weight)
    trainer.train()
    for (name, a), (_, b) in zip(full.state_dict().items(), second.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_a_left_out_backbone_is_rebuilt_when_it_runs_and_checked(tmp_path):
    weights = tmp_path / "vgg16_relu2_2.pt"
    generator = torch.Generator().manual_seed(1)
    state = VGGFeatures("vgg16", ("relu2_2",), weights="random").state_dict()
    torch.save({k: v + 0.01 * torch.randn(v.shape, generator=generator) for k, v in state.items()}, weights)
    model = make_toy(weights)
    Trainer(model, ImagePairs(), out_dir=tmp_path / "run", max_steps=2, **TOY_OPTIONS).train()
    ckpt = read_checkpoint(tmp_path / "run/checkpoints/last.pt")
    assert ckpt["frozen"]["vgg"]["weights_info"]["source"] == str(weights)
    x = torch.rand(1, 3, 16, 16)

    fresh = make_toy("random")  # as load_trained builds it: no pretrained weights
    load_model_state(fresh, ckpt, lazy=True)
    assert torch.equal(fresh.head(x), model.head(x))  # what does not run the backbone works without it
    weights.rename(tmp_path / "moved.pt")
    with pytest.raises(FileNotFoundError, match=r"leaves out the frozen backbone 'vgg'.*vgg16_relu2_2\.pt"):
        fresh.vgg(x)
    (tmp_path / "moved.pt").rename(weights)
    assert torch.equal(fresh.vgg(x)["relu2_2"], model.vgg(x)["relu2_2"])

    torch.save({k: v + 1 for k, v in torch.load(weights).items()}, weights)  # other weights, same file name
    with pytest.raises(ValueError, match=r"'vgg' rebuilt from .*vgg16_relu2_2\.pt.* not the one it was trained with"):
        load_model_state(make_toy("random"), ckpt)


def test_fgtransform_checkpoint_holds_no_vgg_and_resumes_exactly(tmp_path, one_thread):
    from models.base import load_trained
    from support.target_map_editors import fixed_batch, make_editor

    batch = fixed_batch()
    items = [{"image": batch["image"][i], "target_map": batch["target_map"][i]} for i in range(2)]
    options = dict(batch_size=2, ckpt_every=1, device="cpu", progress=False)
    full = make_editor("fgtransform")
    Trainer(full, items, out_dir=tmp_path / "full", max_steps=2, **options).train()
    step_1 = tmp_path / "full/checkpoints/step_000001.pt"
    ckpt = read_checkpoint(step_1)
    vgg_keys = sorted(key for key in full.state_dict() if key.startswith("vgg."))
    assert vgg_keys and not set(vgg_keys) & set(ckpt["model"]) and sorted(ckpt["frozen"]["vgg"]["keys"]) == vgg_keys
    with_vgg = {**ckpt, "model": {**ckpt["model"], **{key: full.state_dict()[key] for key in vgg_keys}}}
    torch.save(with_vgg, tmp_path / "with_vgg.pt")
    assert step_1.stat().st_size * 10 < (tmp_path / "with_vgg.pt").stat().st_size

    (tmp_path / "split/checkpoints").mkdir(parents=True)
    shutil.copy(step_1, tmp_path / "split/checkpoints/last.pt")
    resumed = make_editor("fgtransform")
    Trainer(resumed, items, out_dir=tmp_path / "split", max_steps=2, resume=True, **options).train()
    for (name, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name

    loaded = load_trained(tmp_path / "full/checkpoints/last.pt", kind="editor")
    full.eval()
    assert torch.equal(loaded.edit(batch["image"], batch["target_map"]), full.edit(batch["image"], batch["target_map"]))


# -- on a GPU ------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp16_runs_on_cuda_without_native_bf16(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    caplog.set_level(logging.INFO, logger="models.trainer")
    model = make_model()
    trainer = make_trainer(model, tmp_path, device="cuda", max_steps=20)
    assert trainer.precision.mode == "fp16" and "this GPU has no native bfloat16" in caplog.text
    losses = trainer.train()
    assert math.isfinite(losses["mse"])
    assert read_checkpoint(tmp_path / "checkpoints/last.pt")["precision"]["scaler"]["scale"] > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_workers_pin_batches_for_cuda(tmp_path):
    stream = batch_stream(NoisyRegression(), 0, batch_size=4, num_workers=2, collate_fn=collate, pin_memory=True)
    assert next(stream)["x"].is_pinned()
    stream.close()
    model = make_model()
    make_trainer(model, tmp_path, device="cuda", num_workers=2, max_steps=8).train()
    assert next(model.parameters()).device.type == "cuda"
