"""Admin pages: login, dashboard, heat maps, build-maps and export buttons (with the confirmation
to replace maps that have more observers)."""
from __future__ import annotations

import io
import re
import zipfile

import cv2
import numpy as np
import pytest

from datadir import Dataset

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
    _complete_participants_from(enrol, 0, n)


def _complete_participants_from(enrol, first, n):
    for i in range(first, first + n):
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
    dataset.update_pairs([{"pair_id": p, "n_observers_x": 1, "n_observers_y": 1} for p in dataset.pairs["pair_id"]])
    r = admin.post("/admin/e/pilot/export", data={"csrf_token": admin.csrf, "what": "dataset"}, follow_redirects=True)
    assert b"Exported" in r.data and b'id="confirm-export"' not in r.data
    assert any((dataset.path / "maps").glob("*_x.png")) or any((dataset.path / "maps").glob("*_y.png"))
    assert admin.post("/admin/e/pilot/export", data={"csrf_token": admin.csrf, "what": "tar"}).status_code == 400


def _snapshot(path):
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_export_over_maps_with_more_observers_needs_a_confirmation(admin, enrol, dataset):
    _complete_participants(enrol, 3)
    admin.post("/admin/e/pilot/build-maps", data={"csrf_token": admin.csrf})
    before = _snapshot(dataset.path)  # maps of 7 (x) and 8 (y) observers; the new ones have 1 or 2
    r = admin.post("/admin/e/pilot/export", data={"csrf_token": admin.csrf, "what": "dataset"}, follow_redirects=True)
    # Which stimuli the 3 participants saw is random; each map refused names its side and counts.
    assert b"Export refused" in r.data and b"Nothing was written" in r.data
    assert re.search(r"\d{6}_x 7 → [123]|\d{6}_y 8 → [123]".encode(), r.data)
    assert _snapshot(dataset.path) == before
    form = re.search(rb'<form[^>]*id="confirm-export".*?</form>', r.data, re.S).group(0)
    assert f'name="csrf_token" value="{admin.csrf}"'.encode() in form
    assert b'type="checkbox" name="force" value="1"' in form and b"replace maps that have more observers" in form
    assert b'name="what" value="dataset"' in form
    assert b'id="confirm-export"' not in admin.get("/admin/e/pilot").data  # offered once, after the refusal

    # Without the box ticked the refusal stands; without a CSRF token nothing happens.
    r = admin.post("/admin/e/pilot/export", data={"csrf_token": admin.csrf, "what": "dataset"}, follow_redirects=True)
    assert b"Export refused" in r.data and _snapshot(dataset.path) == before
    assert admin.post("/admin/e/pilot/export", data={"what": "dataset", "force": "1"}).status_code == 400
    assert _snapshot(dataset.path) == before

    r = admin.post("/admin/e/pilot/export", data={"csrf_token": admin.csrf, "what": "dataset", "force": "1"},
                   follow_redirects=True)
    assert b"Exported" in r.data and b"map(s) that had more observers" in r.data
    pairs = Dataset.open(dataset.path).pairs
    assert pairs["n_observers_x"].max() <= 3 and pairs["n_observers_y"].max() <= 3  # at most M = 3
    assert pairs["kl_xy"].notna().all()


def test_dashboard_shows_the_qc_flags_of_the_last_build_without_running_qc(admin, enrol, app, monkeypatch):
    assert b"No maps yet" in admin.get("/admin/e/pilot").data
    _complete_participants(enrol, 3)
    admin.post("/admin/e/pilot/build-maps", data={"csrf_token": admin.csrf})
    _complete_participants_from(enrol, 3, 1)  # a fourth participant after the build: the IQR rule would now run

    def no_qc(*args, **kwargs):
        raise AssertionError("the dashboard ran QC")

    monkeypatch.setattr("studyweb.qc.run_qc", no_qc)
    monkeypatch.setattr("studyweb.export.run_qc", no_qc)  # export's own name for it (imported at its top)
    page = admin.get("/admin/e/pilot")
    assert page.status_code == 200
    flags = re.search(rb'<ul id="qc-flags">.*?</ul>', page.data, re.S).group(0)
    assert b"IQR rule skipped: 3 participant(s) &lt; 4" in flags


def test_dashboard_says_when_maps_predate_stored_flags(admin, enrol, dbs):
    from sqlalchemy import update

    from studyweb.db.schema import FixationMap

    _complete_participants(enrol, 3)
    admin.post("/admin/e/pilot/build-maps", data={"csrf_token": admin.csrf})
    n_maps = dbs.execute(update(FixationMap).values(qc_flags=None, points=None)).rowcount
    dbs.commit()
    page = admin.get("/admin/e/pilot").data
    assert f"{n_maps} map(s) were built before QC flags".encode() in page and b'id="qc-flags"' not in page


def test_logout_needs_csrf_and_ends_the_session(admin):
    assert admin.post("/admin/logout").status_code == 400
    assert admin.post("/admin/logout", data={"csrf_token": admin.csrf}).status_code == 302
    assert "/admin/login" in admin.get("/admin/").location


def test_unknown_experiment_and_stimulus_are_404(admin):
    assert admin.get("/admin/e/nope").status_code == 404
    assert admin.get("/admin/stimuli/9999/heatmap.png").status_code == 404


def test_an_export_that_fails_is_a_message_not_a_500_and_writes_nothing(admin, enrol, dataset, monkeypatch):
    from datadir import Dataset

    _complete_participants(enrol, 3)
    admin.post("/admin/e/pilot/build-maps", data={"csrf_token": admin.csrf})
    before = _snapshot(dataset.path)

    def broken(self, rows):
        raise OSError("disk full")

    monkeypatch.setattr(Dataset, "update_pairs", broken)
    r = admin.post("/admin/e/pilot/export", data={"csrf_token": admin.csrf, "what": "dataset", "force": "1"},
                   follow_redirects=True)
    assert r.status_code == 200 and b"Export failed: disk full. Nothing was written." in r.data
    assert _snapshot(dataset.path) == before
