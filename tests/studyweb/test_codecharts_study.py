"""CodeCharts on the server: a participant's trials (tutorial, sentinels), the chart API, typed
codes stored as gaze points, the tutorial gate, QC and maps (`studyweb.tasks.codecharts`)."""
from __future__ import annotations

import pytest

from studyweb import codecharts
from studyweb.db.schema import Click, Event, Participant, Response, Trial

H = "X-Participant-Token"
SIZE = (480, 360)  # natural size; shown at 960x720 CSS px (max_upscale 2 < display_width_px 1000)


@pytest.fixture
def cc(app, tmp_path, write_pair):
    """Experiment 'cc' (CodeCharts, 6 pairs of 480x360, K=4, M=5) in the app's database."""
    from datadir import Dataset
    from studyweb.experiments import create_experiment

    ds = Dataset.create(tmp_path / "ccds", "cc", seed=1)
    ds.add_pairs([write_pair(ds.path, f"c{i}", size=SIZE) for i in range(6)])
    db = app.extensions["studyweb.sessions"]()
    create_experiment(db, ds.path, "cc", task="codecharts", per_participant=4, observers=5, completion_code="CC1",
                      codecharts={"image_ms": [1000, 2000], "sentinel_every": 3})
    db.commit()
    db.close()
    return "cc"


@pytest.fixture
def enter(enrol_in, cc):
    return lambda pid: enrol_in("cc", PROLIFIC_PID=pid)


def _session(c, token):
    return c.get("/api/v1/session", headers={H: token}).get_json()


def _answer(c, token, trial, code, key):
    return c.post(trial["answer_url"], headers={H: token}, json={"idempotency_key": key, "code": code, "rt_ms": 900})


def _chart(c, token, trial):
    r = c.get(trial["chart_url"], headers={H: token})
    assert r.status_code == 200
    return r.get_json()


