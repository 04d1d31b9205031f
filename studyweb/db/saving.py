"""Idempotent saves: each save a participant's client sends carries an idempotency key, and
`record_save` claims it in the save's own transaction, so a save sent twice (a lost answer, a
retry) is applied once, and a key sent again with other content is refused (`KeyReused`).
"""
from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from studyweb.db.schema import SaveRecord, utcnow
from studyweb.driver_sql import DriverStatement, begin


class KeyReused(ValueError):
    """An idempotency key this participant already used for a save with other content (the
    content digest covers the route and the trial too: see `record_save`)."""

    def __init__(self, idempotency_key: str, kind: str):
        super().__init__(f"idempotency_key {idempotency_key!r} was already used for another {kind} save with"
                         " different content or to another trial; send each save with a new key")
        self.idempotency_key = idempotency_key


def record_save(session: Session, idempotency_key: str, participant_id: int, kind: str,
                content_sha256: str | None = None) -> bool:
    """Claim a participant's idempotency key inside the caller's transaction: True the first
    time (apply the save, then commit), False when this participant already applied the key
    with the same content (skip the save). KeyReused when the earlier save under this key
    carried other content (`content_sha256` differs) or was of another kind.

    `content_sha256` is the caller's `content_digest` of everything that makes the save what it
    is: the body and where it was sent (the API's digest covers the route and the trial), so
    the same body under one key sent to two trials is refused the second time, never taken
    for a resend of the first.

    Race-safe: the (participant, key) primary key decides, through INSERT ... ON CONFLICT DO
    NOTHING, so two requests with the same key at once apply it exactly once."""
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        return claim_key(session.connection(), idempotency_key, participant_id, kind, content_sha256)
    values = _claim_values(idempotency_key, participant_id, kind, content_sha256)
    try:  # other databases: a savepoint and the PK's IntegrityError
        with session.begin_nested():
            session.add(SaveRecord(**values))
        return True
    except IntegrityError:
        _check_same_content(session.connection(), values)
        return False


def claim_key(connection, idempotency_key: str, participant_id: int, kind: str,
              content_sha256: str | None = None) -> bool:
    """`record_save` on a Core connection (SQLite, PostgreSQL), inside the caller's transaction."""
    values = _claim_values(idempotency_key, participant_id, kind, content_sha256)
    begin(connection)
    cursor = _claim_statement(connection.dialect.name).execute(connection, values)
    claimed = cursor.rowcount == 1
    cursor.close()
    if claimed:
        return True
    _check_same_content(connection, values)
    return False


def content_digest(content: Any) -> str:
    """SHA-256 (hex) of a JSON-able save content, independent of key order; what
    `record_save` compares when a key comes back."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _check_same_content(connection, values: dict[str, Any]) -> None:
    """KeyReused unless the stored save under this participant's key has the same kind and
    content (a record without a digest, from before digests were kept, counts as the same)."""
    table = SaveRecord.__table__
    stored = connection.execute(
        select(table.c.kind, table.c.content_sha256)
        .where(table.c.participant_id == values["participant_id"],
               table.c.idempotency_key == values["idempotency_key"])).first()
    if stored is None:  # claimed by a transaction that has not committed yet: the PK waits on PostgreSQL
        return
    if stored.kind != values["kind"] or (
            stored.content_sha256 is not None and values["content_sha256"] is not None
            and stored.content_sha256 != values["content_sha256"]):
        raise KeyReused(values["idempotency_key"], values["kind"])


def _claim_values(idempotency_key: str, participant_id: int, kind: str, content_sha256: str | None) -> dict[str, Any]:
    if not idempotency_key or len(idempotency_key) > 64:
        raise ValueError(f"idempotency_key must be 1..64 characters, got {len(idempotency_key or '')}")
    return dict(idempotency_key=idempotency_key, participant_id=participant_id, kind=kind,
                content_sha256=content_sha256, received_at=utcnow())


@functools.cache
def _claim_statement(dialect: str):
    """INSERT … ON CONFLICT DO NOTHING into save_records, built once per dialect and run on the
    driver's cursor (`studyweb.driver_sql`: every save claims a key), whose rowcount says
    whether the row went in."""
    insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
    table = SaveRecord.__table__
    return DriverStatement(insert(table).values({column.name: bindparam(column.name, type_=column.type)
                                                 for column in table.columns}).on_conflict_do_nothing())
