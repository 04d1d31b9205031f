"""App-wide protections: the admin login throttle (Flask-Limiter), security headers, the Origin
check on state-changing requests, and the client address behind a reverse proxy.

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
LOGIN_ENDPOINT = "admin.login"
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def init_app(app) -> None:
    """Install the protections on `app` (after its blueprints are registered)."""
    from flask import request

    proxies = int(app.config.get("PROXY_COUNT") or 0)
    if proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
    _throttle_logins(app)
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


def _throttle_logins(app) -> None:
    """Count failed logins (answers 401) per (username, address) and per address with
    Flask-Limiter; over a limit the login answers 429 with a Retry-After header. A limiter per
    app, so apps in one process (tests) never share counts."""
    from flask import request
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    limiter = Limiter(get_remote_address, app=app, storage_uri=app.config.get("RATELIMIT_STORAGE_URI", "memory://"),
                      headers_enabled=True, default_limits=[])
    per_user, per_address = app.config.get("LOGIN_LIMITS", ("5 per minute", "30 per minute"))

    def user_and_address() -> str:
        return f"{request.form.get('username', '')[:64].strip().lower()}|{get_remote_address()}"

    @limiter.request_filter
    def not_the_login() -> bool:  # the limiter skips every other request at once (the saves' hot path)
        return request.endpoint != LOGIN_ENDPOINT

    failed = lambda response: response.status_code == 401  # noqa: E731 — only failures count
    view = app.view_functions[LOGIN_ENDPOINT]
    view = limiter.limit(per_address, methods=["POST"], deduct_when=failed, scope="login-address")(view)
    view = limiter.limit(per_user, key_func=user_and_address, methods=["POST"], deduct_when=failed,
                         scope="login-user")(view)
    app.view_functions[LOGIN_ENDPOINT] = view
    app.extensions["studyweb.limiter"] = limiter


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
