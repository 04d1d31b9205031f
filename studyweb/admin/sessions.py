"""Admin sessions kept on the server (`studyweb.db.AdminSession`).

The browser's signed session cookie carries only a random token; the database holds its
SHA-256 with the admin, the login time and the last activity. A request counts as logged in
only while that row exists, so logging out (which deletes it) ends the session for every copy
of the cookie, and so do ADMIN_SESSION_IDLE_MIN minutes without a request and
ADMIN_SESSION_MAX_H hours after login. Changing an admin's password ends all their sessions.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from flask import current_app, request, session
from sqlalchemy import delete
from sqlalchemy.orm import Session

from studyweb.db.schema import Admin, AdminSession, utcnow

COOKIE_FIELD = "admin_session"
DEFAULT_IDLE_MIN = 120.0
DEFAULT_MAX_H = 12.0
TOUCH_PRECISION = dt.timedelta(minutes=1)  # last_seen_at is written at most once a minute


def start_session(db: Session, admin: Admin) -> None:
    """Log `admin` in: a new server-side session, and a fresh cookie session holding only its
    token (no fixation: whatever the cookie held before is dropped). The caller commits."""
    token = secrets.token_urlsafe(32)
    db.add(AdminSession(id=_digest(token), admin_id=admin.id, created_at=utcnow(), last_seen_at=utcnow(),
                        address=(request.remote_addr or "")[:64],
                        user_agent=(request.headers.get("User-Agent") or "")[:300]))
    session.clear()
    session[COOKIE_FIELD] = token


def current_admin(db: Session) -> Admin | None:
    """The admin whose live server-side session this request's cookie names, or None (no
    token, a logged-out or expired session). An expired session's row is deleted; an active
    one's last_seen_at is moved on (the caller's request commits it)."""
    token = session.get(COOKIE_FIELD)
    if not isinstance(token, str):
        return None
    row = db.get(AdminSession, _digest(token))
    if row is None:
        return None
    now = utcnow()
    config = current_app.config
    idle = dt.timedelta(minutes=float(config.get("ADMIN_SESSION_IDLE_MIN", DEFAULT_IDLE_MIN)))
    lifetime = dt.timedelta(hours=float(config.get("ADMIN_SESSION_MAX_H", DEFAULT_MAX_H)))
    if now - row.last_seen_at > idle or now - row.created_at > lifetime:
        db.delete(row)
        db.commit()
        return None
    if now - row.last_seen_at > TOUCH_PRECISION:
        row.last_seen_at = now
        db.commit()
    return row.admin


def end_session(db: Session) -> None:
    """Log out: delete this cookie's server-side session and clear the cookie. Commits."""
    token = session.get(COOKIE_FIELD)
    if isinstance(token, str):
        db.execute(delete(AdminSession).where(AdminSession.id == _digest(token)))
        db.commit()
    session.clear()


def end_all_sessions(db: Session, admin_id: int) -> int:
    """Delete every server-side session of one admin (after a password change); how many.
    The caller commits."""
    return db.execute(delete(AdminSession).where(AdminSession.admin_id == admin_id)).rowcount


def _digest(token: str) -> str:
    """What the table keeps of a token: a leaked table holds no usable cookie."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
