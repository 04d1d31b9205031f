"""studyweb.driver_sql: Core statements run on the driver's cursor store and read exactly what
SQLAlchemy's own execution stores and reads, inside the Connection's transaction, on SQLite and
PostgreSQL."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Integer, bindparam, insert, select, update

from studyweb import db
from studyweb.driver_sql import DriverStatement, begin


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_db")
    db.init_db(url)
    engine = db.make_engine(url)
    with engine.connect() as conn:
        conn.execute(insert(db.Experiment.__table__).values(
            id=1, name="e", title="", description="", task="bubbleview", dataset_path="",
            settings={"time_limit_s": 7.5}, status="open", created_at=db.utcnow()))
        conn.execute(insert(db.Participant.__table__).values(
            id=1, experiment_id=1, token="tok", recruit_source="anonymous", source="real", status="trials",
            created_at=db.utcnow(), last_seen_at=dt.datetime(2026, 1, 2, 3, 4, 5)))
        conn.execute(insert(db.Trial.__table__).values(id=1, participant_id=1, position=0, is_practice=False,
                                                      status="started"))
        conn.commit()
    yield engine
    engine.dispose()


CLICKS = db.Click.__table__
INSERT_CLICK = DriverStatement(insert(CLICKS).values(
    {name: bindparam(name, type_=CLICKS.c[name].type)
     for name in ("trial_id", "x", "y", "t_ms", "display_w", "display_h", "idempotency_key", "late")}))
P, E = db.Participant.__table__, db.Experiment.__table__
READ = DriverStatement(
    select(P.c.id, P.c.status, P.c.last_seen_at, E.c.settings["time_limit_s"].as_float().label("time_limit_s"),
           E.c.settings)
    .join(E, E.c.id == P.c.experiment_id).where(P.c.token == bindparam("token")))


def _click(k: int, late: bool) -> dict:
    return dict(trial_id=1, x=1.25 * k, y=2.5, t_ms=100.0 * k, display_w=640.0, display_h=None,
                idempotency_key=f"key-{k}", late=late)


def test_rows_written_and_read_equal_sqlalchemys(engine):
    with engine.connect() as conn:
        begin(conn)
        INSERT_CLICK.executemany(conn, [_click(1, True), _click(2, False)])
        conn.commit()
        stored = conn.execute(select(CLICKS.c.x, CLICKS.c.y, CLICKS.c.t_ms, CLICKS.c.display_w, CLICKS.c.display_h,
                                     CLICKS.c.idempotency_key, CLICKS.c.late).order_by(CLICKS.c.id)).all()
        assert [tuple(r) for r in stored] == [(1.25, 2.5, 100.0, 640.0, None, "key-1", True),
                                              (2.5, 2.5, 200.0, 640.0, None, "key-2", False)]
        ours = READ.first(conn, {"token": "tok"})
        theirs = conn.execute(READ.statement, {"token": "tok"}).first()
        assert tuple(ours) == tuple(theirs)
        assert ours.last_seen_at == dt.datetime(2026, 1, 2, 3, 4, 5) and ours.time_limit_s == 7.5
        assert ours.settings == {"time_limit_s": 7.5}
        assert READ.first(conn, {"token": "nobody"}) is None


def test_a_datetime_is_stored_as_sqlalchemy_stores_it(engine):
    when = dt.datetime(2026, 12, 6, 21, 0, 0)  # no microseconds: SQLite's text keeps the .000000
    statement = DriverStatement(update(P).where(P.c.id == bindparam("row_id", type_=Integer))
                                .values(last_seen_at=bindparam("last_seen_at", type_=P.c.last_seen_at.type)))
    with engine.connect() as conn:
        begin(conn)
        statement.execute(conn, {"row_id": 1, "last_seen_at": when}).close()
        conn.commit()
        assert conn.execute(select(P.c.last_seen_at)).scalar_one() == when
    if engine.dialect.name == "sqlite":
        import sqlite3

        with sqlite3.connect(engine.url.database) as raw:
            assert raw.execute("SELECT last_seen_at FROM participants").fetchone()[0] == "2026-12-06 21:00:00.000000"


def test_driver_statements_belong_to_the_connections_transaction(engine):
    with engine.connect() as conn:
        begin(conn)
        INSERT_CLICK.executemany(conn, [_click(1, False)])
        conn.rollback()
        begin(conn)
        INSERT_CLICK.executemany(conn, [_click(2, False)])
        conn.commit()
    with engine.connect() as conn:
        assert conn.execute(select(CLICKS.c.idempotency_key)).scalars().all() == ["key-2"]


def test_a_claim_counts_one_insert_per_key(engine):
    with engine.connect() as conn:
        assert db.claim_key(conn, "k1", 1, "trial", "a" * 64) is True
        assert db.claim_key(conn, "k1", 1, "trial", "a" * 64) is False  # the same save again
        with pytest.raises(db.KeyReused):
            db.claim_key(conn, "k1", 1, "trial", "b" * 64)
        conn.commit()
        assert conn.execute(select(db.SaveRecord.__table__.c.idempotency_key)).scalars().all() == ["k1"]
