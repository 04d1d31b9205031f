"""Who is asking: a participant's token from the X-Participant-Token header, a `t` query or
form field (the URL token the JS and links carry), or the HttpOnly cookie, in that order."""
from __future__ import annotations

from flask import current_app, request
from sqlalchemy import select

from studyweb.db.request import get_db
from studyweb.db.schema import Participant

MAX_TOKEN_LENGTH = 64


def request_token() -> str | None:
    """The participant token this request carries, or None."""
    for source in _TOKEN_SOURCES:  # in order, each looked at only when the ones before had none
        value = source()
        if value and len(value) <= MAX_TOKEN_LENGTH:
            return value
    return None


_TOKEN_SOURCES = (
    lambda: request.headers.get("X-Participant-Token"),
    lambda: request.args.get("t"),
    lambda: request.form.get("t") if request.mimetype == "application/x-www-form-urlencoded" else None,
    lambda: request.cookies.get(current_app.config["PARTICIPANT_COOKIE"]),
)


def current_participant(experiment_id: int | None = None) -> Participant | None:
    """The participant whose token this request carries (restricted to `experiment_id` when
    given), or None."""
    token = request_token()
    if token is None:
        return None
    query = select(Participant).where(Participant.token == token)
    if experiment_id is not None:
        query = query.where(Participant.experiment_id == experiment_id)
    return get_db().scalars(query).first()


def set_token_cookie(response, participant: Participant):
    """Remember the participant in an HttpOnly, SameSite=Lax cookie (30 days); returns response."""
    response.set_cookie(
        current_app.config["PARTICIPANT_COOKIE"], participant.token, max_age=30 * 24 * 3600,
        httponly=True, samesite="Lax", secure=current_app.config.get("SESSION_COOKIE_SECURE", False),
    )
    return response
