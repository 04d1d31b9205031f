"""The JSON API: session state, trial saves (idempotent, validated), events, resume."""
from __future__ import annotations

import pytest

H = "X-Participant-Token"


@pytest.fixture
def started(enrol):
    """(client, token, session JSON) of an enrolled participant."""
    client, token = enrol(PROLIFIC_PID="api")
    return client, token, client.get("/api/v1/session", headers={H: token}).get_json()


def _save(client, token, trial_id, key, clicks=(), done=False, **extra):
    body = {"idempotency_key": key, "clicks": [dict(zip(("x", "y", "t_ms"), c)) for c in clicks],
            "display_w": 320.0, "display_h": 240.0, "done": done, **extra}
    return client.post(f"/api/v1/trials/{trial_id}/save", headers={H: token}, json=body)


def test_session_lists_trials_with_task_parameters(started):
    _, token, s = started
    assert s["status"] == "practice" and s["completion_code"] == "CODE123"
    practice, first, second = s["trials"]
    assert practice["is_practice"] and not first["is_practice"] and (first["number"], second["number"]) == (1, 2)
    assert s["next_trial"] == practice["id"]
    assert (first["natural_w"], first["natural_h"]) == (16, 12)
    assert first["time_limit_ms"] == 10000 and first["bubble_radius"] == pytest.approx(0.03 * 16) and first["mode"] == "free"
    assert first["clicks_saved"] == [] and token in first["sharp_url"]


def test_session_needs_a_token(client):
    r = client.get("/api/v1/session")
    assert r.status_code == 401 and "token" in r.get_json()["message"]
    assert client.get("/api/v1/session", headers={H: "nope"}).status_code == 401


def test_save_stores_clicks_in_image_pixels_and_advances(started, participant_of):
    client, token, s = started
    ids = [t["id"] for t in s["trials"]]
    assert _save(client, token, ids[0], "a", [(1, 1, 10)], done=True).get_json()["status"] == "trials"
    r = _save(client, token, ids[1], "b", [(15.5, 11.9, 100), (0, 0, 2000)], elapsed_ms=2500)
    assert r.status_code == 200 and r.get_json() == {"ok": True, "duplicate": False, "stored_clicks": 2, "late_clicks": 0,
                                                   "status": "trials"}
    _save(client, token, ids[1], "c", [(3, 4, 9000)], done=True, events=[{"type": "focus_lost", "t_ms": 5000}])
    _save(client, token, ids[2], "d", [], done=True, response_text="a cube")
    p = participant_of(token)
    assert p.status == "debrief"
    trial = p.trials[1]
    assert [(c.x, c.y, c.t_ms, c.display_w) for c in trial.clicks] == [
        (15.5, 11.9, 100.0, 320.0), (0.0, 0.0, 2000.0, 320.0), (3.0, 4.0, 9000.0, 320.0)]
    assert trial.status == "done" and trial.duration_ms == 9000 and trial.display_h == 240
    assert [(e.kind, e.t_ms, e.trial_id) for e in p.events] == [("focus_lost", 5000.0, trial.id)]
    assert p.trials[2].response_text == "a cube"


def test_same_idempotency_key_twice_stores_once(started, participant_of):
    client, token, s = started
    tid = s["trials"][1]["id"]
    first = _save(client, token, tid, "same-key", [(2, 2, 5)], done=True)
    again = _save(client, token, tid, "same-key", [(2, 2, 5)], done=True)
    assert first.status_code == again.status_code == 200
    assert again.get_json()["duplicate"] is True
    assert len(participant_of(token).trials[1].clicks) == 1


def test_new_save_to_a_finished_trial_is_409(started):
    client, token, s = started
    tid = s["trials"][1]["id"]
    _save(client, token, tid, "k1", done=True)
    r = _save(client, token, tid, "k2", [(1, 1, 1)])
    assert r.status_code == 409 and "already finished" in r.get_json()["message"]


def test_reload_mid_trial_resumes_with_saved_clicks(started):
    client, token, s = started
    tid = s["trials"][1]["id"]
    _save(client, token, s["trials"][0]["id"], "p", done=True)
    _save(client, token, tid, "partial", [(5, 6, 700)], elapsed_ms=3000)
    again = client.get("/api/v1/session", headers={H: token}).get_json()
    trial = next(t for t in again["trials"] if t["id"] == tid)
    assert again["next_trial"] == tid and trial["status"] == "started"
    assert trial["clicks_saved"] == [{"x": 5.0, "y": 6.0, "t_ms": 700.0}] and trial["elapsed_ms"] == 3000


