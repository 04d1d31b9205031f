"""Admin pages: login, dashboard, heat maps, build-maps and export buttons."""
from __future__ import annotations

import io
import re
import zipfile

import cv2
import numpy as np
import pytest

H = "X-Participant-Token"


def _csrf(page) -> str:
    return re.search(rb'name="csrf_token" value="([^"]+)"', page.data).group(1).decode()


@pytest.fixture
def admin(app):
    """A test client logged in as alice; .csrf holds the session's CSRF token."""
    c = app.test_client()
    token = _csrf(c.get("/admin/login"))
    r = c.post("/admin/login", data={"username": "alice", "password": "correct horse", "csrf_token": token})
    assert r.status_code == 302 and r.location.endswith("/admin/")
    c.csrf = _csrf(c.get("/admin/"))
    return c


def _complete_participants(enrol, n):
    for i in range(n):
        c, token = enrol(PROLIFIC_PID=f"adm{i}")
        s = c.get("/api/v1/session", headers={H: token}).get_json()
        for t in s["trials"]:
            clicks = [{"x": 4 + i, "y": 5, "t_ms": 100 * k} for k in range(1, 4)]
            c.post(f"/api/v1/trials/{t['id']}/save", headers={H: token},
                   json={"idempotency_key": f"{token[:10]}{t['id']}", "clicks": clicks, "display_w": 16,
                         "display_h": 12, "done": True})


def test_login_sets_httponly_samesite_session(app):
    c = app.test_client()
    token = _csrf(c.get("/admin/login"))
    bad = c.post("/admin/login", data={"username": "alice", "password": "wrong", "csrf_token": token})
    assert bad.status_code == 401 and b"Wrong username or password" in bad.data
    r = c.post("/admin/login", data={"username": "alice", "password": "correct horse", "csrf_token": token})
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_dashboard_shows_progress_qc_and_maps(admin, enrol, app):
    _complete_participants(enrol, 3)
    page = admin.get("/admin/e/pilot")
    assert page.status_code == 200
    assert b"Pilot" in page.data and b"<th>debrief</th>" in page.data  # status table
    r = admin.post("/admin/e/pilot/build-maps", data={"csrf_token": admin.csrf})
    assert r.status_code == 302
    page = admin.get("/admin/e/pilot")
    assert b"Maps:" in page.data and b"participants," in page.data
    stimulus_id = int(re.search(rb"/admin/stimuli/(\d+)/heatmap.png", page.data).group(1))
    png = admin.get(f"/admin/stimuli/{stimulus_id}/heatmap.png")
    image = cv2.imdecode(np.frombuffer(png.data, np.uint8), cv2.IMREAD_COLOR)
    assert png.mimetype == "image/png" and image.shape == (12, 16, 3)


def test_export_buttons(admin, enrol, dataset):
    _complete_participants(enrol, 3)
    admin.post("/admin/e/pilot/build-maps", data={"csrf_token": admin.csrf})
    r = admin.post("/admin/e/pilot/export", data={"csrf_token": admin.csrf, "what": "csv"})
    assert r.status_code == 200 and r.mimetype == "application/zip"
    names = set(zipfile.ZipFile(io.BytesIO(r.data)).namelist())
    assert {"participants.csv", "trials.csv", "clicks.csv", "events.csv"} <= names
    r = admin.post("/admin/e/pilot/export", data={"csrf_token": admin.csrf, "what": "dataset"}, follow_redirects=True)
    assert b"Exported" in r.data
    assert any((dataset.path / "maps").glob("*_x.png")) or any((dataset.path / "maps").glob("*_y.png"))
    assert admin.post("/admin/e/pilot/export", data={"csrf_token": admin.csrf, "what": "tar"}).status_code == 400


def test_logout_needs_csrf_and_ends_the_session(admin):
    assert admin.post("/admin/logout").status_code == 400
    assert admin.post("/admin/logout", data={"csrf_token": admin.csrf}).status_code == 302
    assert "/admin/login" in admin.get("/admin/").location


def test_unknown_experiment_and_stimulus_are_404(admin):
    assert admin.get("/admin/e/nope").status_code == 404
    assert admin.get("/admin/stimuli/9999/heatmap.png").status_code == 404
