"""The study export (`gazelab study export --csv`) against its contract, DESIGN.md §2, for every
example design in studyweb/examples/: simulated participants (and, where a task needs answers the
simulator does not give, one participant through the test client) fill the design, build_maps
decides QC, and responses.csv and participants.csv are checked column by column and value by value."""
from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from datadir import Dataset

EXAMPLES = sorted((Path(__file__).parents[2] / "studyweb" / "examples").glob("*.yaml"))
# The contract, copied from DESIGN.md §2 ("Study exports"; ../shared/DESIGN.md, absent from a
# clean clone): responses.csv's columns in this order, then the documented extra columns.
RESPONSE_CONTRACT = ["experiment", "participant_id", "source", "block", "trial_id", "task", "question",
                     "stimulus_id", "pair_id", "side", "condition", "method", "shown_methods", "choice", "rating",
                     "text", "x", "y", "valid", "rt_ms", "created_at"]
RESPONSE_EXTRAS = ["coord_space", "is_practice", "is_catch", "correct"]
# participants.csv: participant_id, the same source vocabulary, status, the QC decision as stored.
PARTICIPANT_CONTRACT = ["participant_id", "source", "status", "qc_status", "qc_reason"]
SOURCES = {"human", "simulated", "imported"}
TASKS = {"choose_best", "rate", "pick_region", "describe", "codecharts", "bubbleview"}
FLAGS = {"True", "False"}
SIZE = (480, 360)  # CodeCharts: shown at 960x720 CSS px, codes over codecharts.MIN_CODE_PX
H = "X-Participant-Token"
NAME = "ex"


@pytest.fixture
def example_dataset(tmp_path, write_pair):
    """4 test-split pairs of 480x360 images with masks, maps and scenes (as test_pilot.py's)."""
    ds = Dataset.create(tmp_path / "ds", "contract", seed=2)
    rows = []
    for i in range(4):
        row = write_pair(ds.path, f"p{i}", size=SIZE)
        row["split"] = "test"
        rows.append(row)
    ds.add_pairs(rows)
    return ds


