"""Benchmark the study server: trial saves under gunicorn against a raw-sqlite3 baseline, and
map building for 1,000 stimuli.

    python benchmarks/bench_study.py                   # 20 then 50 clients, 10 s each; 1,000 maps
    python benchmarks/bench_study.py --quick           # 2 s each, 100 maps

One run, everything in a temporary directory:
(a) Trial saves. A dataset of 40 pairs of 64x48 images, a BubbleView experiment (80 stimuli,
    10 per participant) on SQLite in WAL mode, served by gunicorn with 2 workers. One
    participant per client is enrolled through the HTTP flow (study link, consent,
    instructions, session: 4 requests each, before any timing). Each client then posts
    POST /api/v1/trials/<id>/save in a closed loop over its own trials: 10 clicks, a fresh
    idempotency key, done=false, so every save stays valid and stores its rows. Throughput is
    the saves answered 200 within the timed window (after a warm-up), latency the time from
    sending to the full answer, per request. Server CPU ms/save: the gunicorn process group's
    user + system CPU time over the run (warm-up included) divided by the saves it answered.
    The baseline (`benchmarks/_study_baseline.py`) is a minimal Flask route that writes the same
    rows (a save record and the clicks) with raw sqlite3 into a copy of the same database,
    under the same gunicorn settings and the same load. Targets (issue 4): studyweb ≥ 0.5 of
    the baseline's throughput, p99 < 100 ms at 50 clients.
    Clients: one asyncio loop (aiohttp), one connection per client, in this process; it shares
    the machine's CPUs with the servers, so its CPU use is printed.
(b) Maps. An experiment of 500 pairs x 2 sides = 1,000 stimuli (320x240, datagen's size),
    7 observers each (350 participants x 20 trials, 5-15 clicks per trial), inserted directly
    in the database; `studyweb.maps.build_maps` timed on a first build, on a rebuild with
    nothing changed (every map skipped), and after one more participant's 20 trials.
Absolute figures depend on the machine; the ratio to the baseline is the comparable number.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

EXPERIMENT = "bench"
CLICKS_PER_SAVE = 10
SAVE_PAIRS, SAVE_SIZE = 40, (64, 48)  # (width, height) of the save benchmark's images
MAP_OBSERVERS, MAP_TRIALS_PER_PARTICIPANT = 7, 20
TARGET_RATIO, TARGET_P99_MS = 0.5, 100.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="20,50", help="comma-separated concurrent client counts")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per server and client count")
    parser.add_argument("--warmup", type=float, default=1.0, help="untimed seconds before each timed window")
    parser.add_argument("--threads", type=int, default=1,
                        help="gunicorn gthread threads per worker (1: with the GIL, more threads only add "
                             "contention for CPU-bound saves; gthread still keeps the clients' connections alive)")
    parser.add_argument("--map-stimuli", type=int, default=1000, help="stimuli in the map benchmark (even)")
    parser.add_argument("--map-size", default="320x240", help="map benchmark image size WIDTHxHEIGHT")
    parser.add_argument("--quick", action="store_true", help="2 s per run, 0.5 s warm-up, 100 maps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.warmup, args.map_stimuli = 2.0, 0.5, 100
    try:
        clients = [int(c) for c in args.clients.split(",") if c.strip()]
        map_size = tuple(int(v) for v in args.map_size.lower().split("x"))
    except ValueError:
        parser.error("--clients must be integers like 20,50 and --map-size like 320x240")
    if (not clients or min(clients) < 1 or args.seconds <= 0 or args.warmup < 0 or args.threads < 1
            or args.map_stimuli < 2 or args.map_stimuli % 2 or len(map_size) != 2 or min(map_size) < 8):
        parser.error("need clients >= 1, --seconds > 0, --warmup >= 0, --threads >= 1, an even "
                     "--map-stimuli >= 2 and a --map-size of at least 8x8")
    catch_interrupts()

    try:
        with tempfile.TemporaryDirectory(prefix="gazelab-bench-") as tmp:
            saves = bench_saves(Path(tmp), clients, args)
            maps = bench_maps(Path(tmp), args.map_stimuli, map_size, args.seed)
    except KeyboardInterrupt:
        print("interrupted; the servers are stopped and the temporary directory removed", file=sys.stderr)
        return 130
    print_saves(saves, clients, args)
    print_maps(maps)
    return 0


def catch_interrupts() -> None:
    """SIGINT and SIGTERM raise (KeyboardInterrupt, SystemExit) wherever the run is, so the
    finally blocks stop the servers (`load` handles them itself while its event loop runs)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