def _good_code(chart):
    """A code that answers the trial well: for a sentinel the one nearest the target, found by
    looking at the sentinel's screen (the JSON does not say where it is)."""
    if chart["kind"] == "sentinel":
        tx, ty = codecharts.locate_sentinel_target(chart["sentinel_png"], chart["width"])
        return min(chart["codes"], key=lambda c: (c["x"] - tx) ** 2 + (c["y"] - ty) ** 2)
    return chart["codes"][len(chart["codes"]) // 2]


def test_a_participant_gets_the_tutorial_then_images_with_sentinels(enter):
    c, token = enter("plan")
    s = _session(c, token)
    assert s["status"] == "practice"
    tutorial = [t for t in s["trials"] if t["is_practice"]]
    main = [t for t in s["trials"] if not t["is_practice"]]
    assert sorted(t["kind"] for t in tutorial) == ["image"] * 3 + ["sentinel"] * 3
    assert [t["kind"] for t in main].count("image") == 4 and "sentinel" in [t["kind"] for t in main]
    kinds = [t["kind"] for t in s["trials"]]
    assert all(not (a == b == "sentinel") for a, b in zip(kinds, kinds[1:]))
    for t in s["trials"]:
        assert t["task"] == "codecharts" and (t["display_w"], t["display_h"]) == (960.0, 720.0)
        assert t["fixation_ms"] == 750 and t["chart_ms"] == 400 and t["image_ms"] in (1000, 2000)
        assert (t["image_url"] is None) == (t["kind"] == "sentinel")


def test_a_typed_code_becomes_a_gaze_point_at_its_position_in_image_pixels(enter, dbs):
    c, token = enter("gaze")
    s = _session(c, token)
    for i, trial in enumerate(s["trials"]):
        chart = _chart(c, token, trial)
        seed = dbs.get(Trial, trial["id"]).spec["seed"]  # the server's own: a sentinel's JSON has none
        assert chart == codecharts.to_json(codecharts.from_seed(960.0, 720.0, seed, trial["kind"]))
        pick = _good_code(chart)
        r = _answer(c, token, trial, " " + pick["code"].lower() + " ", f"k{i}")
        assert r.status_code == 200 and r.get_json()["valid"] is True, r.get_json()
        if trial["kind"] == "sentinel":
            assert r.get_json()["correct"] is True
        if not trial["is_practice"] and trial["kind"] == "image":
            click = dbs.query(Click).filter_by(trial_id=trial["id"]).one()
            assert click.x == pytest.approx(pick["x"] * 480 / 960) and click.y == pytest.approx(pick["y"] * 360 / 720)
            assert click.t_ms == trial["image_ms"]
    assert _session(c, token)["status"] == "debrief"
    responses = dbs.query(Response).join(Participant).filter(Participant.recruit_id == "gaze").all()
    assert len(responses) == len(s["trials"]) and {r.question for r in responses} == {"code"}


def test_codes_of_the_wrong_shape_are_refused_and_unknown_codes_stored_invalid(enter, dbs):
    c, token = enter("typo")
    trial = _session(c, token)["trials"][0]
    for typo in ("B4", "47B", "BB47", "", "B 4 7 8"):
        r = _answer(c, token, trial, typo, "typo")
        assert r.status_code == 422 and "a letter and two digits" in r.get_json()["message"]
    assert dbs.query(Response).count() == 0
    chart = _chart(c, token, trial)
    unknown = next(f"{letter}{a}{b}" for letter in "ABCDEFGH" for a in "123456789" for b in "123456789"
                   if a != b and f"{letter}{a}{b}" not in {x["code"] for x in chart["codes"]})
    r = _answer(c, token, trial, unknown, "unknown")
    assert r.status_code == 200 and r.get_json()["valid"] is False
    assert _answer(c, token, trial, unknown, "unknown").get_json()["duplicate"] is True
    assert _answer(c, token, trial, chart["codes"][0]["code"], "again").status_code == 409  # answered already


def test_failing_the_tutorial_screens_out_frees_the_slots_and_is_excluded_by_qc(enter, dbs, app):
    from studyweb.assignment import observer_counts
    from studyweb.experiments import experiment_by_name
    from studyweb.qc import run_qc

    c, token = enter("fails")
    s = _session(c, token)
    for i, trial in enumerate(t for t in s["trials"] if t["is_practice"]):
        r = _answer(c, token, trial, "Z98" if i % 2 else "Z89", f"f{i}")  # mostly not on the chart
        assert r.status_code == 200
    last = r.get_json()
    assert last["tutorial"]["passed"] is False and "invalid" in last["tutorial"]["reason"]
    assert last["status"] == "screened_out"
    after = _session(c, token)
    assert after["status"] == "screened_out" and all(t["is_practice"] for t in after["trials"])
    assert observer_counts(dbs, experiment_by_name(dbs, "cc")) == {}  # nobody's slot is held
    participant = dbs.query(Participant).filter_by(recruit_id="fails").one()
    assert participant.completion_code != "CC1" and participant.qc_status == "screened_out"
    assert dbs.query(Event).filter_by(participant_id=participant.id, kind="tutorial_failed").count() == 1
    flags = [f for f in run_qc(dbs, experiment_by_name(dbs, "cc")).flags if f.participant_id == participant.id]
    assert flags and flags[-1].excluded and "tutorial" in flags[-1].reason


def test_maps_are_built_from_gaze_points(enter, dbs, app):
    from studyweb.experiments import experiment_by_name
    from studyweb.maps import build_maps

    for n in range(3):
        c, token = enter(f"map{n}")
        for i, trial in enumerate(_session(c, token)["trials"]):
            _answer(c, token, trial, _good_code(_chart(c, token, trial))["code"], f"m{n}-{i}")
    experiment = experiment_by_name(dbs, "cc")
    summary = build_maps(dbs, experiment)
    assert summary["built"] > 0 and summary["kept_participants"] == 3 and not summary["excluded_participants"]


def test_chart_and_answer_refuse_other_participants_and_bubbleview_trials(enter, enrol):
    a, token_a = enter("own-a")
    b, token_b = enter("own-b")
    trial = _session(a, token_a)["trials"][0]
    assert b.get(trial["chart_url"], headers={H: token_b}).status_code == 404
    assert _answer(b, token_b, trial, "B47", "x").status_code == 404
    p, token_p = enrol(PROLIFIC_PID="bubble")
    bubble = _session(p, token_p)["trials"][1]["id"]
    assert p.get(f"/api/v1/trials/{bubble}/chart", headers={H: token_p}).status_code == 404


def test_the_smallest_size_the_page_draws_an_image_at_keeps_codes_of_the_minimum_height():
    from studyweb.codecharts import FONT_FRAC, MIN_CODE_PX
    from studyweb.tasks.codecharts import least_shown_size

    settings = {"display_width_px": 1000, "max_upscale": 2}
    w, h = least_shown_size(*SIZE, settings)  # shown at 960x720
    assert FONT_FRAC * h == pytest.approx(MIN_CODE_PX) and w / h == pytest.approx(SIZE[0] / SIZE[1])
    assert least_shown_size(1000, 500, settings) == (1000, 500)  # codes 9.25 px already: never smaller


@pytest.mark.parametrize("settings, match", [
    ({"codecharts": {"image_ms": []}}, "image_ms"),
    ({"codecharts": {"sentinel_every": 1}}, "sentinel_every must be an integer >= 2"),
    ({"codecharts": {"flash_ms": 3}}, "unknown codecharts settings \\['flash_ms'\\]"),
    ({"display_width_px": 200, "max_upscale": 1}, "too small for a code chart"),
    ({"display_width_px": 640}, r"shown at 640x480 CSS px, too small for a code chart: its codes would be 8\.88 px"
                                r" high, under the 10 px minimum \(a shown height of at least 541 px:"
                                r" display_width_px at least 722 and max_upscale at least 1\.51\)"),
])
def test_bad_codecharts_settings_are_refused_with_the_key(app, tmp_path, write_pair, settings, match):
    from datadir import Dataset
    from studyweb.experiments import create_experiment

    ds = Dataset.create(tmp_path / "bad", "bad", seed=1)
    ds.add_pairs([write_pair(ds.path, "b0", size=SIZE)])
    db = app.extensions["studyweb.sessions"]()
    try:
        with pytest.raises(ValueError, match=match):
            create_experiment(db, ds.path, "bad", task="codecharts", **settings)
    finally:
        db.rollback()
        db.close()


def test_simulated_participants_do_codecharts_through_the_http_api(app, cc, dbs):
    """The simulated client answers CodeCharts trials as the page does (chart, then a code):
    every participant completes, every gaze point sent is stored, maps build."""
    from studyweb.serving import serve_in_background as served
    from studyweb.experiments import experiment_by_name
    from studyweb.maps import build_maps
    from studyweb.simulate import simulate_participants

    with served(app) as url:
        summary = simulate_participants(url, "cc", 4, concurrency=2, drop_rate=0.2, model="centre")
    assert summary["complete"] == 4 and not summary["failures"]
    stored = dbs.query(Click).join(Trial).join(Participant).filter(Participant.experiment.has(name="cc")).count()
    assert stored == summary["clicks_sent"] > 0
    assert dbs.query(Response).filter(Response.valid.is_(False)).count() == 0
    assert build_maps(dbs, experiment_by_name(dbs, "cc"))["built"] > 0


def test_create_experiment_cli_makes_a_codecharts_study(run_cli, tmp_path, write_pair):
    from datadir import Dataset
    from studyweb.db.revisions import open_session
    from studyweb.experiments import experiment_by_name

    ds = Dataset.create(tmp_path / "cli", "cli", seed=1)
    ds.add_pairs([write_pair(ds.path, f"k{i}", size=SIZE) for i in range(2)])
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    code, out, err = run_cli("study", "create-experiment", "--dataset", ds.path, "--name", "ccli", "--task",
                             "codecharts", "--image-ms", "1000,3000", "--sentinel-every", "5", "--db", url)
    assert code == 0, err
    with open_session(url) as session:
        settings = experiment_by_name(session, "ccli").settings
    assert settings["codecharts"]["image_ms"] == [1000, 3000] and settings["codecharts"]["sentinel_every"] == 5
    assert settings["qc"]["min_clicks"] == 1 and settings["qc"]["iqr_k"] is None
    for args, message in ((["--image-ms", "2s"], "--image-ms"), (["--task", "bubbleview", "--chart-ms", "300"],
                                                                 "--task codecharts")):
        code, _, err = run_cli("study", "create-experiment", "--dataset", ds.path, "--name", "x",
                               *(["--task", "codecharts"] if "--task" not in args else []), *args, "--db", url)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_responses_csv_has_one_row_per_answer_with_the_study_export_columns(enter, dbs, tmp_path):
    import csv

    from studyweb.experiments import experiment_by_name
    from studyweb.export import RESPONSE_COLUMNS, export_csv
    from studyweb.maps import build_maps

    c, token = enter("csv")
    trials = _session(c, token)["trials"]
    for i, trial in enumerate(trials):
        _answer(c, token, trial, _good_code(_chart(c, token, trial))["code"], f"csv{i}")
    build_maps(dbs, experiment_by_name(dbs, "cc"))  # QC decides and stores the decision the export reads
    dbs.commit()
    files = export_csv(dbs, experiment_by_name(dbs, "cc"), tmp_path / "out")
    with open(files["responses"], encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == RESPONSE_COLUMNS and len(rows) == len(trials)
    assert {r["task"] for r in rows} == {"codecharts"} and {r["source"] for r in rows} == {"human"}
    assert all(r["valid"] == "True" and r["choice"] and r["x"] and r["y"] for r in rows)
    assert all(r["pair_id"] == "" for r, t in zip(rows, trials) if t["kind"] == "sentinel")
    with open(files["participants"], encoding="utf-8", newline="") as handle:
        participant = next(csv.DictReader(handle))
    assert participant["qc_status"] == "kept" and participant["qc_reason"] == ""
