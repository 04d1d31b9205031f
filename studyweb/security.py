"""App-wide protections: the admin login throttle (the `limits` library), security headers, the
Origin check on state-changing requests, and the client address behind a reverse proxy.

Settings (app.config, from the environment in `studyweb.config`):
LOGIN_LIMITS           failed admin logins allowed, per username and address and per address
                       (default "5 per minute" and "30 per minute"); then 429 with Retry-After
RATELIMIT_STORAGE_URI  where the counts live (default memory://, one count per worker process;
                       redis://HOST:6379 shares them between workers and hosts)
ALLOWED_ORIGINS        other origins (scheme://host[:port]) whose pages may POST here
PROXY_COUNT            reverse proxies in front of the app whose X-Forwarded-* headers are
                       trusted (0: none; the client address is the socket's)
"""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

# The admin pages load scripts, styles and images only from this server and are never framed.
ADMIN_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
             "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def init_app(app) -> None:
    """Install the protections on `app` (after its blueprints are registered)."""
    from flask import request

    proxies = int(app.config.get("PROXY_COUNT") or 0)
    if proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
    per_user, per_address = app.config.get("LOGIN_LIMITS", ("5 per minute", "30 per minute"))
    app.extensions["studyweb.login_throttle"] = LoginThrottle(
        app.config.get("RATELIMIT_STORAGE_URI", "memory://"), per_user, per_address)  # one per app: tests never share
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


class LoginThrottle:
    """Failed admin logins counted in moving one-minute windows (the `limits` library, which
    Flask-Limiter is built on), per (username, address) and per address. Only the login view
    consults it, so no other request pays for it."""

    def __init__(self, storage_uri: str = "memory://", per_user: str = "5 per minute",
                 per_address: str = "30 per minute"):
        from limits import parse
        from limits.storage import storage_from_string
        from limits.strategies import MovingWindowRateLimiter

        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self._limits = ((parse(per_user), True), (parse(per_address), False))

    def retry_after(self, username: str, address: str) -> int | None:
        """Seconds until this username may try again from this address, or None if it may now."""
        import math
        import time

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


def login_throttle():
    """The app's LoginThrottle (made by `init_app`)."""
    from flask import current_app

    return current_app.extensions["studyweb.login_throttle"]


def _check_origin():
    """403 for a state-changing request whose Origin header names another site (a page
    elsewhere posting with the participant's or admin's cookies). Requests without Origin
    (scripts, the simulated participants, old browsers) pass: the CSRF token and the
    participant token still guard them."""
    from flask import abort, current_app, jsonify, request

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