def test_token_reaches_only_its_own_trials(started, enrol):
    client, token, s = started
    other_client, other_token = enrol(PROLIFIC_PID="other")
    tid = s["trials"][1]["id"]
    r = _save(other_client, other_token, tid, "steal", [(1, 1, 1)])
    assert r.status_code == 404 and "not one of this participant's trials" in r.get_json()["message"]
    assert other_client.get(f"/t/trials/{tid}/sharp.png", headers={H: other_token}).status_code == 404
    with client.get(f"/t/trials/{tid}/sharp.png?t={token}") as r:
        assert r.status_code == 200


def test_images_served_at_natural_size(started, app):
    import cv2
    import numpy as np

    client, token, s = started
    tid = s["trials"][1]["id"]
    for kind in ("blurred", "sharp"):
        with client.get(f"/t/trials/{tid}/{kind}.png", headers={H: token}) as r:
            assert r.status_code == 200 and r.mimetype == "image/png"
            image = cv2.imdecode(np.frombuffer(r.data, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (12, 16, 3)
    with client.get(f"/t/trials/{tid}/sharp.png") as r:  # the cookie alone works
        assert r.status_code == 200
    assert app.test_client().get(f"/t/trials/{tid}/sharp.png").status_code == 404


@pytest.mark.parametrize("body, status, words", [
    ({"idempotency_key": "k", "clicks": [{"x": 16, "y": 1, "t_ms": 1}], "display_w": 1, "display_h": 1}, 422, "outside"),
    ({"idempotency_key": "k", "clicks": [{"x": -0.1, "y": 1, "t_ms": 1}], "display_w": 1, "display_h": 1}, 422, "outside"),
    ({"idempotency_key": "k", "clicks": [{"x": 1, "y": 1, "t_ms": -5}], "display_w": 1, "display_h": 1}, 422, "t_ms"),
    ({"idempotency_key": "k", "clicks": [{"x": 1, "y": 1, "t_ms": 4_000_000}], "display_w": 1, "display_h": 1}, 422, "one hour"),
    ({"idempotency_key": "k", "clicks": [{"x": "1", "y": 1, "t_ms": 1}], "display_w": 1, "display_h": 1}, 422, "finite number"),
    ({"idempotency_key": "k", "clicks": [{"x": 1, "y": 1, "t_ms": 1}]}, 422, "display_w"),
    ({"idempotency_key": "k", "clicks": "many"}, 422, "clicks must be a list"),
    ({"idempotency_key": "k", "done": "yes"}, 422, "done"),
    ({"clicks": []}, 422, "idempotency_key"),
    ({"idempotency_key": "k", "surprise": 1}, 422, "unknown fields"),
    ({"idempotency_key": "k", "events": [{"type": "DROP TABLE"}]}, 422, "events[0].type"),
])
def test_bad_saves_are_4xx_json_saying_what(started, body, status, words):
    client, token, s = started
    r = client.post(f"/api/v1/trials/{s['trials'][1]['id']}/save", headers={H: token}, json=body)
    assert r.status_code == status and r.is_json
    assert words in r.get_json()["message"]


# Nesting past the depth limit is a 422, not a 400: test_no_500.py.
@pytest.mark.parametrize("raw", [b"", b"{", b"[1, 2]", b'{"x": NaN}', b"\xff\xfe"])
def test_malformed_json_is_400(started, raw):
    client, token, s = started
    r = client.post(f"/api/v1/trials/{s['trials'][1]['id']}/save", headers={H: token, "Content-Type": "application/json"},
                    data=raw)
    assert r.status_code == 400 and r.get_json()["error"] == "bad_request"


def test_oversize_payload_is_413_json(started, app):
    client, token, s = started
    big = b'{"idempotency_key": "k", "response_text": "' + b"a" * app.config["MAX_CONTENT_LENGTH"] + b'"}'
    r = client.post(f"/api/v1/trials/{s['trials'][1]['id']}/save", headers={H: token, "Content-Type": "application/json"},
                    data=big)
    assert r.status_code == 413 and "larger than the limit" in r.get_json()["message"]


def test_unknown_trial_and_wrong_method_are_json(started):
    client, token, _ = started
    r = _save(client, token, 99999, "k")
    assert r.status_code == 404 and r.is_json
    r = client.get("/api/v1/trials/1/save", headers={H: token})
    assert r.status_code == 405 and r.is_json
    assert client.get("/api/v1/nothing-here").get_json()["error"] == "not_found"


def test_finished_participation_refuses_saves(started, dbs, participant_of):
    client, token, s = started
    p = participant_of(token)
    p.status = "returned"
    dbs.commit()
    r = _save(client, token, s["trials"][1]["id"], "late", [(1, 1, 1)])
    assert r.status_code == 409 and "ended" in r.get_json()["message"]


def test_events_endpoint_is_idempotent(started, participant_of):
    client, token, s = started
    body = {"idempotency_key": "ev1", "trial_id": s["trials"][0]["id"],
            "events": [{"type": "resize", "t_ms": 10, "data": {"w": 800}}, {"type": "fullscreen_exit"}]}
    assert client.post("/api/v1/events", headers={H: token}, json=body).get_json()["stored_events"] == 2
    assert client.post("/api/v1/events", headers={H: token}, json=body).get_json()["duplicate"] is True
    kinds = [(e.kind, e.payload) for e in participant_of(token).events]
    assert kinds == [("resize", {"w": 800}), ("fullscreen_exit", None)]
    r = client.post("/api/v1/events", headers={H: token}, json={**body, "idempotency_key": "ev2", "trial_id": 10**6})
    assert r.status_code == 404


@pytest.mark.parametrize("bad", ["\ud800", "\udfff tail", "a\x00b", "\ud83d"])  # lone surrogates, NUL
def test_text_no_database_can_store_is_kept_with_a_replacement_character(started, participant_of, bad):
    """A lone UTF-16 surrogate (JSON "\\ud800") cannot be encoded for the database, NUL cannot be
    held by PostgreSQL text: the save succeeds with U+FFFD in their place (text, event data and
    its keys alike), so the participant's clicks and later saves are never lost to it."""
    client, token, s = started
    tid = s["trials"][1]["id"]
    r = _save(client, token, tid, "text-1", [(2, 3, 40)], done=True, response_text=f"x{bad}y",
              events=[{"type": "resize", "t_ms": 5, "data": {f"k{bad}": [f"v{bad}"]}}])
    assert r.status_code == 200, r.get_json()
    clean = bad.replace("\x00", "\ufffd").encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    trial = participant_of(token).trials[1]
    assert trial.response_text == f"x{clean}y" and len(trial.clicks) == 1
    assert participant_of(token).events[-1].payload == {f"k{clean}": [f"v{clean}"]}
    # Later saves go on as usual.
    assert _save(client, token, s["trials"][2]["id"], "text-2", [(1, 1, 1)], done=True).status_code == 200


def test_a_valid_surrogate_pair_is_stored_as_it_was(started, participant_of):
    client, token, s = started
    r = client.post(f"/api/v1/trials/{s['trials'][1]['id']}/save", headers={H: token, "Content-Type": "application/json"},
                    data=b'{"idempotency_key": "emoji", "response_text": "\\ud83d\\ude00", "done": true}')
    assert r.status_code == 200 and participant_of(token).trials[1].response_text == "\U0001F600"


def test_an_idempotency_key_belongs_to_one_participant(enrol, participant_of):
    a, token_a = enrol(PROLIFIC_PID="key-a")
    b, token_b = enrol(PROLIFIC_PID="key-b")
    trial_a = a.get("/api/v1/session", headers={H: token_a}).get_json()["trials"][1]["id"]
    trial_b = b.get("/api/v1/session", headers={H: token_b}).get_json()["trials"][1]["id"]
    assert _save(a, token_a, trial_a, "shared-key", [(1, 1, 10)]).get_json()["duplicate"] is False
    r = _save(b, token_b, trial_b, "shared-key", [(2, 2, 20), (3, 3, 30)])
    assert r.status_code == 200 and r.get_json()["duplicate"] is False  # B's clicks are B's, not a duplicate
    assert [(c.x, c.y) for c in participant_of(token_b).trials[1].clicks] == [(2, 2), (3, 3)]
    assert [(c.x, c.y) for c in participant_of(token_a).trials[1].clicks] == [(1, 1)]


def test_a_key_sent_again_with_other_content_is_409_never_silence(started, participant_of):
    client, token, s = started
    tid = s["trials"][1]["id"]
    assert _save(client, token, tid, "k-once", [(1, 1, 10)]).status_code == 200
    r = _save(client, token, tid, "k-once", [(5, 5, 50)])
    assert r.status_code == 409 and "k-once" in r.get_json()["message"] and "different content" in r.get_json()["message"]
    assert [(c.x, c.y) for c in participant_of(token).trials[1].clicks] == [(1, 1)]
    # The same key on the events route is another save: also refused, not dropped.
    r = client.post("/api/v1/events", headers={H: token}, json={"idempotency_key": "k-once", "events": []})
    assert r.status_code == 409
    ev = {"idempotency_key": "ev-1", "events": [{"type": "resize", "t_ms": 1}]}
    assert client.post("/api/v1/events", headers={H: token}, json=ev).get_json()["duplicate"] is False
    assert client.post("/api/v1/events", headers={H: token}, json=ev).get_json()["duplicate"] is True
    ev["events"][0]["t_ms"] = 2
    assert client.post("/api/v1/events", headers={H: token}, json=ev).status_code == 409
