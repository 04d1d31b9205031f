"""A crash drill for the study server: N simulated participants on gunicorn (the shipped config)
while the master and all its workers are SIGKILLed mid-run and restarted on the same port and
database; then the database is checked against what the clients were told.

    python scripts/study_crash_drill.py                       # 200 participants, BubbleView, SQLite
    python scripts/study_crash_drill.py --task codecharts     # answers, each sent twice at once
    python scripts/study_crash_drill.py --participants 50 --database-url postgresql+psycopg://…

Prints: when the kill landed (saves stored by then), how long the restart took to answer, and
per participant: finished or not, clicks sent (acknowledged) against clicks stored, duplicates,
save records against saves. With --task codecharts every answer is also sent a second time at
the same moment under another key (a double-clicked Next): the drill checks one response per
trial and question, every answered trial with its response, and every twin refused with 409.
Exit status 0 only when every participant finished and nothing was lost or stored twice.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

EXPERIMENT = "drill"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=200)
    parser.add_argument("--kill-at", type=float, default=0.4, help="share of all saves stored when the kill lands")
    parser.add_argument("--down", type=float, default=2.0, help="seconds the server stays down")
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary folder")
    parser.add_argument("--task", choices=("bubbleview", "codecharts"), default="bubbleview",
                        help="codecharts: answers instead of click saves, each sent twice at once")
    args = parser.parse_args(argv)
    if args.participants < 1 or not 0 < args.kill_at < 1 or args.down < 0:
        parser.error("need --participants >= 1, 0 < --kill-at < 1 and --down >= 0")
    with tempfile.TemporaryDirectory(prefix="gazelab-drill-") as tmp:
        return drill(Path(tmp), args)


def drill(tmp: Path, args) -> int:
    from sqlalchemy import func, select

    from studyweb import db
    from studyweb.simulate import run_participant

    per_participant = 6
    url = args.database_url or f"sqlite:///{tmp / 'study.db'}"
    pairs = max(10, -(-args.participants * per_participant // 20))  # 10 observers per stimulus suffice
    make_experiment(tmp, url, pairs, per_participant, args.task)
    server = Server(url, tmp)
    server.start()
    total_saves = args.participants * (per_participant + 1)
    trials = f"{per_participant + 1} saves" if args.task == "bubbleview" else \
        f"{per_participant} images' answers, with the tutorial's and sentinels'"
    print(f"{args.participants} participants x {trials} ({args.task}) on {server.url} "
          f"({db.safe_url(url)}); kill at about {args.kill_at:.0%} of the saves", flush=True)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.participants) as pool:
        futures = [pool.submit(run_participant, server.url, EXPERIMENT, seed, drop_rate=0.1,
                               recruit_id=f"drill-{seed}", pause_s=0.5, retry_for_s=120.0,
                               double_send=args.task == "codecharts")
                   for seed in range(args.participants)]
        stored_at_kill = wait_for_saves(url, int(total_saves * args.kill_at))
        server.kill()
        killed = time.perf_counter()
        time.sleep(args.down)
        server.start()
        back_in = time.perf_counter() - killed
        done, _ = wait(futures, timeout=600)
        results, failures = [], []
        for future in futures:
            try:
                results.append(future.result(timeout=0))
            except Exception as exc:  # noqa: BLE001 — count every participant
                failures.append(f"{type(exc).__name__}: {exc}")
    elapsed = time.perf_counter() - started
    server.stop()

    engine = db.make_engine(url)
    try:
        with db.session_factory(engine)() as session:
            stored = dict(session.execute(
                select(db.Trial.participant_id, func.count(db.Click.id))
                .join(db.Click, db.Click.trial_id == db.Trial.id).group_by(db.Trial.participant_id)).all())
            duplicates = len(session.execute(
                select(db.Click.trial_id, db.Click.t_ms, db.Click.x, db.Click.y)
                .group_by(db.Click.trial_id, db.Click.t_ms, db.Click.x, db.Click.y)
                .having(func.count() > 1)).all())
            records = session.scalar(select(func.count()).select_from(db.SaveRecord))
            statuses = dict(session.execute(select(db.Participant.status, func.count())
                                            .group_by(db.Participant.status)).all())
            twice = len(session.execute(select(db.Response.trial_id, db.Response.question)
                                        .group_by(db.Response.trial_id, db.Response.question)
                                        .having(func.count() > 1)).all())
            answered = session.scalar(select(func.count()).select_from(db.Trial).where(
                db.Trial.status == "done", db.Trial.task == "codecharts"))
            with_response = session.scalar(select(func.count(func.distinct(db.Response.trial_id))))
    finally:
        engine.dispose()
    sent = {r["participant_id"]: r["clicks_sent"] for r in results}
    finished = sum(r["status"] == "complete" for r in results)
    lost = {pid: (n, stored.get(pid, 0)) for pid, n in sent.items() if stored.get(pid, 0) != n}
    print(f"killed master and workers at {stored_at_kill}/{total_saves} saves stored; answering again "
          f"{back_in:.1f} s after the kill; all done in {elapsed:.1f} s")
    print(f"participants: {finished} of {args.participants} complete; statuses in the database {statuses}; "
          f"{len(failures)} client failures" + (f" (first: {failures[0]})" if failures else ""))
    print(f"clicks: {sum(sent.values())} sent (acknowledged), {sum(stored.get(p, 0) for p in sent)} stored for "
          f"those participants, {sum(stored.values())} stored in all; {len(lost)} participants differ; "
          f"{duplicates} duplicate clicks")
    twins = sum(r["twins_refused"] for r in results)
    if args.task == "codecharts":
        print(f"answers: {answered} trials answered, {with_response} with a response, {twice} trials with a"
              f" second response; {twins} answers sent twice at once, {twins} twins refused (409)")
    print(f"saves: {sum(r['saves'] for r in results)} made, {records} save records; "
          f"{sum(r['resends'] for r in results)} answers dropped on purpose and resent, "
          f"{sum(r['retries'] for r in results)} requests retried through the outage")
    ok = (not failures and finished == args.participants and not lost and not duplicates and not twice
          and records == sum(r["saves"] for r in results) and answered == with_response
          and twins == (sum(r["saves"] for r in results) if args.task == "codecharts" else 0))
    print("drill passed" if ok else "DRILL FAILED")
    return 0 if ok else 1


def make_experiment(tmp: Path, url: str, pairs: int, per_participant: int, task: str) -> None:
    import numpy as np

    from datadir import Dataset, PairWriter
    from studyweb.db import open_session
    from studyweb.experiments import create_experiment

    dataset = Dataset.create(tmp / "ds", "drill", seed=1)
    rng = np.random.default_rng(1)
    writer = PairWriter(dataset.path)
    height, width = (48, 64) if task == "bubbleview" else (360, 480)  # codes of codecharts.MIN_CODE_PX
    dataset.add_pairs([
        writer.write(f"{i:06d}", split="train", source="clevr", edit_type="recolor", n_edited=1,
                     images={side: rng.integers(0, 255, (height, width, 3), np.uint8) for side in ("x", "y")})
        for i in range(pairs)])
    with open_session(url) as session:
        create_experiment(session, dataset.path, EXPERIMENT, task, per_participant=per_participant, observers=10,
                          completion_code="DRILL")
        session.commit()


def wait_for_saves(url: str, at_least: int) -> int:
    from sqlalchemy import func, select

    from studyweb import db

    engine = db.make_engine(url)
    try:
        while True:
            with engine.connect() as connection:
                stored = connection.scalar(select(func.count()).select_from(db.SaveRecord))
            if stored >= at_least:
                return stored
            time.sleep(0.02)
    finally:
        engine.dispose()


class Server:
    """gunicorn -c python:studyweb.gunicorn_conf on a fixed free port, in its own process group."""

    def __init__(self, url: str, tmp: Path):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "GAZELAB_DATABASE_URL": url, "GAZELAB_INSTANCE_DIR": str(tmp / "instance"),
                    "GAZELAB_ACCESS_LOG": "", "GAZELAB_BIND": f"127.0.0.1:{self.port}"}
        self.log = tmp / "gunicorn.log"
        self.process = None

    def start(self) -> None:
        import requests

        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "python:studyweb.gunicorn_conf", "--log-level", "warning",
                 "studyweb:create_app()"], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/api/v1/session", timeout=10).status_code == 401:
                    return
            except requests.RequestException:
                time.sleep(0.05)
        raise RuntimeError(f"gunicorn did not answer; log:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(30)


if __name__ == "__main__":
    sys.exit(main())
