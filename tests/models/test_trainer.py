"""The Trainer on a tiny in-file regression model (CPU, seconds)."""

import csv
import math
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from torch import nn

from models.checkpoint import load_model, read_checkpoint
from models.config import load_config
from models.trainer import HookBase, Trainer, TrainingDiverged, resolve_device


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
        loss = nn.functional.mse_loss(self(batch["x"]), batch["y"])
        loss.backward()
        self.optimizer.step()
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


def test_hooks_are_called_in_order(tmp_path):
    calls = []

    class Recorder(HookBase):
        def before_train(self):
            calls.append("before")

        def after_step(self):
            calls.append(self.trainer.step)

        def after_train(self):
            calls.append("after")

    make_trainer(make_model(), tmp_path, max_steps=3, hooks=[Recorder()]).train()
    assert calls == ["before", 1, 2, 3, "after"]


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
