"""Fixtures for the web half of studyweb (flaskr style): app, client, runner, and a small
BubbleView experiment over the `dataset` fixture from tests/conftest.py."""
from __future__ import annotations

import pytest

from studyweb import create_app
from studyweb.db import Admin, Participant
from studyweb.db import init_db
from studyweb.experiments import create_experiment

EXPERIMENT = "pilot"


@pytest.fixture
def app(tmp_path, dataset):
    """An app on a fresh SQLite database in tmp_path, with experiment 'pilot' (3 pairs, both
    sides = 6 stimuli of 16x12 px; K=2 per participant, M=3 observers) and admin 'alice'."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    init_db(url)
    app = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "test",
                      "INSTANCE_DIR": str(tmp_path / "instance"), "MAX_CONTENT_LENGTH": 64 * 1024})
    app.instance_path = str(tmp_path / "instance")
    with app.app_context():
        db = app.extensions["studyweb.sessions"]()
        create_experiment(db, dataset.path, EXPERIMENT, title="Pilot", description="A <b>tiny</b> study",
                          per_participant=2, observers=3, completion_code="CODE123")
        admin = Admin(username="alice")
        admin.set_password("correct horse")
        db.add(admin)
        db.commit()
        db.close()
    yield app
    app.extensions["studyweb.engine"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def dbs(app):
    """A session on the app's database (for assertions), closed after the test."""
    session = app.extensions["studyweb.sessions"]()
    yield session
    session.close()


@pytest.fixture
def enrol(app):
    """enrol(**query) -> (a fresh test client, token) of a participant who consented and
    read the instructions (status 'practice')."""

    def make(**query):
        c = app.test_client()
        r = c.get(f"/s/{EXPERIMENT}", query_string=query)
        assert r.status_code == 302, r.data
        token = c.get_cookie(app.config["PARTICIPANT_COOKIE"]).value
        assert c.post(f"/s/{EXPERIMENT}/consent", data={"consent": "yes"}).status_code == 302
        assert c.post(f"/s/{EXPERIMENT}/instructions", data={"window_w": "800"}).status_code == 302
        return c, token

    return make


@pytest.fixture
def participant_of(dbs):
    """participant_of(token) -> the Participant, freshly read."""

    def get(token) -> Participant:
        dbs.expire_all()
        return dbs.query(Participant).filter_by(token=token).one()

    return get