# --- (a) trial saves -------------------------------------------------------------------------

def bench_saves(tmp: Path, clients: list[int], args) -> dict:
    """{(server, clients): load result} plus the gunicorn command and the row checks."""
    from studyweb.db import init_db

    dataset = make_dataset(tmp / "save_ds", SAVE_PAIRS, SAVE_SIZE, args.seed)
    db_path, base_db = tmp / "study.db", tmp / "baseline.db"
    init_db(f"sqlite:///{db_path}")
    new_experiment(f"sqlite:///{db_path}", dataset, per_participant=10, observers=10_000)
    gunicorn = [sys.executable, "-m", "gunicorn", "-w", "2", "-k", "gthread", "--threads", str(args.threads),
                *no_control_socket(), "--log-level", "warning"]
    results: dict = {"command": "python " + " ".join(gunicorn[1:]), "load": [load_average()]}
    servers = []
    try:
        ours = start_server(gunicorn, "studyweb:create_app()", REPO, tmp / "studyweb.log", {
            "GAZELAB_DATABASE_URL": f"sqlite:///{db_path}", "GAZELAB_INSTANCE_DIR": str(tmp / "instance"),
            "GAZELAB_ENV": "development"}, f"/s/{EXPERIMENT}-no-such-study")
        servers.append(ours)
        t0 = time.perf_counter()
        plan = enrol(ours["url"], max(clients))
        results["enrol"] = (len(plan), time.perf_counter() - t0)
        copy_database(db_path, base_db)  # same participants and trials, before any save
        base = start_server(gunicorn, "_study_baseline:create_app()", REPO / "benchmarks", tmp / "baseline.log",
                            {"GAZELAB_BASELINE_DB": str(base_db)}, "/health")
        servers.append(base)
        acked = {"studyweb": 0, "baseline": 0}
        for n in clients:
            for name, server in (("studyweb", ours), ("baseline", base)):
                print(f"saves: {name}, {n} clients ...", file=sys.stderr, flush=True)
                cpu0 = group_cpu_seconds(server["process"].pid)
                result = asyncio.run(load(server["url"], plan[:n], args.warmup, args.seconds, args.seed))
                result["server_cpu_ms"] = (1e3 * (group_cpu_seconds(server["process"].pid) - cpu0)
                                           / max(result["acked_clicks"] / CLICKS_PER_SAVE, 1))
                results[name, n] = result
                acked[name] += result["acked_clicks"]
    finally:
        for server in servers:
            stop_server(server)
    results["load"].append(load_average())
    results["rows"] = {name: (acked[name], count_rows(path, "clicks"))
                       for name, path in (("studyweb", db_path), ("baseline", base_db))}
    return results


def enrol(url: str, n: int) -> list[dict]:
    """n participants through the HTTP flow (link, consent, instructions, session), 8 at a
    time: [{token, trials: [(trial id, natural width, height)]}]."""
    import requests

    def one(_):
        http = requests.Session()
        entry = http.get(f"{url}/s/{EXPERIMENT}", allow_redirects=False, timeout=30)
        token = http.cookies.get("gazelab_participant")
        if entry.status_code != 302 or not token:
            raise RuntimeError(f"enrolment failed: {entry.status_code} {entry.text[:200]}")
        for page, form in (("consent", {"consent": "yes"}), ("instructions", {"window_w": "1280"})):
            answer = http.post(f"{url}/s/{EXPERIMENT}/{page}", data=form, allow_redirects=False, timeout=30)
            if answer.status_code != 302:
                raise RuntimeError(f"{page} failed: {answer.status_code} {answer.text[:200]}")
        state = http.get(f"{url}/api/v1/session", headers={"X-Participant-Token": token}, timeout=30).json()
        return {"token": token, "trials": [(t["id"], t["natural_w"], t["natural_h"]) for t in state["trials"]]}

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


