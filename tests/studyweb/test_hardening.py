"""Hardening (issue 22, item 8): server logs without query strings (participant tokens, recruit
ids), production refusing publicly known secret keys, and failed admin logins counted once for
all the workers of a server."""
from __future__ import annotations

import logging
import multiprocessing
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import requests

from studyweb import create_app
from studyweb.db.revisions import init_db
from studyweb.db.schema import Admin

SECRETS = {"t": "TOKEN-SECRET", "PROLIFIC_PID": "PID-SECRET", "STUDY_ID": "STUDY-SECRET"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(url: str, process: subprocess.Popen, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited while starting"
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise AssertionError(f"nothing answered on {url} within {timeout_s} s")


# --- Logs -----------------------------------------------------------------------------------------

def test_the_request_log_of_the_apps_own_server_has_paths_without_query_strings(app, caplog):
    from studyweb.serving import serve_in_background

    with caplog.at_level(logging.INFO, logger="werkzeug"), serve_in_background(app) as url:
        requests.get(f"{url}/s/pilot", params=SECRETS, allow_redirects=False, timeout=10)
        requests.get(f"{url}/api/v1/session", params=SECRETS, timeout=10)
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert any("GET /s/pilot " in line for line in lines) and any("GET /api/v1/session " in line for line in lines)
    assert not [line for line in lines if "SECRET" in line or "?" in line]


def test_gazelab_study_serve_logs_paths_without_query_strings(tmp_path):
    port = _free_port()
    env = {**os.environ, "GAZELAB_INSTANCE_DIR": str(tmp_path / "instance")}
    env.pop("GAZELAB_DATABASE_URL", None)
    command = [sys.executable, "-c", "import sys; from gazelab.cli import main; sys.exit(main())",
               "study", "serve", "--port", str(port), "--db", f"sqlite:///{tmp_path / 'serve.db'}"]
    with open(tmp_path / "serve.log", "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for(f"http://127.0.0.1:{port}/api/v1/session", process)
        requests.get(f"http://127.0.0.1:{port}/s/nowhere", params=SECRETS, timeout=10)
        requests.get(f"http://127.0.0.1:{port}/api/v1/session", params=SECRETS, timeout=10)
    finally:
        process.terminate()
        process.wait(10)
    text = (tmp_path / "serve.log").read_text(errors="replace")
    assert "GET /s/nowhere " in text and "GET /api/v1/session " in text, text
    assert "SECRET" not in text and "?t=" not in text


def test_gunicorns_logs_have_paths_without_query_strings(tmp_path):
    """The access log, and an error line naming a request (gunicorn writes its URI, query and all)."""
    url = f"sqlite:///{tmp_path / 'g.db'}"
    init_db(url)
    port, access = _free_port(), tmp_path / "access.log"
    env = {**os.environ, "GAZELAB_DATABASE_URL": url, "GAZELAB_INSTANCE_DIR": str(tmp_path / "instance"),
           "GAZELAB_ENV": "development", "GAZELAB_ACCESS_LOG": str(access)}
    command = [sys.executable, "-m", "gunicorn", "-c", "python:studyweb.gunicorn_conf", "--workers", "1",
               "--bind", f"127.0.0.1:{port}", "studyweb:create_app()"]
    with open(tmp_path / "error.log", "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for(f"http://127.0.0.1:{port}/api/v1/session", process)
        requests.get(f"http://127.0.0.1:{port}/s/nowhere", params=SECRETS, timeout=10)
    finally:
        process.terminate()
        process.wait(15)
    text = access.read_text()
    assert "GET /s/nowhere " in text and "SECRET" not in text and "?" not in text
    from studyweb.serving import hide_query_strings

    hide_query_strings()
    record = logging.LogRecord("gunicorn.error", logging.ERROR, __file__, 1, "Error handling request %s %s",
                               ("GET", "/s/x?t=TOKEN-SECRET&PROLIFIC_PID=PID-SECRET"), None)
    assert logging.getLogger("gunicorn.error").filter(record)
    assert record.getMessage() == "Error handling request GET /s/x"


# --- Secret keys ------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["dev-not-secret-change-me",  # the old default, public in the history
                                 "DEV-NOT-SECRET-CHANGE-ME", "change-me-change-me-change-me",
                                 "your-secret-key-goes-here", "Please-Change-Me", "x" * 40])
def test_production_refuses_a_publicly_known_secret_key(tmp_path, monkeypatch, key):
    monkeypatch.setenv("GAZELAB_ENV", "production")
    monkeypatch.setenv("GAZELAB_SECRET_KEY", key)
    with pytest.raises(ValueError, match="GAZELAB_SECRET_KEY is a publicly known value"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "INSTANCE_DIR": str(tmp_path)})


def test_production_takes_a_random_key_but_no_public_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv("GAZELAB_ENV", "production")
    monkeypatch.setenv("GAZELAB_SECRET_KEY", secrets.token_hex(32))
    config = {"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "INSTANCE_DIR": str(tmp_path)}
    create_app(config).extensions["studyweb.engine"].dispose()
    with pytest.raises(ValueError, match=re.escape("SECRET_KEY_FALLBACKS[0] is a publicly known value")):
        create_app({**config, "SECRET_KEY_FALLBACKS": ["dev-not-secret-change-me"]})


def test_gunicorn_refuses_to_start_with_a_public_key_in_production(monkeypatch):
    from studyweb import gunicorn_conf

    monkeypatch.setenv("GAZELAB_ENV", "production")
    monkeypatch.setenv("GAZELAB_SECRET_KEY", "dev-not-secret-change-me")
    monkeypatch.delenv("GAZELAB_RATELIMIT_STORAGE_URI", raising=False)
    with pytest.raises(RuntimeError, match="publicly known"):
        gunicorn_conf.on_starting(SimpleNamespace(cfg=SimpleNamespace(workers=1)))


# --- Login throttle shared by the workers --------------------------------------------------------

def _login(client, password="wrong"):
    page = client.get("/admin/login").data
    token = re.search(rb'name="csrf_token" value="([^"]+)"', page).group(1).decode()
    return client.post("/admin/login", data={"username": "alice", "password": password, "csrf_token": token})


def _worker_app(url: str, instance: str):
    """An app as a gunicorn worker builds it: the environment's settings (the default throttle
    store), this database and instance folder."""
    return create_app({"TESTING": True, "DATABASE_URL": url, "INSTANCE_DIR": instance})


@pytest.fixture
def study(tmp_path, monkeypatch):
    """(database URL, instance folder) with admin 'alice'; the environment's default throttle store."""
    monkeypatch.delenv("GAZELAB_RATELIMIT_STORAGE_URI", raising=False)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    init_db(url)
    app = _worker_app(url, str(tmp_path / "instance"))
    with app.app_context():
        db = app.extensions["studyweb.sessions"]()
        admin = Admin(username="alice")
        admin.set_password("correct horse")
        db.add(admin)
        db.commit()
        db.close()
    app.extensions["studyweb.engine"].dispose()
    return url, str(tmp_path / "instance")


def test_five_failed_logins_across_two_apps_lock_the_account(study):
    first, second = (_worker_app(*study) for _ in range(2))
    try:
        a, b = first.test_client(), second.test_client()
        assert [_login(c).status_code for c in (a, a, a, b, b)] == [401] * 5
        assert _login(a).status_code == 429 and _login(b).status_code == 429
        assert _login(b, password="correct horse").status_code == 429  # even the right password waits
    finally:
        for app in (first, second):
            app.extensions["studyweb.engine"].dispose()


def _fail_logins(url: str, instance: str, n: int, codes) -> None:
    app = _worker_app(url, instance)
    client = app.test_client()
    codes.put([_login(client).status_code for _ in range(n)])
    app.extensions["studyweb.engine"].dispose()


def test_failed_logins_in_another_process_count_here(study):
    ctx = multiprocessing.get_context("spawn")  # a process of its own, as a gunicorn worker is
    codes = ctx.Queue()
    child = ctx.Process(target=_fail_logins, args=(*study, 3, codes))
    child.start()
    assert codes.get(timeout=120) == [401] * 3
    child.join(30)
    assert child.exitcode == 0
    app = _worker_app(*study)
    try:
        client = app.test_client()
        assert [_login(client).status_code for _ in range(3)] == [401, 401, 429]
    finally:
        app.extensions["studyweb.engine"].dispose()


@pytest.mark.parametrize("storage, workers, refused", [("memory://", 2, True), ("memory://", 1, False),
                                                       (None, 2, False)])
def test_gunicorn_refuses_per_process_login_counts_with_several_workers(monkeypatch, storage, workers, refused):
    from studyweb import gunicorn_conf

    monkeypatch.setenv("GAZELAB_ENV", "development")
    if storage is None:
        monkeypatch.delenv("GAZELAB_RATELIMIT_STORAGE_URI", raising=False)
    else:
        monkeypatch.setenv("GAZELAB_RATELIMIT_STORAGE_URI", storage)
    server = SimpleNamespace(cfg=SimpleNamespace(workers=workers))
    if refused:
        with pytest.raises(RuntimeError, match="counts failed logins per process"):
            gunicorn_conf.on_starting(server)
    else:
        gunicorn_conf.on_starting(server)
