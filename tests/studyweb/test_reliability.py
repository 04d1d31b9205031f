"""Reliability of the real server: gunicorn (2 gthread workers) running studyweb.create_app(),
simulated participants (`studyweb.simulate.run_participant`) through its HTTP API.

- 50 participants at once, 20% of save answers dropped (the client resends the same key), on
  SQLite WAL and on PostgreSQL: everyone completes, the database holds exactly the clicks sent,
  no click twice, one SaveRecord per distinct save, and the server logged no internal error.
- The server SIGKILLed (master and workers) mid-run and restarted on the same port and
  database: the clients retry through the outage and every participant still finishes with
  nothing lost or duplicated.
- The master alone SIGKILLed: its workers leave (the shipped gunicorn config), so a restart
  binds the same port.
The tests assert on what was stored, never on timing: a loaded machine may slow any request,
and the clients retry whatever fails.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor, wait

import pytest
import requests
from sqlalchemy import func, select

from datadir import Dataset
from studyweb import db
from studyweb.experiments import create_experiment
from studyweb.simulate import run_participant

log = logging.getLogger(__name__)
pytestmark = pytest.mark.slow

EXPERIMENT = "load"
PAIRS = 30  # x and y sides: 60 stimuli
PER_PARTICIPANT = 6  # + 1 practice trial = 7 saves per participant
OBSERVERS = 6  # 60 x 6 = 360 observer slots >= 50 x 6


@pytest.fixture
def database_url(request, tmp_path):
    """The study database: a SQLite file (WAL) in tmp_path, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    return request.getfixturevalue("postgres_db")


DATABASES = pytest.mark.parametrize(
    "database_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


@pytest.fixture
def experiment(tmp_path, write_pair, database_url):
    """Experiment 'load' (BubbleView, 30 pairs of 32x24 px, K=6, M=6) in the migrated database."""
    dataset = Dataset.create(tmp_path / "ds", "load", seed=5)
    dataset.add_pairs([write_pair(dataset.path, f"{i:06d}", size=(32, 24)) for i in range(PAIRS)])
    db.init_db(database_url)
    engine = db.make_engine(database_url)
    try:
        with db.session_factory(engine)() as session:
            create_experiment(session, dataset.path, EXPERIMENT, per_participant=PER_PARTICIPANT,
                              observers=OBSERVERS, completion_code="DONE")
            session.commit()
    finally:
        engine.dispose()
    return EXPERIMENT


@DATABASES
def test_fifty_concurrent_participants_lose_and_duplicate_nothing(gunicorn, database_url, experiment):
    server = gunicorn(database_url)
    n = 50
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(run_participant, server.url, experiment, seed, drop_rate=0.2) for seed in range(n)]
        results = [future.result() for future in futures]
    elapsed = time.perf_counter() - started

    _assert_everyone_finished_with_nothing_lost(database_url, results, n)
    assert "internal error" not in server.log_tail(10**7)  # no request failed inside the app
    assert sum(r["resends"] for r in results) > 0  # the dropped answers really were resent
    log.info("%s: %d participants, %d clicks sent = stored, %d saves (+%d resent) in %.1f s",
             database_url.split(":")[0], n, sum(r["clicks_sent"] for r in results),
             sum(r["saves"] for r in results), sum(r["resends"] for r in results), elapsed)


@DATABASES
def test_sigkill_mid_run_and_restart_loses_nothing(gunicorn, database_url, experiment):
    server = gunicorn(database_url)
    n = 20
    total_saves = n * (PER_PARTICIPANT + 1)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=n) as pool:
        # pause_s spreads each participant over ~2 s, so the kill lands while saves are in flight.
        futures = [pool.submit(run_participant, server.url, experiment, seed, drop_rate=0.2, recruit_id=f"kill-{seed}",
                               pause_s=0.3, retry_for_s=30.0) for seed in range(n)]
        stored_at_kill = _wait_for_saves(database_url, total_saves // 3, futures)
        server.kill()
        killed_at = time.perf_counter()
        assert stored_at_kill < total_saves and not all(f.done() for f in futures), "the run ended before the kill"
        time.sleep(1.0)  # the clients meet refused connections and back off
        server.start()
        restarted_in = time.perf_counter() - killed_at
        done, _ = wait(futures, timeout=60)
        assert len(done) == n, "participants still running 60 s after the restart"
        results = [future.result() for future in futures]
    elapsed = time.perf_counter() - started

    _assert_everyone_finished_with_nothing_lost(database_url, results, n)
    log.info("%s kill: %d participants, killed at %d/%d saves, back in %.1f s; %d clicks sent = stored, "
             "%d retries, %.1f s in all", database_url.split(":")[0], n, stored_at_kill, total_saves,
             restarted_in, sum(r["clicks_sent"] for r in results), sum(r["retries"] for r in results), elapsed)


def test_workers_leave_when_their_master_is_killed(gunicorn, tmp_path):
    url = f"sqlite:///{tmp_path / 'orphans.db'}"
    db.init_db(url)
    server = gunicorn(url)
    workers = server.worker_pids()
    assert len(workers) == 2
    server.kill_master()
    # Without the config's parent-death signal the orphans served on for 20-25 s; a generous
    # bound, far above the moment it takes them to leave even on a loaded machine.
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers), f"workers {workers} outlived their master"
    server.start()  # the same port binds again
    assert requests.get(f"{server.url}/api/v1/session", timeout=30).status_code == 401


