"""Fixtures for the web half of studyweb (flaskr style): app, client, runner, and a small
BubbleView experiment over the `dataset` fixture from tests/conftest.py."""
from __future__ import annotations

import pytest

from studyweb import create_app
from studyweb.db.revisions import init_db
from studyweb.db.schema import Admin, Participant
from studyweb.experiments import create_experiment

EXPERIMENT = "pilot"


@pytest.fixture
def url(tmp_path):
    """The URL of a SQLite database file in tmp_path (not created)."""
    return f"sqlite:///{tmp_path / 'gazelab.db'}"


@pytest.fixture
def session(url):
    """A session on a fresh database at `url`, migrated to head (no app), closed after the test."""
    from studyweb import db

    db.init_db(url)
    engine = db.make_engine(url)
    with db.session_factory(engine)() as session:
        yield session
    engine.dispose()


@pytest.fixture
def app(tmp_path, study_app_on):
    """An app on a fresh SQLite database in tmp_path, with experiment 'pilot' (3 pairs, both
    sides = 6 stimuli of 16x12 px; K=2 per participant, M=3 observers) and admin 'alice'."""
    return study_app_on(f"sqlite:///{tmp_path / 'study.db'}")


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
def enrol_in(app):
    """enrol_in(experiment, **query) -> (a fresh test client, token) of a participant of
    `experiment` who consented and read the instructions."""

    def make(experiment: str, **query):
        c = app.test_client()
        r = c.get(f"/s/{experiment}", query_string=query)
        assert r.status_code == 302, r.data
        token = c.get_cookie(app.config["PARTICIPANT_COOKIE"]).value
        assert c.post(f"/s/{experiment}/consent", data={"consent": "yes"}).status_code == 302
        assert c.post(f"/s/{experiment}/instructions", data={"window_w": "800"}).status_code == 302
        return c, token

    return make


@pytest.fixture
def enrol(enrol_in):
    """enrol(**query) -> (a fresh test client, token) of a participant of 'pilot' who consented
    and read the instructions (status 'practice')."""
    return lambda **query: enrol_in(EXPERIMENT, **query)


@pytest.fixture
def participant_of(dbs):
    """participant_of(token) -> the Participant, freshly read."""

    def get(token) -> Participant:
        dbs.expire_all()
        return dbs.query(Participant).filter_by(token=token).one()

    return get


# --- Fresh PostgreSQL databases, the app on any database, and gunicorn servers ------------------
# (test_postgres.py, test_reliability.py)


@pytest.fixture(scope="session")
def postgres_template(postgres_url):
    """The name of a database migrated to head on the throwaway server: fresh test databases are
    copied from it (CREATE DATABASE ... TEMPLATE), which is much faster than migrating each."""
    import uuid

    from studyweb.db.revisions import init_db

    name = f"gazelab_template_{uuid.uuid4().hex[:12]}"
    _postgres_admin(postgres_url, f'CREATE DATABASE "{name}"')
    init_db(_postgres_database_url(postgres_url, name))  # disposes its engine, so the copy can start
    yield name
    _postgres_admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_database(postgres_url, postgres_template):
    """postgres_database(migrated=True) -> the SQLAlchemy URL of a new database of its own on the
    throwaway server: a copy of the migrated template, or empty with migrated=False. Every
    database made is dropped after the test (WITH (FORCE): lingering connections are cut)."""
    import uuid

    names = []

    def make(migrated: bool = True) -> str:
        name = f"test_{uuid.uuid4().hex[:16]}"
        template = f' TEMPLATE "{postgres_template}"' if migrated else ""
        _postgres_admin(postgres_url, f'CREATE DATABASE "{name}"{template}')
        names.append(name)
        return _postgres_database_url(postgres_url, name)

    yield make
    for name in names:
        _postgres_admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_db(postgres_database):
    """The URL of a fresh PostgreSQL database migrated to head (see `postgres_database`)."""
    return postgres_database()


def _postgres_admin(server_url: str, statement: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE) on the server's `postgres` db."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


def _postgres_database_url(server_url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture
def study_app_on(tmp_path, dataset):
    """study_app_on(url) -> an app like `app` (experiment 'pilot' on the 3-pair dataset, K=2,
    M=3, completion code CODE123; admin 'alice') on the database at `url`, migrated to head
    first. Its engine is disposed after the test."""
    apps = []

    def make(url: str):
        init_db(url)
        instance = tmp_path / f"instance{len(apps)}"
        study = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": None,  # the instance's key
                            "INSTANCE_DIR": str(instance), "MAX_CONTENT_LENGTH": 64 * 1024})
        apps.append(study)
        with study.app_context():
            db = study.extensions["studyweb.sessions"]()
            create_experiment(db, dataset.path, EXPERIMENT, title="Pilot", description="A <b>tiny</b> study",
                              per_participant=2, observers=3, completion_code="CODE123")
            admin = Admin(username="alice")
            admin.set_password("correct horse")
            db.add(admin)
            db.commit()
            db.close()
        return study

    yield make
    for study in apps:
        study.extensions["studyweb.engine"].dispose()


