"""A render run owns its processes and its dataset folder (issue 24, item 1).

The kill tests run the real CLI in a subprocess (its own session), kill its main process while
a worker renders a pair, and watch /proc: every process the run had started must end, nothing
may be written afterwards, and a resume must then produce a dataset that validates.
"""
from __future__ import annotations

import json
import logging
import re
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from datagen.run_ownership import LOCK_NAME, RunLock, RunLocked, process_start

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
DEADLINE_SECONDS = 60  # generous: the machine may be busy; nothing asserts on speed
QUIET_POLLS = 15  # × 0.2 s of watching the folder after the run's processes are gone
# One worker and enough pairs that the run is far from done when its first pair is (the signal
# must land mid-run on a busy machine too: the test's own steps between are a few file reads).
PAIRS = 12
RENDER_ARGS = ["--pairs", str(PAIRS), "--workers", "1", "--width", "64", "--height", "48", "--samples", "16",
               "--objects", "3-5", "--quiet"]


def _cli(*args) -> list[str]:
    return [sys.executable, "-c", "from gazelab.cli import main; main()", *map(str, args)]


# --- the lock, without Blender ------------------------------------------------------------


def _write_lock(folder: Path, **record) -> None:
    base = {"pid": os.getpid(), "start": process_start(os.getpid()), "host": socket.gethostname(),
            "run_id": "0123456789abcdef", "started": "2024-01-01T00:00:00+00:00"}
    (folder / LOCK_NAME).write_text(json.dumps({**base, **record}))


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_lock_names_this_process_and_goes_on_release(tmp_path):
    with RunLock.acquire(tmp_path) as lock:
        record = json.loads((tmp_path / LOCK_NAME).read_text())
        assert record == lock.record
        assert (record["pid"], record["start"], record["host"]) == (os.getpid(), process_start(os.getpid()),
                                                                    socket.gethostname())
        token = lock.token()
        assert token.is_current()
        refusal = rf"{re.escape(str(tmp_path))} is being rendered by another run \(pid {os.getpid()} "
        with pytest.raises(RunLocked, match=refusal):
            RunLock.acquire(tmp_path)
    assert not (tmp_path / LOCK_NAME).exists()
    assert not token.is_current()
    with RunLock.acquire(tmp_path) as newer:  # a later run on the folder: the old token stays invalid
        assert not token.is_current() and newer.token().is_current()


@pytest.mark.parametrize("stale", ["dead pid", "pid reused"])
def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path, caplog, stale):
    if stale == "dead pid":
        _write_lock(tmp_path, pid=_dead_pid())
    else:  # a live pid whose process started later than the one that wrote the lock
        _write_lock(tmp_path, start="0:1")
    with caplog.at_level(logging.WARNING, logger="datagen.run_ownership"):
        with RunLock.acquire(tmp_path) as lock:
            assert lock.record["run_id"] != "0123456789abcdef"
            assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert [r.getMessage() for r in caplog.records if "taking over the stale run lock" in r.getMessage()]


def test_a_live_holder_without_flock_or_on_another_host_is_refused(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write_lock(tmp_path, pid=sleeper.pid, start=process_start(sleeper.pid))
        with pytest.raises(RunLocked, match=rf"pid {sleeper.pid} on {socket.gethostname()}"):
            RunLock.acquire(tmp_path)
    finally:
        sleeper.kill()
        sleeper.wait()
    _write_lock(tmp_path, host="render-node-7", pid=4242)
    elsewhere = rf"another host \(pid 4242 on render-node-7.*delete {re.escape(str(tmp_path / LOCK_NAME))}"
    with pytest.raises(RunLocked, match=elsewhere):
        RunLock.acquire(tmp_path)
    assert json.loads((tmp_path / LOCK_NAME).read_text())["host"] == "render-node-7"  # untouched


def test_runs_racing_for_a_stale_lock_cannot_both_take_it(tmp_path):
    _write_lock(tmp_path, pid=_dead_pid())
    racers = 8
    barrier, won, refused, locks = threading.Barrier(racers), [], [], []

    def race() -> None:
        barrier.wait()
        try:
            locks.append(RunLock.acquire(tmp_path))
            won.append(1)
        except RunLocked:
            refused.append(1)

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(won), len(refused)) == (1, racers - 1)
    assert json.loads((tmp_path / LOCK_NAME).read_text())["run_id"] == locks[0].record["run_id"]
    locks[0].release()


