"""Open-loop load on the study server, the way a real study loads it: N participants arrive over
a ramp and each saves every ~3 s (the browser's SAVE_EVERY_MS, jittered ±20%), whatever the
server's answer times are; against the raw-sqlite3 baseline route under the same load.

    python benchmarks/bench_study_open.py                    # N = 200, 500, 1000; 30 s each
    python benchmarks/bench_study_open.py --quick            # N = 200, 500; 10 s each

One run, everything in a temporary directory. The servers run as the README's production
command does: gunicorn with the shipped config (`studyweb/gunicorn_conf.py`: 2 gthread workers
x 8 threads), SQLite WAL. Participants are enrolled over HTTP first (not timed). Then each
participant starts at a uniformly random moment of the first --ramp seconds and posts one save
(10 clicks, a fresh idempotency key, done=false) every 3 s ± 20% on a keep-alive connection
(the shared client pool reuses connections, as a browser tab does), until the window ends; a
save is sent on schedule even while the previous one is unanswered (open loop: a slow server
builds a queue, it does not slow the arrivals). Latency: sending to full answer. Printed per N
and server: saves sent and answered, p50/p99/max latency, errors, server CPU ms per save (the
gunicorn process group's CPU over the window / saves answered), and clicks acknowledged against
clicks stored. Goal (issue 10): studyweb p99 < 100 ms at 1,000 participants, nothing lost.
The clients share the machine's CPUs with the servers; their CPU use is printed.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_study as closed  # noqa: E402 — the closed-loop benchmark's set-up and helpers

SAVE_EVERY_S = 3.0
JITTER = 0.2


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", default="200,500,1000", help="comma-separated participant counts")
    parser.add_argument("--seconds", type=float, default=30.0, help="timed seconds per server and count")
    parser.add_argument("--ramp", type=float, default=3.0, help="seconds over which participants arrive")
    parser.add_argument("--quick", action="store_true", help="N = 200, 500 and 10 s each")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.participants, args.seconds = "200,500", 10.0
    try:
        counts = [int(c) for c in args.participants.split(",") if c.strip()]
    except ValueError:
        parser.error(f"--participants must be integers like 200,500, got {args.participants!r}")
    if not counts or min(counts) < 1 or args.seconds <= 0 or args.ramp < 0 or args.ramp >= args.seconds:
        parser.error("need participant counts >= 1, --seconds > 0 and 0 <= --ramp < --seconds")
    closed.catch_interrupts()
    try:
        with tempfile.TemporaryDirectory(prefix="gazelab-bench-open-") as tmp:
            results = run(Path(tmp), counts, args)
    except KeyboardInterrupt:
        print("interrupted; the servers are stopped and the temporary directory removed", file=sys.stderr)
        return 130
    report(results, counts, args)
    return 0


def run(tmp: Path, counts: list[int], args) -> dict:
    from studyweb.db import init_db

    dataset = closed.make_dataset(tmp / "ds", closed.SAVE_PAIRS, closed.SAVE_SIZE, args.seed)
    db_path, base_db = tmp / "study.db", tmp / "baseline.db"
    init_db(f"sqlite:///{db_path}")
    closed.new_experiment(f"sqlite:///{db_path}", dataset, per_participant=10, observers=10_000)
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", "python:studyweb.gunicorn_conf", "--log-level", "warning"]
    env = {"GAZELAB_ACCESS_LOG": ""}
    results: dict = {"command": "gunicorn -c python:studyweb.gunicorn_conf", "load": [closed.load_average()]}
    servers = []
    try:
        ours = closed.start_server(gunicorn, "studyweb:create_app()", closed.REPO, tmp / "studyweb.log", {
            **env, "GAZELAB_DATABASE_URL": f"sqlite:///{db_path}", "GAZELAB_INSTANCE_DIR": str(tmp / "instance"),
            "GAZELAB_ENV": "development"}, f"/s/{closed.EXPERIMENT}-no-such-study")
        servers.append(ours)
        print(f"enrolling {max(counts)} participants ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        plan = closed.enrol(ours["url"], max(counts))
        results["enrol"] = (len(plan), time.perf_counter() - t0)
        closed.copy_database(db_path, base_db)
        base = closed.start_server(gunicorn, "_study_baseline:create_app()", closed.REPO / "benchmarks",
                                   tmp / "baseline.log", {**env, "GAZELAB_BASELINE_DB": str(base_db)}, "/health")
        servers.append(base)
        acked = {"studyweb": 0, "baseline": 0}
        for n in counts:
            for name, server in (("studyweb", ours), ("baseline", base)):
                print(f"open loop: {name}, {n} participants, {args.seconds:g} s ...", file=sys.stderr, flush=True)
                cpu0 = closed.group_cpu_seconds(server["process"].pid)
                result = asyncio.run(open_loop(server["url"], plan[:n], args.seconds, args.ramp, args.seed))
                result["server_cpu_ms"] = (1e3 * (closed.group_cpu_seconds(server["process"].pid) - cpu0)
                                           / max(result["answered"], 1))
                results[name, n] = result
                acked[name] += result["acked_clicks"]
    finally:
        for server in servers:
            closed.stop_server(server)
    results["load"].append(closed.load_average())
    results["rows"] = {name: (acked[name], closed.count_rows(path, "clicks"))
                       for name, path in (("studyweb", db_path), ("baseline", base_db))}
    return results


async def open_loop(url: str, plan: list[dict], seconds: float, ramp: float, seed: int) -> dict:
    """Every participant of `plan` saves every SAVE_EVERY_S ± JITTER from a random start in the
    ramp until `seconds` have passed; each save is its own task, so none waits for another."""
    import aiohttp

    start = time.perf_counter()
    end = start + seconds
    latencies: list[float] = []
    errors: dict[str, int] = {}
    counts = {"sent": 0, "acked_clicks": 0}
    in_flight: set[asyncio.Task] = set()
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=4.0)  # the server keeps connections 5 s

    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:

        async def one_save(participant: dict, trial, body: str) -> None:
            headers = {"X-Participant-Token": participant["token"], "Content-Type": "application/json"}
            sent = time.perf_counter()
            try:
                async with http.post(f"{url}/api/v1/trials/{trial[0]}/save", data=body, headers=headers) as answer:
                    await answer.read()
                    outcome = "ok" if answer.status == 200 else f"HTTP {answer.status}"
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                outcome = type(exc).__name__
            if outcome == "ok":
                latencies.append(time.perf_counter() - sent)
                counts["acked_clicks"] += closed.CLICKS_PER_SAVE
            else:
                errors[outcome] = errors.get(outcome, 0) + 1

        async def participant_loop(i: int, participant: dict) -> None:
            import json

            rnd = random.Random(seed * 100_003 + i)
            await asyncio.sleep(rnd.uniform(0, ramp))
            k = 0
            while time.perf_counter() < end:
                trial = participant["trials"][k % len(participant["trials"])]
                k += 1
                body = json.dumps(closed.save_payload(rnd, trial[1], trial[2]))
                task = asyncio.create_task(one_save(participant, trial, body))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                counts["sent"] += 1
                await asyncio.sleep(SAVE_EVERY_S * rnd.uniform(1 - JITTER, 1 + JITTER))

        cpu0 = time.process_time()
        await asyncio.gather(*(participant_loop(i, p) for i, p in enumerate(plan)))
        if in_flight:  # the saves still unanswered at the end count too
            await asyncio.gather(*in_flight)
        cpu = time.process_time() - cpu0
    ms = np.array(latencies) * 1e3 if latencies else np.full(1, np.nan)
    return {"sent": counts["sent"], "answered": len(latencies), "per_s": len(latencies) / seconds,
            "p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "max": float(ms.max()),
            "errors": errors, "client_cpu": cpu / seconds, "acked_clicks": counts["acked_clicks"]}


def report(results: dict, counts: list[int], args) -> None:
    enrolled, enrol_s = results["enrol"]
    print(f"\nopen-loop trial saves: each participant saves every {SAVE_EVERY_S:g} s ± {100 * JITTER:.0f}%, "
          f"{closed.CLICKS_PER_SAVE} clicks per save, arrivals over {args.ramp:g} s, {args.seconds:g} s per row")
    print(f"    servers: {results['command']} (studyweb and the raw-sqlite3 baseline alike); SQLite WAL; "
          f"{enrolled} participants enrolled in {enrol_s:.1f} s (not timed); {os.cpu_count()} CPUs shared with "
          f"the clients; 1-min load average {results['load'][0]} before, {results['load'][1]} after")
    rows = []
    for n in counts:
        for name in ("studyweb", "baseline"):
            r = results[name, n]
            errors = ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "0"
            rows.append([name, n, r["sent"], r["answered"], f"{r['per_s']:.0f}", f"{r['p50']:.1f}",
                         f"{r['p99']:.1f}", f"{r['max']:.1f}", errors, f"{r['server_cpu_ms']:.2f}",
                         f"{100 * r['client_cpu']:.0f}%"])
    closed.table(["server", "participants", "sent", "answered", "saves/s", "p50 ms", "p99 ms", "max ms", "errors",
                  "server CPU ms/save", "client CPU"], rows)
    for n in counts:
        ours, base = results["studyweb", n], results["baseline", n]
        print(f"    {n} participants: studyweb p99 {ours['p99']:.1f} ms (baseline {base['p99']:.1f} ms); "
              f"server CPU per save {ours['server_cpu_ms'] / max(base['server_cpu_ms'], 1e-9):.2f}x the baseline's")
    if 1000 in counts:
        p99 = results["studyweb", 1000]["p99"]
        print(f"    goal: p99 < 100 ms at 1,000 participants: {'met' if p99 < 100 else 'MISSED'} ({p99:.1f} ms)")
    for name, (acked, stored) in results["rows"].items():
        print(f"    {name}: clicks acknowledged {acked}, clicks in the database {stored}"
              f" ({'equal' if acked == stored else 'DIFFERENT'})")


if __name__ == "__main__":
    sys.exit(main())
