"""App-wide protections: the admin login throttle (the `limits` library), security headers, the
Origin check on state-changing requests, and the client address behind a reverse proxy.

Settings (app.config, from the environment in `studyweb.config`):
LOGIN_LIMITS           failed admin logins allowed, per username and address and per address
                       (default "5 per minute" and "30 per minute"); then 429 with Retry-After
RATELIMIT_STORAGE_URI  where the counts live: unset (the default), a SQLite file in the instance
                       folder (LOGIN_FAILURES_FILE), shared by every worker process of the host;
                       redis://HOST:6379 shares them between hosts too; memory:// keeps one count
                       per process (gunicorn_conf refuses it with more than one worker)
ALLOWED_ORIGINS        other origins (scheme://host[:port]) whose pages may POST here
PROXY_COUNT            reverse proxies in front of the app whose X-Forwarded-* headers are
                       trusted (0: none; the client address is the socket's)
"""
from __future__ import annotations

import logging
import math
import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from flask import abort, current_app, jsonify, request
from limits import parse
from limits.storage import MovingWindowSupport, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from werkzeug.middleware.proxy_fix import ProxyFix

log = logging.getLogger(__name__)
LOGIN_FAILURES_FILE = "login_failures.sqlite3"

# The admin pages load scripts, styles and images only from this server and are never framed.
ADMIN_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
             "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def init_app(app) -> None:
    """Install the protections on `app` (after its blueprints are registered)."""
    proxies = int(app.config.get("PROXY_COUNT") or 0)
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
    per_user, per_address = app.config.get("LOGIN_LIMITS", ("5 per minute", "30 per minute"))
    app.extensions["studyweb.login_throttle"] = LoginThrottle(
        login_storage(app.config.get("RATELIMIT_STORAGE_URI"), app.instance_path), per_user, per_address)
    app.before_request(_check_origin)

    @app.after_request
    def security_headers(response):
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        # Participant links carry their token in the URL: never send it on to another site.
        # (not no-referrer: with it, Chromium sends "Origin: null" on the pages' own form posts)
        headers.setdefault("Referrer-Policy", "same-origin")
        if request.blueprint == "admin":
            headers.setdefault("X-Frame-Options", "DENY")
            headers.setdefault("Content-Security-Policy", ADMIN_CSP)
        return response


def login_storage(uri: str | None, instance_path) -> Storage:
    """Where failed logins are counted: the `limits` storage at `uri` (memory://, redis://...),
    or, with no uri, the SQLite file LOGIN_FAILURES_FILE in `instance_path`."""
    if uri:
        return storage_from_string(uri)
    return SqliteWindowStorage(Path(instance_path) / LOGIN_FAILURES_FILE)


class LoginThrottle:
    """Failed admin logins counted in moving one-minute windows (the `limits` library, which
    Flask-Limiter is built on), per (username, address) and per address, in `storage`
    (`login_storage`). Only the login view consults it, so no other request pays for it."""

    def __init__(self, storage: Storage, per_user: str = "5 per minute",
                 per_address: str = "30 per minute"):
        self._limiter = MovingWindowRateLimiter(storage)
        self._limits = ((parse(per_user), True), (parse(per_address), False))

    def retry_after(self, username: str, address: str) -> int | None:
        """Seconds until this username may try again from this address, or None if it may now."""
        for item, with_user in self._limits:
            keys = self._keys(username, address, with_user)
            if not self._limiter.test(item, *keys):
                reset = self._limiter.get_window_stats(item, *keys).reset_time
                return max(1, math.ceil(reset - time.time()))
        return None

    def failed(self, username: str, address: str) -> None:
        """Count one failed login."""
        for item, with_user in self._limits:
            self._limiter.hit(item, *self._keys(username, address, with_user))

    @staticmethod
    def _keys(username: str, address: str, with_user: bool) -> tuple[str, ...]:
        return ("admin-login", username.strip().lower()[:64], address) if with_user else ("admin-login", address)


