"""Sentinels are judged on the server without telling the page where their target is (issue 22,
item 8): the chart JSON of a sentinel trial holds no field that gives the target's position or
code away, the sentinel's screen is a picture, and the right code is still judged correct."""
from __future__ import annotations

import math

import pytest

from studyweb import codecharts
from studyweb.db.schema import Experiment, Trial
from studyweb.tasks.codecharts import chart_of

H = "X-Participant-Token"
SIZE = (480, 360)  # natural size; shown at 960x720 CSS px


@pytest.fixture
def sentinels(app, tmp_path, write_pair, enrol_in, dbs):
    """(client, token, [(trial JSON, the server's SentinelTrial)]) of a participant's sentinels
    in a CodeCharts experiment (tutorial ones first)."""
    from datadir import Dataset
    from studyweb.experiments import create_experiment

    ds = Dataset.create(tmp_path / "ccds", "cc", seed=1)
    ds.add_pairs([write_pair(ds.path, f"s{i}", size=SIZE) for i in range(4)])
    db = app.extensions["studyweb.sessions"]()
    create_experiment(db, ds.path, "sent", task="codecharts", per_participant=2, observers=5,
                      codecharts={"image_ms": [1000], "sentinel_every": 2})
    db.commit()
    db.close()
    client, token = enrol_in("sent", PROLIFIC_PID="bot")
    trials = client.get("/api/v1/session", headers={H: token}).get_json()["trials"]
    settings = dbs.query(Experiment).filter_by(name="sent").one().settings
    return client, token, [(t, chart_of(dbs.get(Trial, t["id"]), settings)) for t in trials if t["kind"] == "sentinel"]


def test_the_chart_json_of_a_sentinel_gives_away_neither_its_target_nor_its_code(sentinels):
    client, token, [(trial, truth), *_] = sentinels
    data = client.get(trial["chart_url"], headers={H: token}).get_json()
    assert set(data) == {"kind", "width", "height", "font_px", "spacing_px", "columns", "rows", "codes",
                         "sentinel_png"}  # no target, and no seed to rebuild it from
    # Everything but the picture is what an image trial's chart of the same seed sends, so
    # nothing in it depends on where the target is: no field, no order of the codes, no marker.
    image = {k: v for k, v in codecharts.to_json(truth.chart).items() if k != "seed"}
    assert {k: v for k, v in data.items() if k != "sentinel_png"} == {**image, "kind": "sentinel"}
    # Nor does the trial's own JSON say it (the spec stays on the server).
    assert not {"target", "seed", "spec"} & set(trial)


def test_the_page_still_draws_the_target_and_the_server_judges_the_answer(sentinels):
    client, token, [(first, truth), (second, other), *_] = sentinels
    data = client.get(first["chart_url"], headers={H: token}).get_json()
    shown = codecharts.locate_sentinel_target(data["sentinel_png"], data["width"])
    assert shown == pytest.approx(truth.target, abs=2)  # within a px or so (a dot at an edge is cut)
    for i, ((trial, sentinel), pick) in enumerate([((first, truth), min), ((second, other), max)]):
        codes = client.get(trial["chart_url"], headers={H: token}).get_json()["codes"]
        code = pick(codes, key=lambda c: math.hypot(c["x"] - sentinel.target[0], c["y"] - sentinel.target[1]))
        r = client.post(trial["answer_url"], headers={H: token},
                        json={"idempotency_key": f"s{i}", "code": code["code"], "rt_ms": 700})
        assert r.status_code == 200 and r.get_json()["valid"] is True
        assert r.get_json()["correct"] is (pick is min)  # the nearest code is right, the farthest wrong