async def load(url: str, plan: list[dict], warmup: float, seconds: float, seed: int) -> dict:
    """Closed-loop saves, one client per plan entry; stats of the timed window."""
    import aiohttp

    start = time.perf_counter() + warmup
    end = start + seconds
    latencies: list[list[float]] = [[] for _ in plan]  # per client
    errors: dict[str, int] = {}
    acked = [0]
    stop_at, signals = [end], []  # a signal ends the run after the requests in flight

    def interrupted(signum: int) -> None:
        signals.append(signum)
        stop_at[0] = 0.0

    async def client(i: int, participant: dict) -> None:
        rnd = random.Random(seed * 1000 + i)
        headers = {"X-Participant-Token": participant["token"], "Content-Type": "application/json"}
        async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=1),
                                         timeout=aiohttp.ClientTimeout(total=60)) as http:
            k = 0
            while time.perf_counter() < stop_at[0]:
                trial_id, width, height = participant["trials"][k % len(participant["trials"])]
                k += 1
                body = json.dumps(save_payload(rnd, width, height))
                sent = time.perf_counter()
                try:
                    async with http.post(f"{url}/api/v1/trials/{trial_id}/save", data=body) as answer:
                        await answer.read()
                        outcome = "ok" if answer.status == 200 else f"HTTP {answer.status}"
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    outcome = type(exc).__name__
                done = time.perf_counter()
                if outcome == "ok":
                    acked[0] += CLICKS_PER_SAVE
                if start <= done <= end:
                    if outcome == "ok":
                        latencies[i].append(done - sent)
                    else:
                        errors[outcome] = errors.get(outcome, 0) + 1

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, interrupted, signum)
    cpu0 = time.process_time()
    try:
        await asyncio.gather(*(client(i, p) for i, p in enumerate(plan)))
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        catch_interrupts()
    if signals:
        raise KeyboardInterrupt if signals[0] == signal.SIGINT else SystemExit(143)
    cpu = time.process_time() - cpu0
    saves = sum(map(len, latencies))
    ms = np.concatenate([np.array(own) * 1e3 for own in latencies]) if saves else np.full(1, np.nan)
    client_means = [1e3 * float(np.mean(own)) for own in latencies if own] or [np.nan]
    return {"saves": saves, "per_s": saves / seconds,
            "p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "max": float(ms.max()),
            "client_mean_range": (min(client_means), max(client_means)), "errors": errors,
            "client_cpu": cpu / (end - start + warmup), "acked_clicks": acked[0]}


def save_payload(rnd: random.Random, width: int, height: int) -> dict:
    """A realistic trial save: CLICKS_PER_SAVE clicks inside the image (image px) at
    increasing times, the display at 1.5x, a fresh key, the trial not finished."""
    times = sorted(rnd.uniform(200.0, 9500.0) for _ in range(CLICKS_PER_SAVE))
    clicks = [{"x": round(rnd.uniform(0, width - 0.01), 2), "y": round(rnd.uniform(0, height - 0.01), 2),
               "t_ms": round(t, 1)} for t in times]
    return {"idempotency_key": uuid.uuid4().hex, "clicks": clicks, "display_w": width * 1.5,
            "display_h": height * 1.5, "done": False, "elapsed_ms": round(times[-1] + 100.0, 1)}


def no_control_socket() -> list[str]:
    """gunicorn's flag to make no control socket where it has one (gunicorn 27 puts it at one
    fixed path per user, which two servers at once would share)."""
    from gunicorn.config import KNOWN_SETTINGS

    return ["--no-control-socket"] if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS) else []


