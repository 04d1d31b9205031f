"""`gazelab doctor`: the table on this machine, its JSON, and the exit code for each `--for`."""
from __future__ import annotations

import importlib.util
import json
import platform
import re
import shlex
import shutil
import signal
import socket
import sys
from importlib import metadata

import pytest

from gazelab.commands import doctor

STATUSES = {"ok", "missing", "warn"}
CORE_PACKAGES = ["numpy", "scipy", "pandas", "opencv", "flask", "sqlalchemy", "alembic", "statsmodels"]
# The children import bpy or torch: give them as long as a busy 2-core machine may take.
SLOW_IMPORTS_S = 600
NO_TORCH = {"error": "ModuleNotFoundError: No module named 'torch'"}


def parse_table(out: str) -> dict[str, dict]:
    """check → {status, detail, fix}, read by the header's column offsets (so misaligned columns fail)."""
    lines = out.splitlines()
    header = lines[0]
    assert header.split() == ["check", "status", "detail", "fix"]
    starts = [header.index(name) for name in ("status", "detail", "fix")]
    rows = {}
    for line in lines[1:lines.index("")]:
        for start in starts:  # two spaces before every column: nothing spills into the next one
            assert len(line) <= start - 2 or line[start - 2:start] == "  ", line
        check, status, detail, fix = (line[a:b].strip() for a, b in zip([0, *starts], [*starts, None]))
        rows[check] = {"status": status, "detail": detail, "fix": fix}
    return rows


def report(run_cli, *args):
    """(exit code, {check: row}, the whole JSON) of `gazelab doctor --json ARGS`."""
    code, out, err = run_cli("doctor", "--json", *args)
    assert "Traceback" not in err
    data = json.loads(out)
    return code, {row["check"]: row for row in data["rows"]}, data


def fake_torch(tmp_path, cuda: bool):
    """A probe_torch stand-in: torch without GPUs; the VGG16 weights would lie in tmp_path."""
    def probe(device, timeout_s):
        unmet = device.startswith("cuda") and not cuda
        return doctor.Known({
            "version": "2.14.1", "cuda_build": None, "mps": False,
            "gpus": [{"name": "Test GPU", "precision": "bf16"}] if cuda else [],
            "device_error": f"device {device!r} was asked for but CUDA is not available" if unmet else None,
            "weights": {"vgg16": {"files": {"ImageNet": str(tmp_path / "vgg16.pth")},
                                  "urls": {"ImageNet": "https://example.org/vgg16.pth"}}},
        })
    return probe


@pytest.fixture
def fresh_sqlite(tmp_path):
    """A SQLite database URL whose file exists but holds no schema (an empty file is an empty database)."""
    path = tmp_path / "study.db"
    path.touch()
    return f"sqlite:///{path}"


