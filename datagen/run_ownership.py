"""A render run owns its dataset folder and its worker processes, and nothing outlives it.

- `RunLock`: `.gazelab-run.lock` in the dataset folder names the run writing there (pid, that
  process's start time, host, a random run id). Another run on the folder is refused while the
  holder lives; a lock whose process is gone, or whose pid now belongs to a newer process, is
  stale and taken over. `fcntl.flock` serialises the check-and-write, so two runs racing for
  the folder cannot both win. POSIX only (Linux, macOS), like the rest of the render path.
- `RunToken`: what a worker (local process or Ray task) carries to check, just before it
  commits a file, that its run still holds the lock: a worker never writes for a run that is gone.
- `die_with_parent`: a local worker is killed when its parent process ends, SIGKILL included.
"""
from __future__ import annotations

import ctypes
import datetime as dt
import fcntl
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LOCK_NAME = ".gazelab-run.lock"
_PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
PARENT_POLL_SECONDS = 1.0  # the watchdog's period where PR_SET_PDEATHSIG does not exist


class RunLocked(ValueError):
    """The dataset folder is held by another run that is (or may be) alive."""


class RunGone(RuntimeError):
    """The run a worker renders for no longer holds its dataset folder; the worker writes nothing."""


@dataclass(frozen=True)
class RunToken:
    """A run's identity as its workers see it (picklable, for worker processes and Ray tasks)."""

    lock_path: str
    run_id: str
    pid: int
    start: str
    host: str

    def is_current(self) -> bool:
        """True while the lock file names this run and, seen from the run's own host, the run's
        process is alive (a SIGKILLed run leaves its lock file behind; its pid then tells)."""
        record = _read_record(Path(self.lock_path))
        if record is None or record.get("run_id") != self.run_id:
            return False
        return self.host != socket.gethostname() or process_start(self.pid) == self.start

    def check(self) -> None:
        """Raise RunGone unless `is_current()`; call it right before each commit of a file."""
        if not self.is_current():
            raise RunGone(f"run {self.run_id} (pid {self.pid} on {self.host}) no longer holds {self.lock_path};"
                          " nothing written")


class RunLock:
    """The held lock of one run on one dataset folder; `release()` (or leaving `with`) frees it."""

    def __init__(self, path: Path, fd: int, record: dict[str, Any]) -> None:
        self.path = path
        self.record = record
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, folder) -> "RunLock":
        """Take `folder`'s run lock (the folder must exist). RunLocked names the live holder;
        a stale lock is taken over with a warning."""
        folder = Path(folder)
        path = folder / LOCK_NAME
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunLocked(_refusal(folder, path, _read_record(path))) from None
            if _same_file(fd, path):
                break
            os.close(fd)  # the holder removed this file (released) after we opened it: take the new one
        try:
            holder = _parse(os.pread(fd, 65536, 0))
            if holder is not None:
                if _holder_alive(holder) is not False:
                    raise RunLocked(_refusal(folder, path, holder))
                log.warning("taking over the stale run lock of %s: pid %s on %s (started %s) is gone",
                            folder, holder.get("pid"), holder.get("host"), holder.get("started"))
            record = {
                "pid": os.getpid(),
                "start": process_start(os.getpid()),
                "host": socket.gethostname(),
                "run_id": secrets.token_hex(8),
                "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            }
            data = json.dumps(record).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, record)

    def token(self) -> RunToken:
        record = self.record
        return RunToken(str(self.path), record["run_id"], record["pid"], record["start"], record["host"])

    def release(self) -> None:
        """Remove the lock file (still ours: we hold the flock) and close it; idempotent."""
        if self._fd is None:
            return
        try:
            if _same_file(self._fd, self.path):
                self.path.unlink()
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def process_start(pid: int) -> str | None:
    """When process `pid` started, as an opaque string that differs for a later process with the
    same pid; None if no such process runs (a zombie counts as gone: it runs no code)."""
    if sys.platform.startswith("linux"):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        except (FileNotFoundError, ProcessLookupError):
            return None
        fields = stat[stat.rindex(")") + 2:].split()  # the name in (...) may hold spaces
        state, start_ticks = fields[0], fields[19]  # fields 3 and 22 of proc(5)
        return None if state in "ZXx" else f"{boot}:{start_ticks}"  # ticks count from boot
    result = subprocess.run(["ps", "-o", "stat=,lstart=", "-p", str(pid)], capture_output=True, text=True)
    state, _, started = result.stdout.strip().partition(" ")
    return None if result.returncode or not state or state.startswith("Z") else started.strip()


def die_with_parent(parent_pid: int) -> None:
    """Make this process end when its parent `parent_pid` ends, however the parent ends.

    Linux: PR_SET_PDEATHSIG sends SIGKILL (Blender may be deep in C code, and a worker only
    writes through temp files and renames, so no partial file stays visible). The signal fires
    when the parent *thread* that spawned us exits: a pool spawns from the thread that submits
    (the one running `generate`) or, replacing recycled workers, its manager thread; both live
    until the pool is shut down. Elsewhere a watchdog thread polls the parent pid.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    else:
        threading.Thread(target=_watch_parent, args=(parent_pid,), name="gazelab-parent-watchdog", daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the above took effect: no signal will come
        os._exit(1)


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_SECONDS)
    os.kill(os.getpid(), signal.SIGKILL)


def _holder_alive(record: dict[str, Any]) -> bool | None:
    """Whether the lock's process runs; None when it is on another host (not checkable here)."""
    if record.get("host") != socket.gethostname():
        return None
    pid = record.get("pid")
    return isinstance(pid, int) and process_start(pid) == record.get("start")


def _refusal(folder: Path, path: Path, holder: dict[str, Any] | None) -> str:
    if holder is None:  # it holds the flock but has not written its record yet
        return f"{folder} is being rendered by another run (pid not yet recorded in {path}); nothing was changed"
    where = f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"
    if holder.get("host") != socket.gethostname():
        return (f"{folder} is being rendered by a run on another host ({where}); nothing was changed"
                f" — if that run is gone, delete {path}")
    return f"{folder} is being rendered by another run ({where}); nothing was changed — wait for it or stop it"


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        return _parse(path.read_bytes())
    except FileNotFoundError:
        return None


def _parse(data: bytes) -> dict[str, Any] | None:
    """The lock's record; None for an empty or unreadable file (a crash while writing it)."""
    try:
        record = json.loads(data)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)