GRANDCHILD = """
import signal, time
from studyweb.gunicorn_conf import _exit_with_parent
_exit_with_parent(signal.SIGTERM)
print("ready", flush=True)
time.sleep(120)
"""
MIDDLE = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=subprocess.PIPE)
child.stdout.readline()
print(child.pid, flush=True)
time.sleep(120)
"""


def test_the_gunicorn_config_makes_a_worker_leave_with_its_parent():
    """What post_fork sets up in each worker, in isolation: a process that asked for it is
    ended when its parent is SIGKILLed, instead of sleeping on (120 s here)."""
    import os
    import signal
    import subprocess
    import sys

    with subprocess.Popen([sys.executable, "-c", MIDDLE, GRANDCHILD], stdout=subprocess.PIPE) as middle:
        grandchild = int(middle.stdout.readline())
        assert _alive(grandchild)
        os.kill(middle.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = _alive(grandchild)
    if alive:
        os.kill(grandchild, signal.SIGKILL)
    assert not alive, "the process outlived its parent"


def _alive(pid: int) -> bool:
    """Whether `pid` is still a running (not zombie) process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def _wait_for_saves(url: str, at_least: int, futures, timeout_s: float = 30.0) -> int:
    """Poll the database until `at_least` saves are stored, or every participant has ended;
    returns how many saves there were."""
    engine = db.make_engine(url)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            with engine.connect() as connection:
                stored = connection.scalar(select(func.count()).select_from(db.SaveRecord))
            failed = [f.exception() for f in futures if f.done() and f.exception() is not None]
            if failed:
                raise failed[0]
            if stored >= at_least or all(f.done() for f in futures):
                return stored
            if time.monotonic() > deadline:
                raise AssertionError(f"only {stored} of {at_least} saves stored after {timeout_s} s")
            time.sleep(0.02)
    finally:
        engine.dispose()


def _assert_everyone_finished_with_nothing_lost(url: str, results: list[dict], n: int) -> None:
    """Every participant complete; per participant the stored clicks equal the clicks sent; no
    (trial, t_ms, x, y) twice; one SaveRecord per distinct save; every trial done."""
    assert [r["status"] for r in results] == ["complete"] * n
    engine = db.make_engine(url)
    try:
        with db.session_factory(engine)() as session:
            participants = session.scalars(select(db.Participant)).all()
            assert sorted(p.id for p in participants) == sorted(r["participant_id"] for r in results)
            assert {(p.status, p.source) for p in participants} == {("complete", "simulated")}
            stored = dict(session.execute(
                select(db.Trial.participant_id, func.count(db.Click.id))
                .join(db.Click, db.Click.trial_id == db.Trial.id).group_by(db.Trial.participant_id)).all())
            assert {r["participant_id"]: r["clicks_sent"] for r in results} == stored
            duplicates = session.execute(
                select(db.Click.trial_id, db.Click.t_ms, db.Click.x, db.Click.y, func.count())
                .group_by(db.Click.trial_id, db.Click.t_ms, db.Click.x, db.Click.y).having(func.count() > 1)).all()
            assert duplicates == []
            saves = session.scalar(select(func.count()).select_from(db.SaveRecord))
            assert saves == sum(r["saves"] for r in results)
            trials = session.execute(select(db.Trial.status, func.count()).group_by(db.Trial.status)).all()
            assert dict(trials) == {"done": n * (PER_PARTICIPANT + 1)}
    finally:
        engine.dispose()
