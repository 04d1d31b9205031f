import json

import pytest
from sqlalchemy import func, select

from studyweb.db.schema import Click, Participant, Trial
from studyweb.serving import serve_in_background

EXPERIMENT = "pilot"


@pytest.fixture
def live_url(app):
    with serve_in_background(app) as url:
        yield url


def _scene_with_one_object(dataset, pair_id, x, y):
    path = dataset.path / f"scenes/{pair_id}.json"
    scene = json.loads(path.read_text())
    obj = {"id": 1, "mask_id": 1, "color": "red", "shape": "cube", "material": "rubber", "size": "large",
           "pixel_coords": [x, y, 10.0]}
    scene["x"] = scene["y"] = {"objects": [obj]}
    path.write_text(json.dumps(scene))


def test_simulate_command_stores_simulated_clicks_near_salient_objects(run_cli, app, dbs, dataset, live_url):
    for pair_id in ("000000", "000001", "000002"):
        _scene_with_one_object(dataset, pair_id, 3.5, 2.5)  # top-left corner of the 16x12 images
    url = app.config["DATABASE_URL"]
    code, out, err = run_cli("study", "simulate", EXPERIMENT, "--url", live_url, "--participants", 9,
                             "--concurrency", 3, "--drop-rate", 0.3, "--db", url)
    assert code == 0, err
    assert "9 complete" in out and "saliency model: popout" in out
    sources = dbs.scalars(select(Participant.source)).all()
    assert sources == ["simulated"] * 9
    sent = int(out.split(" clicks sent")[0].split()[-1])
    stored = dbs.scalar(select(func.count()).select_from(Click).join(Trial).where(Trial.is_practice.is_(False)))
    practice = dbs.scalar(select(func.count()).select_from(Click).join(Trial).where(Trial.is_practice.is_(True)))
    assert stored + practice == sent
    xs = dbs.scalars(select(Click.x).join(Trial).where(Trial.is_practice.is_(False))).all()
    assert sum(x < 8 for x in xs) > 0.6 * len(xs)  # the pop-out object is on the left half


def test_simulate_command_against_no_server_fails_in_one_line(run_cli, app):
    code, _, err = run_cli("study", "simulate", EXPERIMENT, "--url", "http://127.0.0.1:9", "--participants", 1,
                           "--model", "centre", "--db", app.config["DATABASE_URL"])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no study server answers" in err


def test_the_simulated_client_retries_its_first_request_too(live_url, monkeypatch):
    """A connection reset before the server ever answered (a restart in progress) is retried
    like any later failure, not fatal (it made 28 of 200 clients give up in a kill test)."""
    import requests

    from studyweb.simulate import run_participant

    real = requests.Session.request
    failures = {"left": 2}

    def reset_first_requests(self, method, url, **kwargs):
        if failures["left"]:
            failures["left"] -= 1
            raise requests.ConnectionError("Connection reset by peer")
        return real(self, method, url, **kwargs)

    monkeypatch.setattr(requests.Session, "request", reset_first_requests)
    result = run_participant(live_url, EXPERIMENT, 0, retry_for_s=30)
    assert result["status"] == "complete" and failures["left"] == 0