@pytest.fixture
def study(tmp_path, example_dataset):
    """study(example) -> (app, session, experiment): the example's experiment NAME in a fresh
    database, filled by 2 simulated participants."""
    from studyweb import create_app
    from studyweb.db.revisions import init_db
    from studyweb.designs import Design, create_from_design, load_design
    from studyweb.serving import serve_in_background
    from studyweb.simulate import simulate_participants

    opened = []

    def make(example: Path):
        url = f"sqlite:///{tmp_path / 'study.db'}"
        init_db(url)
        app = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": None,
                          "INSTANCE_DIR": str(tmp_path / "instance")})
        session = app.extensions["studyweb.sessions"]()
        opened.append((app, session))
        design = load_design(example, _methods(example, tmp_path / "edits", example_dataset))
        # At most one image per pair and block: the 4 pairs hold 4 a block (per_participant more is an error).
        design = Design({**design.values, "per_participant": min(design.values["per_participant"], 4)}, design.source)
        experiment = create_from_design(session, design, example_dataset.path, NAME)
        session.commit()
        with serve_in_background(app) as base:
            summary = simulate_participants(base, NAME, 2, concurrency=2, seed=1, model="centre")
        assert summary["complete"] == 2 and not summary["failures"], summary["failures"]
        return app, session, experiment

    yield make
    for app, session in opened:
        session.close()
        app.extensions["studyweb.engine"].dispose()


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.stem)
def test_the_export_of_every_example_design_is_the_contract(example, study, tmp_path):
    from studyweb.db.schema import Participant
    from studyweb.export import export_csv
    from studyweb.maps import build_maps

    app, session, experiment = study(example)
    described = _describe_by_hand(app) if experiment.settings.get("mode") == "describe" else 0
    build_maps(session, experiment)  # QC decides, and stores each participant's decision
    session.commit()
    files = export_csv(session, experiment, tmp_path / "csv")
    header, responses = _read(files["responses"])
    assert header == RESPONSE_CONTRACT + RESPONSE_EXTRAS and responses
    people_header, people = _read(files["participants"])
    assert people_header[:len(PARTICIPANT_CONTRACT)] == PARTICIPANT_CONTRACT
    trials = {r["id"]: r for r in _read(files["trials"])[1]}
    stimuli = {r["stimulus_id"]: r for r in _read(files["stimuli"])[1]}
    source_of = {p["participant_id"]: p["source"] for p in people}
    design = experiment.settings["design"] if experiment.task == "questionnaire" else None  # attention: one too
    blocks = {b["name"]: b["task"] for b in design["blocks"]} if design else {}

    for row in responses:
        trial = trials[row["trial_id"]]
        assert row["experiment"] == NAME and row["source"] in SOURCES
        assert row["source"] == source_of[row["participant_id"]]  # one vocabulary in both files
        assert row["task"] in TASKS
        if design:  # a questionnaire: the design block's name, whose task the row has
            assert blocks[row["block"]] == row["task"]
        else:  # a codecharts or bubbleview study is a design's only block
            assert row["block"] == "" and row["task"] == experiment.task
        # No image of the study: a CodeCharts sentinel, or a practice image the page draws itself.
        imageless = trial["stimulus_id"] == "" and row["task"] in ("codecharts", "bubbleview")
        sentinel = imageless and row["task"] == "codecharts"
        if imageless:
            assert row["stimulus_id"] == row["pair_id"] == row["method"] == "" and row["is_catch"] == str(sentinel)
        else:  # an image was shown: named, with its pair and side, and the version shown or chosen
            assert row["stimulus_id"] and row["pair_id"] and row["side"], row
            shown = stimuli[row["stimulus_id"]]
            assert (row["pair_id"], row["side"]) == (shown["pair_id"], shown["side"])
            if trial["stimulus_id"]:
                assert row["stimulus_id"] == trial["stimulus_id"]
            if row["task"] == "choose_best":
                assert row["method"] == row["choice"] and row["choice"] in row["shown_methods"].split("|")
            else:
                assert row["method"] == shown["method"] and row["shown_methods"] == row["method"]
            if row["condition"]:  # Gatys' conditions: the version shown is the condition
                assert row["method"] == row["condition"]
        if row["is_catch"] == "True" and not sentinel:
            assert row["question"] == "catch" and row["correct"] in FLAGS
        assert row["coord_space"] == ("" if row["x"] == "" else "display" if sentinel else "image")
        assert {row["valid"], row["is_practice"], row["is_catch"]} <= FLAGS and row["correct"] in FLAGS | {""}
        assert row["is_practice"] == trial["is_practice"]
        if row["question"] != "describe":
            assert float(row["rt_ms"]) >= 0
        assert dt.datetime.fromisoformat(row["created_at"]).utcoffset() == dt.timedelta(0)

    assert sum(r["question"] == "describe" and r["task"] == "bubbleview" for r in responses) == described
    stored = dict(session.query(Participant.id, Participant.qc_status))
    assert {p["participant_id"]: p["qc_status"] for p in people} == {str(k): v or "" for k, v in stored.items()}
    assert {p["source"] for p in people} <= SOURCES and "kept" in {p["qc_status"] for p in people}

    # New QC settings that would decide otherwise change nothing until the maps are built again.
    experiment.settings = {**experiment.settings, "qc": {"min_clicks": 99, "iqr_k": 0.001, "max_focus_losses": 0}}
    session.commit()
    again = _read(export_csv(session, experiment, tmp_path / "again")["participants"])[1]
    assert [(p["qc_status"], p["qc_reason"], p["qc_decided_at"]) for p in again] == \
           [(p["qc_status"], p["qc_reason"], p["qc_decided_at"]) for p in people]


def test_each_answer_has_its_own_response_time(study, tmp_path):
    """A questionnaire page sends each answer's time; one that sends only the trial's time (an
    older page) gets it on every answer of the trial."""
    from studyweb.export import export_csv

    app, session, experiment = study(next(e for e in EXAMPLES if e.stem == "sgit_preference"))
    client, token = _enrol(app, "per-answer")
    trials = [t for t in client.get("/api/v1/session", headers={H: token}).get_json()["trials"]
              if t["status"] != "done" and all(q["id"] != "catch" for q in t["questions"])]  # a wrong catch ends it
    timed, untimed = trials[0], trials[1]
    for k, trial in enumerate((timed, untimed)):
        answers = [{"question": q["id"], "choice": trial["candidates"][0]["label"]} for q in trial["questions"]]
        if trial is timed:
            answers = [{**a, "rt_ms": 1000.0 * (i + 1)} for i, a in enumerate(answers)]
        r = client.post(trial["answer_url"], headers={H: token},
                        json={"idempotency_key": f"rt{k}", "answers": answers, "rt_ms": 9000})
        assert r.status_code == 200, r.get_json()
    rows = _read(export_csv(session, experiment, tmp_path / "csv")["responses"])[1]
    times = {t["id"]: [float(r["rt_ms"]) for r in rows if r["trial_id"] == str(t["id"])] for t in (timed, untimed)}
    assert times[timed["id"]] == [1000.0 * (i + 1) for i in range(len(timed["questions"]))]
    assert times[untimed["id"]] == [9000.0] * len(untimed["questions"])
    bad = client.post(trials[2]["answer_url"], headers={H: token},
                      json={"idempotency_key": "bad", "rt_ms": 9000, "answers": [
                          {"question": q["id"], "choice": "A", "rt_ms": "fast"} for q in trials[2]["questions"]]})
    assert bad.status_code == 422 and "rt_ms" in bad.get_json()["message"]