def start_server(gunicorn: list[str], app: str, chdir: Path, log_path: Path, env: dict, probe: str) -> dict:
    """gunicorn serving `app` on a free loopback port, in its own process group; waits until
    `probe` answers (any HTTP status)."""
    import requests

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(log_path, "wb")
    process = subprocess.Popen(
        [*gunicorn, "-b", f"127.0.0.1:{port}", "--chdir", str(chdir), app],
        env={**os.environ, "PYTHONPATH": str(REPO), **env}, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = {"process": process, "url": f"http://127.0.0.1:{port}", "log": log}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            requests.get(server["url"] + probe, timeout=2)
            return server
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or its workers still loading
            time.sleep(0.1)
    stop_server(server)
    raise RuntimeError(f"gunicorn {app} did not start; its log:\n{log_path.read_text()[-3000:]}")


def stop_server(server: dict) -> None:
    """SIGTERM to the server's process group (master and workers), SIGKILL after 10 s."""
    process = server["process"]
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    try:  # workers orphaned by a master that died first
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server["log"].close()


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of the live processes in process group `pgid` (Linux /proc;
    NaN elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total, found = 0.0, False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # the process ended meanwhile
        if int(fields[2]) == pgid:  # fields[0] is the state; pgrp is the 5th field of stat
            total += (int(fields[11]) + int(fields[12])) / tick
            found = True
    return total if found else float("nan")


def load_average() -> str:
    """The 1-minute load average (other work on the machine skews every figure)."""
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "?"


def copy_database(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    with sqlite3.connect(target) as dst:
        dst.execute("PRAGMA journal_mode=WAL")


def count_rows(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# --- (b) maps --------------------------------------------------------------------------------

def bench_maps(tmp: Path, n_stimuli: int, size: tuple[int, int], seed: int) -> dict:
    """Timings of build_maps on n_stimuli stimuli with MAP_OBSERVERS observers each."""
    from studyweb.db import Experiment, init_db, make_engine, session_factory
    from studyweb.maps import build_maps
    from studyweb.qc import run_qc

    print(f"maps: {n_stimuli} stimuli ...", file=sys.stderr, flush=True)
    url = f"sqlite:///{tmp / 'maps.db'}"
    init_db(url)
    dataset = make_dataset(tmp / "map_ds", n_stimuli // 2, size, seed, same_image=True)
    experiment_id = new_experiment(url, dataset, per_participant=MAP_TRIALS_PER_PARTICIPANT,
                                   observers=MAP_OBSERVERS)
    engine = make_engine(url)
    sessions = session_factory(engine)
    rng = np.random.default_rng(seed)
    out: dict = {"stimuli": n_stimuli, "size": size}
    try:
        with sessions() as db:
            stimulus_ids = [s.id for s in db.get(Experiment, experiment_id).stimuli]
        n_participants = -(-n_stimuli * MAP_OBSERVERS // MAP_TRIALS_PER_PARTICIPANT)
        t0 = time.perf_counter()
        out["clicks"] = insert_observations(engine, experiment_id, stimulus_ids, n_participants, size, rng)
        out["participants"], out["insert_s"] = n_participants, time.perf_counter() - t0
        for label in ("first build", "rebuild, nothing new", "rebuild, 1 new participant"):
            if label.endswith("participant"):
                insert_observations(engine, experiment_id, stimulus_ids[:MAP_TRIALS_PER_PARTICIPANT], 1, size,
                                    rng, first_participant=n_participants)
            with sessions() as db:
                experiment = db.get(Experiment, experiment_id)
                t0 = time.perf_counter()
                qc = run_qc(db, experiment)
                qc_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                summary = build_maps(db, experiment)
                db.commit()
                out[label] = dict(summary, total_s=time.perf_counter() - t0, qc_s=qc_s, qc_clicks=len(qc.x))
    finally:
        engine.dispose()
    return out


def insert_observations(engine, experiment_id: int, stimulus_ids: list[int], n_participants: int,
                        size: tuple[int, int], rng, first_participant: int = 0) -> int:
    """Completed participants with MAP_TRIALS_PER_PARTICIPANT done trials each, walking through
    stimulus_ids in order (so each stimulus gets the same number of observers), 5-15 clicks
    per trial around the image centre. Bulk inserts with SQLAlchemy Core; returns the clicks."""
    from sqlalchemy import insert

    from studyweb.db import Click, Participant, Trial, new_token, utcnow

    width, height = size
    now = utcnow()
    participants, trials, clicks = [], [], []
    trial_id = 1_000_000 + first_participant * (MAP_TRIALS_PER_PARTICIPANT + 1)
    for p in range(first_participant, first_participant + n_participants):
        pid = 1_000_000 + p
        participants.append(dict(id=pid, experiment_id=experiment_id, token=new_token(), source="simulated",
                                 status="complete", created_at=now, last_seen_at=now, completed_at=now))
        for position in range(MAP_TRIALS_PER_PARTICIPANT):
            stimulus = stimulus_ids[(p * MAP_TRIALS_PER_PARTICIPANT + position) % len(stimulus_ids)]
            trial_id += 1
            trials.append(dict(id=trial_id, participant_id=pid, stimulus_id=stimulus, position=position + 1,
                               is_practice=False, status="done", started_at=now, ended_at=now,
                               duration_ms=10_000.0, display_w=width * 1.5, display_h=height * 1.5))
            n = int(rng.integers(5, 16))
            xs = np.clip(rng.normal(width / 2, width / 5, n), 0, width - 0.01)
            ys = np.clip(rng.normal(height / 2, height / 5, n), 0, height - 0.01)
            ts = np.sort(rng.uniform(200, 9500, n))
            clicks += [dict(trial_id=trial_id, x=float(x), y=float(y), t_ms=float(t), display_w=width * 1.5,
                            display_h=height * 1.5, idempotency_key=f"bench-{trial_id}")
                       for x, y, t in zip(xs, ys, ts)]
    with engine.begin() as conn:
        conn.execute(insert(Participant), participants)
        conn.execute(insert(Trial), trials)
        conn.execute(insert(Click), clicks)
    return len(clicks)


# --- shared set-up and printing --------------------------------------------------------------

def make_dataset(root: Path, n_pairs: int, size: tuple[int, int], seed: int, same_image: bool = False):
    """A gazelab dataset of n_pairs clevr-style pairs (x and y images of size (width, height));
    same_image writes one random image's bytes everywhere (faster for many pairs)."""
    from datadir import Dataset, PairWriter, relative_path

    width, height = size
    rng = np.random.default_rng(seed)
    dataset = Dataset.create(root, "bench", seed=seed)
    writer = PairWriter(root)
    first = None
    rows = []
    for i in range(n_pairs):
        pair_id = f"{i:06d}"
        for side in ("x", "y"):
            if first is None or not same_image:
                # Drawn in cv2's BGR order as before, so the files' bytes are unchanged.
                bgr = rng.integers(0, 255, (height, width, 3), np.uint8)
                writer.image(pair_id, side, bgr[..., ::-1])
                first = writer.path(pair_id, "image", side)
            else:  # the same image everywhere: copy its file instead of encoding it again
                shutil.copyfile(first, writer.path(pair_id, "image", side))
        rows.append({"pair_id": pair_id, "split": "train", "source": "clevr", "edit_type": "recolor",
                     "n_edited": 1, "x_image": relative_path(pair_id, "image", "x"),
                     "y_image": relative_path(pair_id, "image", "y")})
    dataset.add_pairs(rows)
    return dataset


def new_experiment(url: str, dataset, **settings) -> int:
    """A BubbleView experiment EXPERIMENT on both sides of the dataset's pairs; its id."""
    from studyweb.db import make_engine, session_factory
    from studyweb.experiments import create_experiment

    engine = make_engine(url)
    try:
        with session_factory(engine)() as db:
            experiment = create_experiment(db, dataset.path, EXPERIMENT, completion_code="BENCH", **settings)
            db.commit()
            return experiment.id
    finally:
        engine.dispose()


def print_saves(results: dict, clients: list[int], args) -> None:
    enrolled, enrol_s = results["enrol"]
    print(f"\n(a) trial saves, POST /api/v1/trials/<id>/save, {CLICKS_PER_SAVE} clicks each, done=false")
    print(f"    servers: {results['command']} (gunicorn 2 workers x {args.threads} threads); SQLite WAL, "
          f"synchronous=NORMAL")
    print(f"    {enrolled} participants enrolled over HTTP in {enrol_s:.1f} s (not timed below); "
          f"{args.seconds:g} s timed after {args.warmup:g} s warm-up per row; clients: asyncio + aiohttp, "
          f"1 connection each; {os.cpu_count()} CPUs shared by clients and servers; 1-min load average "
          f"{results['load'][0]} before, {results['load'][1]} after")
    rows = []
    for n in clients:
        for name in ("studyweb", "baseline"):
            r = results[name, n]
            errors = ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "0"
            low, high = r["client_mean_range"]
            rows.append([name, n, r["saves"], f"{r['per_s']:.0f}", f"{r['p50']:.1f}", f"{r['p99']:.1f}",
                         f"{r['max']:.1f}", f"{low:.0f}-{high:.0f}", errors, f"{r['server_cpu_ms']:.2f}",
                         f"{100 * r['client_cpu']:.0f}%"])
    table(["server", "clients", "saves", "saves/s", "p50 ms", "p99 ms", "max ms", "client means ms", "errors",
           "server CPU ms/save", "client CPU"], rows)
    print("    client means: the lowest and highest of the clients' mean latencies. Each client keeps its one "
          "connection, which one gunicorn worker accepted: far apart, the connections split unevenly between "
          "the workers (the busier worker's clients wait longer), which moves p99 from run to run.")
    for n in clients:
        ratio = results["studyweb", n]["per_s"] / max(results["baseline", n]["per_s"], 1e-9)
        print(f"    {n} clients: studyweb / baseline throughput = {ratio:.2f} "
              f"(target >= {TARGET_RATIO}: {'met' if ratio >= TARGET_RATIO else 'MISSED'})")
    if 50 in clients:
        p99 = results["studyweb", 50]["p99"]
        print(f"    studyweb p99 at 50 clients = {p99:.1f} ms "
              f"(target < {TARGET_P99_MS:g} ms: {'met' if p99 < TARGET_P99_MS else 'MISSED'})")
    for name, (acked, stored) in results["rows"].items():
        print(f"    {name}: clicks acknowledged {acked}, clicks in the database {stored}"
              f" ({'equal' if acked == stored else 'DIFFERENT'})")


def print_maps(out: dict) -> None:
    width, height = out["size"]
    print(f"\n(b) map building: {out['stimuli']} stimuli of {width}x{height}, {out['participants']} participants "
          f"x {MAP_TRIALS_PER_PARTICIPANT} trials ({MAP_OBSERVERS} observers per stimulus), {out['clicks']} "
          f"clicks, bulk-inserted in {out['insert_s']:.1f} s")
    rows = []
    for label in ("first build", "rebuild, nothing new", "rebuild, 1 new participant"):
        r = out[label]
        rate = f"{r['built'] / r['total_s']:.0f}" if r["built"] else "-"
        rows.append([label, r["built"], r["skipped"], r["empty"], len(r["excluded_participants"]),
                     f"{r['total_s']:.2f}", f"{r['qc_s']:.2f}", rate])
    table(["build_maps", "built", "skipped", "empty", "excluded", "total s", "of which QC s", "maps/s"], rows)
    print("    total s = build_maps (QC query + maps) + commit; 'of which QC s' = studyweb.qc.run_qc alone; "
          "maps/s = built / total s")


def table(header: list[str], rows: list[list]) -> None:
    widths = [max(len(str(v)) for v in column) for column in zip(header, *rows)]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("    " + "  ".join(str(v).rjust(w) if i else str(v).ljust(w) for i, (v, w) in enumerate(zip(row, widths))))


if __name__ == "__main__":
    sys.exit(main())
