"""The Trainer under torchrun: 2 CPU processes with gloo train in sync."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent('''
    import json, os, sys
    from dataclasses import dataclass
    import torch
    from torch import nn
    from models.trainer import Trainer

    @dataclass
    class Config:
        lr: float = 3e-2

    class Tiny(nn.Module):
        name = "ddp_tiny"
        def __init__(self):
            super().__init__()
            self.config = Config()
            torch.manual_seed(int(os.environ["RANK"]))  # different inits: DDP must broadcast rank 0's
            self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
            self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.config.lr)
        def train_step(self, batch):
            self.optimizer.zero_grad()
            loss = nn.functional.mse_loss(self.net(batch["x"]), batch["y"])
            loss.backward()
            self.optimizer.step()
            return {"mse": loss.detach()}
        def optimizers(self):
            return {"net": self.optimizer}
        def networks(self):
            return {"net": self.net}

    class Data(torch.utils.data.Dataset):
        def __init__(self):
            g = torch.Generator().manual_seed(1)
            self.x = torch.randn(32, 4, generator=g)
            self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
        def __len__(self):
            return len(self.x)
        def __getitem__(self, i):
            return {"x": self.x[i], "y": self.y[i]}

    out = sys.argv[1]
    model = Tiny()
    trainer = Trainer(model, Data(), out_dir=out, max_steps=40, batch_size=4, log_every=5, ckpt_every=20,
                      device="cpu", progress=False)
    assert isinstance(model.net, nn.parallel.DistributedDataParallel)
    trainer.train()
    assert not isinstance(model.net, nn.parallel.DistributedDataParallel)  # unwrapped at the end
    rank = os.environ["RANK"]
    torch.save(model.state_dict(), os.path.join(out, f"rank{rank}.pt"))
    with open(os.path.join(out, f"rank{rank}.json"), "w") as handle:
        json.dump(trainer.loss_history, handle)
''')


@pytest.mark.slow
def test_two_cpu_processes_train_in_sync(tmp_path):
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone", str(script), str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    states = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
    history = json.loads((out / "rank0.json").read_text())
    other = json.loads((out / "rank1.json").read_text())
    assert [row["mse"] for row in history] == [row["mse"] for row in other]  # averaged over ranks
    assert history[-1]["mse"] < 0.3 * history[0]["mse"]
    assert (out / "checkpoints/step_000040.pt").is_file() and (out / "log.csv").is_file()
    assert not (out / "rank1").exists()
