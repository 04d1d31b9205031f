"""Security: admin refused without login, CSRF, cross-participant access, escaping,
production secret, and hypothesis-generated junk payloads that must never cause a 500."""
from __future__ import annotations

import io
import json
import re
import stat

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studyweb import create_app
from studyweb.db.schema import Experiment

H = "X-Participant-Token"
ADMIN_GETS = ["/admin/", "/admin/e/pilot", "/admin/stimuli/1/heatmap.png"]
ADMIN_POSTS = ["/admin/e/pilot/build-maps", "/admin/e/pilot/export", "/admin/logout"]


@pytest.mark.parametrize("path", ADMIN_GETS)
def test_admin_pages_refuse_without_login(client, path):
    r = client.get(path)
    assert r.status_code == 302 and "/admin/login" in r.location


@pytest.mark.parametrize("path", ADMIN_POSTS)
def test_admin_posts_refuse_without_login_even_with_csrf(client, path):
    client.get("/admin/login")
    with client.session_transaction() as s:
        token = s["csrf_token"]
    r = client.post(path, data={"csrf_token": token, "what": "csv"})
    assert r.status_code == 302 and "/admin/login" in r.location


def test_login_and_admin_posts_refuse_a_wrong_csrf_token(client):
    client.get("/admin/login")
    r = client.post("/admin/login", data={"username": "alice", "password": "correct horse", "csrf_token": "forged"})
    assert r.status_code == 400 and b"CSRF" in r.data
    r = client.post("/admin/login", data={"username": "alice", "password": "correct horse"})
    assert r.status_code == 400


def test_names_and_descriptions_are_escaped(app, dbs, client, enrol):
    exp = dbs.query(Experiment).filter_by(name="pilot").one()
    exp.title = "<script>alert('t')</script>"
    exp.description = "<script>alert('d')</script>"
    dbs.commit()
    client.get("/s/pilot")
    page = client.get("/s/pilot/consent").data
    assert b"<script>alert" not in page and b"&lt;script&gt;alert(" in page
    c = app.test_client()
    c.get("/admin/login")
    with c.session_transaction() as s:
        token = s["csrf_token"]
    c.post("/admin/login", data={"username": "alice", "password": "correct horse", "csrf_token": token})
    for path in ("/admin/", "/admin/e/pilot"):
        page = c.get(path).data
        assert b"<script>alert" not in page and b"&lt;script&gt;alert(" in page


def test_recruit_ids_are_escaped_and_bounded(client):
    r = client.get("/s/pilot", query_string={"PROLIFIC_PID": "x" * 500})
    assert r.status_code == 400 and b"at most 128" in r.data


def test_production_refuses_a_short_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("GAZELAB_ENV", "production")
    monkeypatch.setenv("GAZELAB_SECRET_KEY", "changeme")
    with pytest.raises(ValueError, match="GAZELAB_SECRET_KEY has 8 characters"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "INSTANCE_DIR": str(tmp_path)})


def test_without_a_secret_key_one_is_made_once_into_the_instance_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("GAZELAB_SECRET_KEY", raising=False)
    monkeypatch.delenv("GAZELAB_DATABASE_URL", raising=False)
    instance = tmp_path / "inst"
    first = create_app({"INSTANCE_DIR": str(instance)})
    key_file = instance / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert re.fullmatch(r"[0-9a-f]{64}", first.secret_key)
    assert create_app({"INSTANCE_DIR": str(instance)}).secret_key == first.secret_key  # kept, not remade
    assert create_app({"INSTANCE_DIR": str(tmp_path / "other")}).secret_key != first.secret_key
    # The database and everything else live in the instance folder given, not ./instance.
    assert first.config["DATABASE_URL"] == f"sqlite:///{instance / 'gazelab.db'}"
    first.extensions["studyweb.engine"].dispose()


def test_concurrent_starts_share_one_generated_key(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from studyweb.config import instance_secret_key

    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: instance_secret_key(tmp_path), range(32)))
    assert len(keys) == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["secret_key"]


@pytest.mark.parametrize("forged", [{"admin_id": 1}, {"admin_session": "guess"}])
@pytest.mark.parametrize("key", ["dev-not-secret-change-me", "test", None])  # None: the app's own key
def test_forged_admin_cookies_open_nothing(app, client, forged, key):
    """A cookie signed with the old public default key (or any guess) is not accepted; even one
    signed with the app's real key opens nothing without a live server-side session."""
    from flask.sessions import SecureCookieSessionInterface

    app_key = app.secret_key
    app.secret_key = key or app_key
    cookie = SecureCookieSessionInterface().get_signing_serializer(app).dumps(forged)
    app.secret_key = app_key
    client.set_cookie(app.config.get("SESSION_COOKIE_NAME", "session"), cookie)
    r = client.get("/admin/")
    assert r.status_code == 302 and "/admin/login" in r.location


def _login(client, password="correct horse", username="alice"):
    token = re.search(rb'name="csrf_token" value="([^"]+)"', client.get("/admin/login").data).group(1).decode()
    return client.post("/admin/login", data={"username": username, "password": password, "csrf_token": token})


def test_logout_ends_the_session_for_every_copy_of_the_cookie(app, client):
    assert _login(client).status_code == 302
    cookie = client.get_cookie("session").value
    page = client.get("/admin/")
    assert page.status_code == 200
    token = re.search(rb'name="csrf_token" value="([^"]+)"', page.data).group(1).decode()
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 302
    thief = app.test_client()
    thief.set_cookie("session", cookie)  # copied before the logout
    r = thief.get("/admin/")
    assert r.status_code == 302 and "/admin/login" in r.location