def test_a_second_render_is_refused_in_one_line_naming_the_folder_and_pid(run_cli, tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    with RunLock.acquire(out):
        code, _, err = run_cli("datagen", "render", "--out", out, *RENDER_ARGS)
        assert code == 2 and len(err.splitlines()) == 1
        assert f"{out} is being rendered by another run (pid {os.getpid()} on {socket.gethostname()}" in err
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing created or cleaned


# --- with Blender -------------------------------------------------------------------------


@pytest.mark.blender
def test_a_worker_whose_run_is_gone_writes_nothing(tmp_path):
    pytest.importorskip("bpy")
    from datagen.generator_config import GeneratorConfig
    from datagen.pipeline import open_for_generation
    from datagen.worker import render_pair

    config = GeneratorConfig.from_options(1, width=64, height=48, samples=4, objects="3-5")
    open_for_generation(tmp_path, config)
    with RunLock.acquire(tmp_path) as lock:
        token = lock.token()
    with RunLock.acquire(tmp_path):  # the folder now belongs to a newer run
        outcome = render_pair(config, str(tmp_path), 0, token)
    assert outcome.row is None and "no longer holds" in outcome.error
    assert [p for sub in ("images", "masks", "scenes") for p in (tmp_path / sub).iterdir()] == []


@linux_only
@pytest.mark.blender
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_killing_a_render_ends_its_processes_and_its_writes(tmp_path, signum):
    pytest.importorskip("bpy")
    out = tmp_path / "ds"
    render = _cli("datagen", "render", "--out", out, *RENDER_ARGS)
    log_path = tmp_path / "render.log"  # a file, not a pipe nobody reads while it renders
    with log_path.open("w") as log_file:
        # SIGINT as a terminal gives it: a test run started in the background (`make test &`) has it
        # ignored, which the render would inherit (Python keeps an ignored SIGINT ignored)
        process = subprocess.Popen(render, stdout=subprocess.DEVNULL, stderr=log_file, start_new_session=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    owned: dict[tuple[int, str], str] = {}
    try:
        _wait_for(lambda: (out / "scenes/000000.json").exists(), process, "a first complete pair", log_path)
        owned = _descendants(process.pid)  # the workers and the resource tracker, mid-pair
        assert any("spawn_main" in cmdline for cmdline in owned.values()), owned
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == process.pid
        refusal = rf"{re.escape(str(out))} is being rendered by another run \(pid {process.pid} on "
        with pytest.raises(RunLocked, match=refusal):  # a second run (the CLI's one-line refusal: above)
            RunLock.acquire(out)
        process.send_signal(signum)  # the main process only, not its session
        process.wait()
        deadline = time.monotonic() + DEADLINE_SECONDS
        # process_start: None once gone (or a zombie), another value once the pid is reused
        while alive := {key: cmdline for key, cmdline in owned.items() if process_start(key[0]) == key[1]}:
            assert time.monotonic() < deadline, f"still running {DEADLINE_SECONDS} s after the kill: {alive}"
            time.sleep(0.2)
        print(f"{signal.Signals(signum).name}: {len(owned)} processes of the run before, {len(alive)} after")
        before = _files(out)
        for _ in range(QUIET_POLLS):
            time.sleep(0.2)
            assert _files(out) == before, "a file changed after the run's processes were gone"
        assert len(list((out / "scenes").glob("*.json"))) < PAIRS  # killed mid-run
        assert (out / LOCK_NAME).exists() == (signum != signal.SIGINT)  # Ctrl-C releases the lock on its way out
    finally:  # a failed test leaves no process behind (on the old code the workers outlived the kill)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for pid, start in owned:
            if process_start(pid) == start:
                os.kill(pid, signal.SIGKILL)
    resume = subprocess.run(render, capture_output=True, text=True)
    assert resume.returncode == 0, resume.stderr
    assert ("taking over the stale run lock" in resume.stderr) == (signum != signal.SIGINT), resume.stderr
    assert not (out / LOCK_NAME).exists()
    validate = subprocess.run(_cli("dataset", "validate", out), capture_output=True, text=True)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert sorted(p.name for p in (out / "scenes").iterdir()) == [f"{i:06d}.json" for i in range(PAIRS)]


def _wait_for(condition, process: subprocess.Popen, what: str, log_path: Path) -> None:
    deadline = time.monotonic() + 4 * DEADLINE_SECONDS
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the render ended (exit {process.returncode}) before {what}: {log_path.read_text()}")
        assert time.monotonic() < deadline, f"no {what} after {4 * DEADLINE_SECONDS} s"
        time.sleep(0.05)


def _descendants(root_pid: int) -> dict[tuple[int, str], str]:
    """(pid, start) → command line of every process below `root_pid` now (start: pid reuse)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
    found, frontier = {}, [root_pid]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and (start := process_start(pid)) is not None:
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:  # it ended meanwhile
                    continue
                found[(pid, start)] = cmdline
                frontier.append(pid)
    return found


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}