@pytest.mark.browser
def test_the_questionnaire_page_sends_each_answers_own_time(serve_with, app, tmp_path, write_pair):
    """static/questionnaire.js times each question from its appearing to its "Next": a question
    lingered over has a longer rt_ms than one answered at once, each shorter than the trial's."""
    from support.browser import chromium_page, require_browser

    from studyweb.db.schema import Participant, Response
    from studyweb.designs import create_from_design

    require_browser()
    ds = Dataset.create(tmp_path / "ds2", "timed", seed=1)
    ds.add_pairs([write_pair(ds.path, "t0", size=(120, 90))])
    folder = tmp_path / "edits" / "grey"
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "t0.png"), np.full((90, 120, 3), 90, np.uint8))
    design = {"title": "Timed", "per_participant": 1, "observers": 5, "completion_code": "T1",
              "methods": {"grey": str(folder)},
              "blocks": [{"name": "best", "task": "choose_best", "candidates": ["grey", "original"],
                          "reference": {"input": True, "target_map": False},
                          "questions": [{"id": "slow", "text": "Take your time."}, {"id": "fast", "text": "Quick!"}]}]}
    base = serve_with(lambda db: create_from_design(db, design, ds.path, "timed"))
    with chromium_page(1000, 700) as page:
        page.goto(f"{base}/s/timed?PROLIFIC_PID=timer")
        page.locator("#consent-yes").click()
        page.locator("#instructions-ok").click()
        page.wait_for_selector('.qn-stage[data-state="answering"]')
        page.locator(".qn-candidate img").first.click()
        page.wait_for_timeout(600)
        page.locator("button.qn-next").click()
        page.wait_for_selector('.qn-stage[data-step="1"]')
        page.locator(".qn-candidate img").first.click()
        page.locator("button.qn-next").click()
        page.wait_for_url("**/debrief*")
    db = app.extensions["studyweb.sessions"]()
    try:
        participant = db.query(Participant).filter_by(recruit_id="timer").one()
        rt = {r.question: r.rt_ms for r in db.query(Response).filter_by(participant_id=participant.id)}
        trial_ms = participant.trials[0].duration_ms
    finally:
        db.close()
    assert rt["slow"] >= 600 and rt["fast"] < rt["slow"] and rt["slow"] + rt["fast"] <= trial_ms


def _describe_by_hand(app) -> int:
    """One participant through the test client who describes every BubbleView trial (the
    simulator does not type); returns the descriptions saved."""
    client, token = _enrol(app, "describer")
    trials = client.get("/api/v1/session", headers={H: token}).get_json()["trials"]
    for k, trial in enumerate(trials):
        r = client.post(trial["save_url"], headers={H: token},
                        json={"idempotency_key": f"d{k}", "done": True, "elapsed_ms": 4000.0,
                              "response_text": f"=a description of image {k}"})
        assert r.status_code == 200, r.get_json()
    return len(trials)


def _enrol(app, recruit_id: str):
    """(a test client, token) of a participant who consented and read the instructions."""
    client = app.test_client()
    assert client.get(f"/s/{NAME}", query_string={"PROLIFIC_PID": recruit_id}).status_code == 302
    token = client.get_cookie(app.config["PARTICIPANT_COOKIE"]).value
    assert client.post(f"/s/{NAME}/consent", data={"consent": "yes"}).status_code == 302
    assert client.post(f"/s/{NAME}/instructions", data={"window_w": "800"}).status_code == 302
    return client, token


def _read(path) -> tuple[list[str], list[dict]]:
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _methods(example: Path, root: Path, dataset) -> dict[str, str]:
    """Stand-in outputs for every method the example names: a tinted copy of each input."""
    names = list(yaml.safe_load(example.read_text()).get("methods") or {})
    out = {}
    for k, name in enumerate(names):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for pair_id in dataset.pairs["pair_id"]:
            image = cv2.imread(str(dataset.path / f"images/{pair_id}_x.png"))
            cv2.imwrite(str(folder / f"{pair_id}.png"), np.clip(image.astype(int) + 20 * (k + 1), 0, 255).astype(np.uint8))
        out[name] = str(folder)
    return out