class GunicornServer:
    """`gunicorn -c python:studyweb.gunicorn_conf 'studyweb:create_app()'` (the README's
    production command) on 127.0.0.1:`port`, in a process group of its own (so `kill()` can
    SIGKILL the master and its workers at once, as a crash would).

    workers=2 gthread workers with `threads` threads each: sync workers serve one request per
    process, so 50 clients would queue behind 2 requests; threads overlap the waits on the
    database. The log goes to `log_path`; `start()` returns once the app answers HTTP."""

    def __init__(self, database_url: str, instance_dir, log_path, port: int, workers: int = 2, threads: int = 8):
        self.database_url, self.instance_dir, self.log_path = database_url, str(instance_dir), log_path
        self.port, self.workers, self.threads = port, workers, threads
        self.process = None
        self.url = f"http://127.0.0.1:{port}"

    def start(self, timeout_s: float = 30.0) -> "GunicornServer":
        import os
        import subprocess
        import sys
        import time

        import requests

        if self.process is not None:
            raise RuntimeError(f"gunicorn on port {self.port} is already running (pid {self.process.pid})")
        env = {**os.environ, "GAZELAB_DATABASE_URL": self.database_url, "GAZELAB_INSTANCE_DIR": self.instance_dir,
               "GAZELAB_ENV": "development", "GAZELAB_ACCESS_LOG": ""}
        env.pop("GAZELAB_SECRET_KEY", None)  # the key generated into the instance folder, shared by the workers
        command = [sys.executable, "-m", "gunicorn", "-c", "python:studyweb.gunicorn_conf",
                   "--workers", str(self.workers), "--threads", str(self.threads), "--bind", f"127.0.0.1:{self.port}",
                   "--graceful-timeout", "5", "--log-level", "warning", "studyweb:create_app()"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                self.process = None
                raise RuntimeError(f"gunicorn exited while starting:\n{self.log_tail()}")
            try:
                # No token: 401 from the app itself, without touching the database.
                if requests.get(f"{self.url}/api/v1/session", timeout=10).status_code == 401:
                    return self
            except requests.RequestException:  # not listening yet, or too busy to answer in time
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"gunicorn did not answer on {self.url} within {timeout_s} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the master and every worker (the whole process group), and reap the master."""
        import os
        import signal

        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        self.process = None

    def worker_pids(self) -> list[int]:
        """The pids of the master's children (its workers), from /proc."""
        import os

        if self.process is None:
            return []
        children = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat", "rb") as stat:
                        fields = stat.read().rsplit(b")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == self.process.pid:
                    children.append(int(entry))
        return children

    def kill_master(self) -> None:
        """SIGKILL the master alone (its workers are left to notice), and reap it."""
        import os
        import signal

        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None

    def stop(self) -> None:
        """SIGTERM (gunicorn's graceful shutdown), SIGKILL after 10 s."""
        import os
        import signal
        import subprocess

        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
            self.process = None
        except (ProcessLookupError, subprocess.TimeoutExpired):
            self.kill()

    def log_tail(self, n: int = 4000) -> str:
        try:
            with open(self.log_path, "rb") as log:
                return log.read()[-n:].decode(errors="replace")
        except OSError:
            return ""


@pytest.fixture
def gunicorn(tmp_path):
    """gunicorn(database_url, workers=2, threads=8) -> a started GunicornServer on a free port,
    its instance directory and log in tmp_path; stopped after the test."""
    import socket

    servers = []

    def start(database_url: str, **kwargs) -> GunicornServer:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        n = len(servers)
        server = GunicornServer(database_url, tmp_path / f"gunicorn{n}-instance", tmp_path / f"gunicorn{n}.log",
                                port, **kwargs)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def serve_with(app):
    """serve_with(create) -> the base URL of `app` served in a background thread, after
    create(db) has made what the test needs in its database (committed). Stopped after the test."""
    from contextlib import ExitStack

    from studyweb.serving import serve_in_background

    servers = ExitStack()

    def start(create) -> str:
        db = app.extensions["studyweb.sessions"]()
        try:
            create(db)
            db.commit()
        finally:
            db.close()
        return servers.enter_context(serve_in_background(app))

    with servers:
        yield start
