"""The baseline app for `bench_study.py`: a minimal Flask route that stores a trial save with
raw `sqlite3`, served by the same gunicorn settings as studyweb.

    GAZELAB_BASELINE_DB=/path/to/copy.db gunicorn -w 2 -k gthread --threads 4 '_study_baseline:create_app()'

POST /api/v1/trials/<id>/save with the same JSON body and X-Participant-Token header as
studyweb's route writes the same rows into a copy of studyweb's schema: the participant looked
up by token, one `save_records` row (INSERT OR IGNORE on the idempotency key) and one `clicks`
row per click (x, y in image pixels, t_ms, display size in CSS px, the key). It does none of
the rest: no validation, no ownership check, no trial or participant update, no ORM.
Connections: one per thread, with studyweb's pragmas (WAL, foreign keys, busy timeout,
synchronous=NORMAL); Python's default isolation, so the token lookup runs outside the write
transaction, as it does under SQLAlchemy's pysqlite driver.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import threading

from flask import Flask, jsonify, request

BUSY_TIMEOUT_MS = 10_000  # as studyweb.db.SQLITE_BUSY_TIMEOUT_MS


def create_app() -> Flask:
    """The baseline app on the SQLite file named by GAZELAB_BASELINE_DB."""
    path = os.environ["GAZELAB_BASELINE_DB"]
    local = threading.local()
    app = Flask(__name__)

    def connection() -> sqlite3.Connection:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)
            for pragma in ("journal_mode=WAL", "foreign_keys=ON", f"busy_timeout={BUSY_TIMEOUT_MS}",
                           "synchronous=NORMAL"):
                conn.execute(f"PRAGMA {pragma}")
            local.conn = conn
        return conn

    @app.get("/health")
    def health():
        return jsonify(ok=True)

    @app.post("/api/v1/trials/<int:trial_id>/save")
    def save(trial_id: int):
        body = json.loads(request.get_data())
        key = body["idempotency_key"]
        conn = connection()
        row = conn.execute("SELECT id FROM participants WHERE token = ?",
                           (request.headers.get("X-Participant-Token", ""),)).fetchone()
        if row is None:
            return jsonify(error="unauthorized"), 401
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
        inserted = conn.execute(
            "INSERT OR IGNORE INTO save_records (idempotency_key, participant_id, kind, received_at)"
            " VALUES (?, ?, 'trial', ?)", (key, row[0], now)).rowcount == 1
        clicks = body.get("clicks", []) if inserted else []
        conn.executemany(
            "INSERT INTO clicks (trial_id, x, y, t_ms, display_w, display_h, idempotency_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(trial_id, c["x"], c["y"], c["t_ms"], body.get("display_w"), body.get("display_h"), key)
             for c in clicks])
        conn.commit()
        return jsonify(ok=True, duplicate=not inserted, stored_clicks=len(clicks), status="trials")

    return app
