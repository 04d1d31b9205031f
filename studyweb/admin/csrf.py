"""A small CSRF guard for the admin forms: a random token kept in the (signed, HttpOnly)
session cookie, rendered into every form as `csrf_token`, compared in constant time on POST."""
from __future__ import annotations

import hmac
import secrets

from flask import abort, request, session

FIELD = "csrf_token"


def csrf_token() -> str:
    """The session's CSRF token (created on first use); templates call it in every form."""
    if FIELD not in session:
        session[FIELD] = secrets.token_urlsafe(32)
    return session[FIELD]


def check_csrf() -> None:
    """Abort 400 unless a state-changing request carries the session's token (form field or
    X-CSRF-Token header)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    expected = session.get(FIELD)
    sent = request.form.get(FIELD) or request.headers.get("X-CSRF-Token") or ""
    if not expected or not hmac.compare_digest(str(expected), str(sent)):
        abort(400, description="missing or wrong CSRF token; reload the page and try again")
