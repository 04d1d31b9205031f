"""A study served as in production — gunicorn with the shipped config, 3 workers, on a real
PostgreSQL server — with simulated participants (`studyweb.simulate.run_participant`, the
browser's HTTP flow) of a BubbleView experiment and a questionnaire (SalG-GAN's choose-best
design) at once; a quarter of the answers are "lost" and resent under the same key.

Sent = stored: every save and answer a client got a 200 for is in the database exactly once —
its clicks (x, y, t_ms) or its answers, under its participant, trial and idempotency key — and
nothing else is: the rows read back by SQL equal, as multisets, the rows the acknowledged
requests carried. The clients' view comes from their own requests (a recording
`requests.Session`), not from what the simulator says it sent.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from sqlalchemy import select

from datadir import Dataset
from studyweb import db
from studyweb.designs import create_from_design
from studyweb.experiments import create_experiment
from studyweb.simulate import run_participant
from support.study_data import EXAMPLES, example_dataset, method_outputs

log = logging.getLogger(__name__)
pytestmark = [pytest.mark.postgres, pytest.mark.slow]

WORKERS = 3
PARTICIPANTS = {"bubbles": 12, "prefs": 6}
SAVE = re.compile(r"/api/v1/trials/(\d+)/(save|answer)")


def test_a_study_on_three_gunicorn_workers_and_postgresql_stores_exactly_what_was_acknowledged(
        tmp_path, postgres_database, write_pair, monkeypatch):
    url = postgres_database
    _create_experiments(tmp_path, url, write_pair)
    acknowledged: list[tuple[str, str, dict]] = []
    monkeypatch.setattr(requests, "Session", _recording_session(acknowledged))
    with _gunicorn(url, tmp_path) as server:
        workers = server.worker_pids()
        assert len(workers) == WORKERS
        jobs = [(experiment, seed) for experiment, n in PARTICIPANTS.items() for seed in range(n)]
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            futures = [pool.submit(run_participant, server.url, experiment, seed, drop_rate=0.25,
                                   recruit_id=f"{experiment}-{seed}") for experiment, seed in jobs]
            results = [future.result() for future in futures]
        served = server.requests_per_worker()
    assert set(served) <= set(workers), f"requests served by {served}, not only the workers {workers} started with"
    assert [r["status"] for r in results] == ["complete"] * len(jobs)
    assert sum(r["resends"] for r in results) > 0  # some answers really were sent twice under one key
    assert "Traceback" not in server.log(), server.log()[-4000:]

    sent = _sent(acknowledged)
    stored = _stored(url)
    assert stored["participants"] == {token: ("complete", "simulated") for token in sent["participants"]}
    assert stored["open trials"] == 0
    for table in ("clicks", "responses", "saves"):
        assert stored[table] == sent[table], table
    assert sum(sent["clicks"].values()) == sum(r["clicks_sent"] for r in results) > 0
    assert {kind for _, _, kind in sent["saves"]} == {"trial", "answer"}
    log.info("%d participants on %d workers (requests per worker pid: %s): %d clicks, %d answers, %d saves "
             "sent = stored; %d resent", len(jobs), WORKERS, served,
             sum(sent["clicks"].values()), sum(sent["responses"].values()), len(sent["saves"]),
             sum(r["resends"] for r in results))


def _create_experiments(tmp_path: Path, url: str, write_pair) -> None:
    """'bubbles': BubbleView on 12 pairs of 32x24 px (both sides), 3 images per participant;
    'prefs': sgit_preference.yaml (choose the best of 4 edits, 3 questions, catch trials) on 6
    pairs of 64x48 px, 3 trials per participant."""
    bubbles = Dataset.create(tmp_path / "bubbles" / "ds", "bubbles", seed=5)
    bubbles.add_pairs([write_pair(bubbles.path, f"{i:06d}", size=(32, 24)) for i in range(12)])
    example = next(e for e in EXAMPLES if e.stem == "sgit_preference")
    prefs = example_dataset(tmp_path / "prefs", 6, size=(64, 48))
    design = yaml.safe_load(example.read_text())
    design.update(methods=method_outputs(example, tmp_path / "edits", prefs), per_participant=3,
                  stimuli={**design.get("stimuli", {}), "pairs": 6})
    with db.open_session(url) as session:  # migrates the empty database first
        create_experiment(session, bubbles.path, "bubbles", per_participant=3, observers=3, completion_code="DONE")
        create_from_design(session, design, prefs.path, "prefs")
        session.commit()


def _recording_session(acknowledged: list):
    """A requests.Session that appends (participant token, path, JSON body) of every POST with a
    JSON body answered 200 to `acknowledged`."""
    lock = threading.Lock()

    class RecordingSession(requests.Session):
        def request(self, method, url, *args, **kwargs):
            response = super().request(method, url, *args, **kwargs)
            if method == "POST" and kwargs.get("json") is not None and response.status_code == 200:
                with lock:
                    acknowledged.append((self.headers["X-Participant-Token"], urlsplit(url).path, kwargs["json"]))
            return response

    return RecordingSession


def _sent(acknowledged: list) -> dict:
    """What the acknowledged requests carried, each idempotency key once (a resent key must carry
    the same body): {participants: tokens, clicks / responses / saves: Counters of rows}."""
    bodies: dict[tuple[str, str], tuple[str, dict]] = {}
    for token, path, body in acknowledged:
        key = (token, body["idempotency_key"])
        assert bodies.setdefault(key, (path, body)) == (path, body), f"key {key} resent with another body"
    clicks, responses, saves = Counter(), Counter(), Counter()
    for (token, key), (path, body) in bodies.items():
        trial_id, route = SAVE.fullmatch(path).groups()
        saves[(token, key, "trial" if route == "save" else "answer")] += 1
        for click in body.get("clicks", []):
            clicks[(token, int(trial_id), key, click["x"], click["y"], click["t_ms"])] += 1
        for answer in body.get("answers", []):
            responses[(token, int(trial_id), key, answer["question"], answer.get("choice"), answer.get("rating"),
                       body["rt_ms"])] += 1
    return {"participants": {token for token, _ in bodies}, "clicks": clicks, "responses": responses, "saves": saves}


def _stored(url: str) -> dict:
    """The same rows read back from the database; a choose-best answer's candidate label is in
    the response's payload (its `choice` column holds the method behind the label)."""
    engine = db.make_engine(url)
    try:
        with engine.connect() as connection:
            participants = {token: (status, source) for token, status, source in connection.execute(
                select(db.Participant.token, db.Participant.status, db.Participant.source))}
            open_trials = len(connection.execute(select(db.Trial.id).where(db.Trial.status != "done")).all())
            clicks = Counter(tuple(row) for row in connection.execute(
                select(db.Participant.token, db.Click.trial_id, db.Click.idempotency_key, db.Click.x, db.Click.y,
                       db.Click.t_ms)
                .join(db.Trial, db.Click.trial_id == db.Trial.id)
                .join(db.Participant, db.Trial.participant_id == db.Participant.id)))
            responses = Counter(
                (token, trial_id, key, question, (payload or {}).get("label", choice), rating, rt_ms)
                for token, trial_id, key, question, choice, payload, rating, rt_ms in connection.execute(
                    select(db.Participant.token, db.Response.trial_id, db.Response.idempotency_key,
                           db.Response.question, db.Response.choice, db.Response.payload, db.Response.rating,
                           db.Response.rt_ms)
                    .join(db.Participant, db.Response.participant_id == db.Participant.id)))
            saves = Counter(tuple(row) for row in connection.execute(
                select(db.Participant.token, db.SaveRecord.idempotency_key, db.SaveRecord.kind)
                .join(db.Participant, db.SaveRecord.participant_id == db.Participant.id)))
    finally:
        engine.dispose()
    return {"participants": participants, "open trials": open_trials, "clicks": clicks, "responses": responses,
            "saves": saves}