@pytest.mark.blender
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("bpy") is None, reason="needs bpy (the render extra)")
def test_the_table_on_this_machine(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("GAZELAB_DATABASE_URL", f"sqlite:///{tmp_path / 'none.db'}")
    code, out, err = run_cli("doctor", "--out", tmp_path, "--timeout", SLOW_IMPORTS_S)
    rows = parse_table(out)
    expected = ["python", *CORE_PACKAGES, "torch", "torchvision", "lpips", "pytorch-fid", "bpy", "playwright",
                "dependencies", "bpy import", "cycles devices", "torch import", "cuda", "weights vgg16",
                "weights lpips-alex", "weights lpips-vgg", "weights fid-inception", "database", "chromium", "disk"]
    assert [check for check in expected if check not in rows] == []
    assert {row["status"] for row in rows.values()} <= STATUSES
    assert all(row["fix"] for row in rows.values() if row["status"] != "ok"), "every failed check names its fix"
    assert rows["python"]["status"] == "ok" and platform.python_version() in rows["python"]["detail"]
    assert rows["numpy"]["detail"] == metadata.version("numpy")
    # bpy, imported in the doctor's child Python, is the installed one; Cycles always has the CPU
    assert rows["bpy import"] == {"status": "ok", "detail": f"Blender {metadata.version('bpy')}", "fix": ""}
    assert "CPU (" in rows["cycles devices"]["detail"]
    assert rows["database"]["status"] == "missing" and rows["database"]["fix"] == "gazelab study init-db"
    assert not (tmp_path / "none.db").exists(), "the doctor never creates a database"
    assert rows["chromium"]["status"] == ("ok" if shutil.which("chromium") else "missing")
    # the database and weights are not core: the machine still passes
    assert code == 0 and out.rstrip().splitlines()[-1].startswith("core requirements met")


def test_json_rows_and_their_verdict(run_cli, tmp_path):
    code, rows, data = report(run_cli, "--for", "study", "--db", f"sqlite:///{tmp_path / 'none.db'}", "--out", tmp_path)
    assert set(data) == {"for", "ready", "blocking", "warnings", "rows"} and data["for"] == "study"
    assert list(rows) == ["python", *CORE_PACKAGES, "dependencies", "database", "disk"]
    for row in data["rows"]:
        assert set(row) == {"check", "status", "detail", "fix", "required_for"} and row["status"] in STATUSES
    missing = [r["check"] for r in data["rows"] if r["status"] == "missing" and "study" in r["required_for"]]
    assert data["blocking"] == missing
    assert data["blocking"] == ["database"] and data["ready"] is False and code == 1
    assert "core" in rows["numpy"]["required_for"] and rows["disk"]["required_for"] == []


def test_study_needs_a_migrated_database(run_cli, fresh_sqlite):
    from studyweb.db.revisions import head_revision

    code, rows, _ = report(run_cli, "--for", "study", "--db", fresh_sqlite)
    assert code == 1
    assert rows["database"]["status"] == "missing" and "not migrated" in rows["database"]["detail"]
    assert rows["database"]["fix"] == f"gazelab study init-db --db {shlex.quote(fresh_sqlite)}"

    code, _, _ = run_cli(*shlex.split(rows["database"]["fix"])[1:])  # the fix, as printed
    assert code == 0
    code, rows, data = report(run_cli, "--for", "study", "--db", fresh_sqlite)
    assert rows["database"]["status"] == "ok"
    assert rows["database"]["detail"].endswith(f"head revision {head_revision()}")
    assert code == 0 and data["ready"] is True


def test_a_missing_sqlite_file_is_reported_not_created(run_cli, tmp_path):
    path = tmp_path / "sub" / "study.db"
    code, rows, _ = report(run_cli, "--for", "study", "--db", f"sqlite:///{path}")
    assert code == 1 and rows["database"]["detail"] == f"no SQLite file at {path}"
    assert not path.parent.exists()


def test_train_without_torch_exits_1(run_cli, tmp_path, monkeypatch):
    monkeypatch.setattr(doctor, "probe_torch", lambda device, timeout_s: doctor.Known(NO_TORCH))
    code, rows, data = report(run_cli, "--for", "train", "--out", tmp_path)
    assert code == 1 and set(data["blocking"]) - {"torch", "torchvision"} == {"torch import"}  # packages, if absent
    assert rows["torch import"]["detail"] == NO_TORCH["error"]
    assert rows["torch import"]["fix"] == "pip install 'gazelab[models]'"
    assert rows["weights vgg16"]["status"] == "missing" and "weights vgg16" in data["warnings"]
    assert "database" not in rows and "bpy import" not in rows  # --for train shows what training needs


def test_cuda_is_required_only_when_asked_for(run_cli, tmp_path, monkeypatch):
    monkeypatch.setattr(doctor, "probe_torch", fake_torch(tmp_path, cuda=False))
    code, rows, data = report(run_cli, "--for", "train", "--out", tmp_path)
    assert code == 0 and rows["cuda"]["status"] == "missing" and "cuda" in data["warnings"]
    code, rows, data = report(run_cli, "--for", "train", "--device", "cuda", "--out", tmp_path)
    assert code == 1 and set(data["blocking"]) - {"torch", "torchvision"} == {"cuda"}
    assert "'cuda'" in rows["cuda"]["detail"]

    monkeypatch.setattr(doctor, "probe_torch", fake_torch(tmp_path, cuda=True))
    code, rows, data = report(run_cli, "--for", "train", "--device", "cuda", "--out", tmp_path)
    assert code == 0 and rows["cuda"] == {"check": "cuda", "status": "ok", "detail": "1 device(s): Test GPU", "fix": "",
                                          "required_for": ["train", "evaluate"]}
    assert rows["bf16"]["status"] == "ok"


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch (the models extra)")
def test_missing_weights_say_where_the_files_go(run_cli, tmp_path, monkeypatch):
    torch_home = tmp_path / "torch"
    checkpoints = torch_home / "hub" / "checkpoints"
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    code, rows, data = report(run_cli, "--for", "evaluate", "--out", tmp_path, "--timeout", SLOW_IMPORTS_S)
    names = ["weights vgg16", "weights lpips-alex", "weights lpips-vgg", "weights fid-inception"]
    for name in names:
        assert rows[name]["status"] == "missing", rows[name]
        assert f"not in {checkpoints}" in rows[name]["detail"]
        assert f"mkdir -p {checkpoints} && curl -L -o {checkpoints}/" in rows[name]["fix"]
    # without weights FID/LPIPS say "unavailable": a warning for evaluate, not a failure
    assert code == 0 and set(names) <= set(data["warnings"])

    target = re.search(r"-o (\S+) ", rows["weights vgg16"]["fix"]).group(1)
    checkpoints.mkdir(parents=True)
    with open(target, "wb") as file:
        file.write(b"\0" * 2**20)
    _, rows, _ = report(run_cli, "--for", "train", "--out", tmp_path, "--timeout", SLOW_IMPORTS_S)
    assert rows["weights vgg16"]["status"] == "ok" and rows["weights vgg16"]["detail"] == f"{target} (1 MiB)"


def test_free_disk_of_the_output_folder(run_cli, tmp_path):
    args = ("--for", "study", "--db", f"sqlite:///{tmp_path / 'none.db'}")
    code, rows, _ = report(run_cli, *args, "--out", tmp_path, "--min-free-gb", "0")
    free = float(re.match(r"([\d.]+) GiB free of [\d.]+ GiB at ", rows["disk"]["detail"]).group(1))
    assert rows["disk"]["status"] == "ok" and abs(free - shutil.disk_usage(tmp_path).free / 2**30) < 0.5

    _, rows, _ = report(run_cli, *args, "--out", tmp_path / "new" / "run", "--min-free-gb", "1e9")
    assert rows["disk"]["status"] == "warn" and "under --min-free-gb 1e+09" in rows["disk"]["detail"]
    assert f"not created yet; measured at {tmp_path}" in rows["disk"]["detail"]
    assert not (tmp_path / "new").exists()


def test_an_unreachable_ray_address_blocks_render(run_cli, tmp_path, monkeypatch):
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(doctor, "probe_blender",
                        lambda timeout_s: doctor.Known({"version": "5.0.1", "auto": "cpu", "devices": [["CPU", "x"]]}))
    code, rows, data = report(run_cli, "--for", "render", "--ray-address", f"127.0.0.1:{port}", "--out", tmp_path)
    assert code == 1 and set(data["blocking"]) - {"bpy", "ray"} == {"ray cluster"}
    assert rows["ray cluster"]["detail"].startswith(f"127.0.0.1:{port}: nothing answers there")


@pytest.mark.parametrize("args, fragment", [
    (["--for", "paint"], "'paint' is not one of 'render', 'train', 'study', 'evaluate'"),
    (["--device", "gpu"], "'gpu'; expected auto, cpu, cuda or cuda:N"),
])
def test_a_bad_option_is_one_line_and_exit_2(run_cli, args, fragment):
    code, out, err = run_cli("doctor", *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and fragment in err and "Traceback" not in err


def test_a_probe_that_hangs_is_killed_at_its_deadline():
    probe = doctor.Probe([sys.executable, "-c", "import time; time.sleep(600)"], timeout_s=1)
    assert probe.result() == {"error": "no answer within 1 s", "timed_out": True}
    assert probe._process.returncode == -signal.SIGKILL


def test_a_probe_answers_after_noise_or_says_why_not():
    noisy = f"print('Blender says hello'); print({doctor._MARK!r} + '{{\"version\": \"5.0.1\"}}'); print('bye')"
    assert doctor.Probe([sys.executable, "-c", noisy], timeout_s=SLOW_IMPORTS_S).result() == {"version": "5.0.1"}
    dying = "import sys; sys.stderr.write('Segmentation fault\\n'); sys.exit(139)"
    assert doctor.Probe([sys.executable, "-c", dying], timeout_s=SLOW_IMPORTS_S).result() == {
        "error": "the check's Python exited with code 139: Segmentation fault"}