def test_idle_admin_sessions_end(app, client):
    assert _login(client).status_code == 302
    assert client.get("/admin/").status_code == 200
    app.config["ADMIN_SESSION_IDLE_MIN"] = 0.0
    assert client.get("/admin/").status_code == 302


def test_a_password_change_logs_the_admin_out(app, client, run_cli, monkeypatch):
    assert _login(client).status_code == 302
    monkeypatch.setattr("sys.stdin", io.StringIO("another horse\n"))
    code, out, _ = run_cli("study", "create-admin", "--username", "alice", "--password-stdin",
                           "--db", app.config["DATABASE_URL"])
    assert code == 0 and "1 session(s) logged out" in out
    assert client.get("/admin/").status_code == 302


def test_failed_logins_are_throttled_per_user_and_address(app):
    client = app.test_client()
    for _ in range(5):
        assert _login(client, password="wrong").status_code == 401
    r = _login(client, password="wrong")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert b"Too many failed logins" in r.data
    assert _login(client).status_code == 429  # even the right password waits
    other_address = app.test_client()
    other_address.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    assert _login(other_address).status_code == 302
    assert _login(client, username="bob", password="wrong").status_code == 401  # another user: own count


def test_successful_logins_are_not_counted(app):
    client = app.test_client()
    for _ in range(7):
        assert _login(client).status_code == 302


def test_admin_pages_forbid_framing_and_foreign_scripts(client):
    for path in ("/admin/login",):
        r = client.get(path)
        assert r.headers["X-Frame-Options"] == "DENY"
        csp = r.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert b"style=" not in client.get("/admin/login").data  # inline styles would break under the CSP


def test_participant_pages_may_be_framed_but_leak_no_referrer(client):
    r = client.get("/s/pilot", query_string={"workerId": "W1", "assignmentId": "A", "hitId": "H"})
    assert "X-Frame-Options" not in r.headers  # MTurk shows external HITs in a frame
    assert r.headers["Referrer-Policy"] == "same-origin"  # links carry the participant token


def test_posts_from_another_origin_are_refused(enrol):
    client, token = enrol(PROLIFIC_PID="origin")
    tid = client.get("/api/v1/session", headers={H: token}).get_json()["trials"][0]["id"]
    body = {"idempotency_key": "o1", "clicks": [], "done": False}
    r = client.post(f"/api/v1/trials/{tid}/save", headers={H: token, "Origin": "https://evil.example"}, json=body)
    assert r.status_code == 403 and "evil.example" in r.get_json()["message"]
    assert client.post("/s/pilot/debrief", headers={"Origin": "null"}, data={}).status_code == 403
    r = client.post(f"/api/v1/trials/{tid}/save", headers={H: token, "Origin": "http://localhost"}, json=body)
    assert r.status_code == 200  # the test client's own host
    assert client.post(f"/api/v1/trials/{tid}/save", headers={H: token},
                       json={**body, "idempotency_key": "o2"}).status_code == 200  # no Origin: scripts


def test_cross_participant_session_and_images(enrol):
    a, token_a = enrol(PROLIFIC_PID="A")
    b, token_b = enrol(PROLIFIC_PID="B")
    sa = a.get("/api/v1/session", headers={H: token_a}).get_json()
    sb = b.get("/api/v1/session", headers={H: token_b}).get_json()
    assert {t["id"] for t in sa["trials"]}.isdisjoint({t["id"] for t in sb["trials"]})
    for t in sa["trials"]:
        assert b.get(f"/t/trials/{t['id']}/blurred.png").status_code == 404
        r = b.post(f"/api/v1/trials/{t['id']}/save", headers={H: token_b}, json={"idempotency_key": "x"})
        assert r.status_code == 404


# Text with lone surrogates and NUL too (hypothesis' default text has neither): JSON carries them
# as \ud800 and \u0000 escapes, which no database driver can store as they are.
any_text = st.text(max_size=20) | st.text(st.characters(min_codepoint=0, max_codepoint=0xFFFF, blacklist_categories=()),
                                          max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False) | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=20,
)
click = st.fixed_dictionaries({"x": json_values | st.floats(-5, 30), "y": json_values | st.floats(-5, 30),
                               "t_ms": json_values | st.floats(-10, 4e6)})
save_body = st.fixed_dictionaries({}, optional={
    "idempotency_key": json_values | st.uuids().map(str), "clicks": json_values | st.lists(click, max_size=5),
    "display_w": json_values, "display_h": json_values, "done": json_values, "events": json_values,
    "response_text": json_values, "elapsed_ms": json_values, "junk": json_values,
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=save_body | json_values, raw=st.binary(max_size=64))
def test_junk_payloads_never_500(enrol_once, body, raw):
    client, token, trial_id = enrol_once
    for data in (json.dumps(body).encode(), raw):
        for path in (f"/api/v1/trials/{trial_id}/save", "/api/v1/events"):
            r = client.post(path, headers={H: token, "Content-Type": "application/json"}, data=data)
            assert r.status_code < 500, (path, data, r.data)
            assert r.is_json
            if r.status_code >= 400:
                assert r.get_json()["message"]


@pytest.fixture
def enrol_once(enrol):
    client, token = enrol(PROLIFIC_PID="fuzz")
    trial_id = client.get("/api/v1/session", headers={H: token}).get_json()["trials"][1]["id"]
    return client, token, trial_id