class _Server:
    def __init__(self, url: str, process: subprocess.Popen, log_path: Path, access_path: Path):
        self.url, self.process, self.log_path, self.access_path = url, process, log_path, access_path
        self.access_from = 0  # bytes of the access log before the participants came

    def worker_pids(self, timeout_s: float = 60.0) -> list[int]:
        """The master's children once there are WORKERS of them (workers boot one after another)."""
        deadline = time.monotonic() + timeout_s
        while True:
            children = [int(pid) for pid in os.listdir("/proc")
                        if pid.isdigit() and _parent(int(pid)) == self.process.pid]
            if len(children) >= WORKERS or time.monotonic() > deadline:
                return children
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def requests_per_worker(self) -> dict[int, int]:
        """{worker pid: requests served since access_from}, from the access log (lines end in pid=<N>)."""
        if not self.access_path.exists():
            return {}
        with open(self.access_path, "rb") as access:
            access.seek(self.access_from)
            return dict(Counter(int(pid) for pid in re.findall(rb"pid=<(\d+)>", access.read())))


@contextlib.contextmanager
def _gunicorn(database_url: str, tmp_path: Path):
    """`gunicorn -c python:studyweb.gunicorn_conf 'studyweb:create_app()'` in production mode with
    GAZELAB_WORKERS=3 on a free port (the secret key generated once into the instance folder and
    shared by the workers); SIGTERM to its process group at the end, SIGKILL if it lingers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_path, access_path = tmp_path / "gunicorn.log", tmp_path / "access.log"
    env = {**os.environ, "GAZELAB_ENV": "production", "GAZELAB_DATABASE_URL": database_url,
           "GAZELAB_INSTANCE_DIR": str(tmp_path / "instance"), "GAZELAB_BIND": f"127.0.0.1:{port}",
           "GAZELAB_WORKERS": str(WORKERS), "GAZELAB_THREADS": "4", "GAZELAB_ACCESS_LOG": str(access_path),
           "GAZELAB_LOG_LEVEL": "warning"}
    env.pop("GAZELAB_SECRET_KEY", None)
    with open(log_path, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "python:studyweb.gunicorn_conf",
                                    "studyweb:create_app()"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = _Server(f"http://127.0.0.1:{port}", process, log_path, access_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"gunicorn exited while starting:\n{server.log()[-4000:]}"
            try:
                if requests.get(f"{server.url}/api/v1/session", timeout=10).status_code == 401:
                    break  # the app itself answers: no token
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"gunicorn did not answer within 60 s:\n{server.log()[-4000:]}"
            time.sleep(0.1)
        # Every worker answers before the participants come: a client keeps its connection (and so
        # its worker) for the whole run, and workers still booting would leave all to the first.
        while len(server.requests_per_worker()) < WORKERS:
            assert process.poll() is None and time.monotonic() < deadline + 60, \
                f"not every one of {WORKERS} workers answered: {server.requests_per_worker()}\n{server.log()[-4000:]}"
            with contextlib.suppress(requests.RequestException):
                requests.get(f"{server.url}/api/v1/session", headers={"Connection": "close"}, timeout=10)
        server.access_from = access_path.stat().st_size
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return int(stat.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None