class SqliteWindowStorage(Storage, MovingWindowSupport):
    """`limits`' moving windows in a SQLite file (one row per counted hit: key, time, expiry in
    seconds since the epoch), so every process that opens the file counts the same hits: the
    workers of a gunicorn server, which share the instance folder. Each call is one short
    transaction (BEGIN IMMEDIATE: two workers never both take the last allowed hit); rows past
    their expiry are deleted as hits come. The file holds usernames and addresses: mode 0600.
    Moving windows only (what LoginThrottle uses): the fixed-window counters are not kept."""

    base_exceptions = sqlite3.Error  # what limits' error wrapper catches

    def __init__(self, path: str | os.PathLike):
        super().__init__(wrap_exceptions=False)
        self.path = str(path)
        os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        with self._transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS hits (key TEXT NOT NULL, at REAL NOT NULL, expires REAL NOT NULL)")
            db.execute("CREATE INDEX IF NOT EXISTS ix_hits_key_at ON hits (key, at)")

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Count `amount` hits on `key` unless that makes more than `limit` within `expiry` s."""
        if amount > limit:
            return False
        now = time.time()
        with self._transaction() as db:
            db.execute("DELETE FROM hits WHERE expires < ?", (now,))
            (count,) = db.execute("SELECT COUNT(*) FROM hits WHERE key = ? AND at >= ?", (key, now - expiry)).fetchone()
            if count + amount > limit:
                return False
            db.executemany("INSERT INTO hits VALUES (?, ?, ?)", [(key, now, now + expiry)] * amount)
        return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(time of the oldest hit within the last `expiry` s, hits in that window); (now, 0) if none."""
        now = time.time()
        with self._transaction() as db:
            start, count = db.execute("SELECT MIN(at), COUNT(*) FROM hits WHERE key = ? AND at >= ?",
                                      (key, now - expiry)).fetchone()
        return (start, count) if count else (now, 0)

    def clear(self, key: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM hits WHERE key = ?", (key,))

    def reset(self) -> int:
        with self._transaction() as db:
            return db.execute("DELETE FROM hits").rowcount

    def check(self) -> bool:
        try:
            with self._transaction() as db:
                db.execute("SELECT 1 FROM hits LIMIT 1")
        except sqlite3.Error:
            return False
        return True

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        raise NotImplementedError("SqliteWindowStorage keeps moving windows only (MovingWindowRateLimiter)")

    def get(self, key: str) -> int:
        raise NotImplementedError("SqliteWindowStorage keeps moving windows only (MovingWindowRateLimiter)")

    def get_expiry(self, key: str) -> float:
        raise NotImplementedError("SqliteWindowStorage keeps moving windows only (MovingWindowRateLimiter)")

    @contextmanager
    def _transaction(self):
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()


def login_throttle():
    """The app's LoginThrottle (made by `init_app`)."""
    return current_app.extensions["studyweb.login_throttle"]


def _check_origin():
    """403 for a state-changing request whose Origin header names another site (a page
    elsewhere posting with the participant's or admin's cookies). Requests without Origin
    (scripts, the simulated participants, old browsers) pass: the CSRF token and the
    participant token still guard them."""
    if request.method not in UNSAFE_METHODS:
        return None
    origin = request.headers.get("Origin")
    if origin is None or _same_origin(origin, request.host, current_app.config.get("ALLOWED_ORIGINS") or ()):
        return None
    log.warning("refused %s %s from Origin %r", request.method, request.path, origin[:200])
    message = f"requests from {origin[:100]!r} are not accepted here; open the study from its own address"
    if request.path.startswith("/api/"):
        return jsonify(error="forbidden", message=message), 403
    abort(403, description=message)


def _same_origin(origin: str, host: str, allowed) -> bool:
    """Whether `origin` is this server (its host[:port] equals the request's Host) or allowed."""
    if origin in allowed:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()
