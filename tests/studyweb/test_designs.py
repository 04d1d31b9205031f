"""Study designs in YAML (`studyweb.designs`) and the questionnaire trials they make
(`studyweb.questionnaire_study`): checking with lines, stimuli per method, each question type
answered and refused, catch trials and QC, responses.csv."""
from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from studyweb.db import Participant, Response
from studyweb.designs import DesignError, create_from_design, load_design

H = "X-Participant-Token"
METHODS = ("salggan", "hag", "cyclegan")


@pytest.fixture
def method_dirs(tmp_path, dataset):
    """Folders of <pair_id>.png per method for the 3-pair dataset (16x12, as the inputs)."""
    dirs = {}
    for k, method in enumerate(METHODS):
        folder = tmp_path / "edits" / method
        folder.mkdir(parents=True)
        for pair_id in dataset.pairs["pair_id"]:
            cv2.imwrite(str(folder / f"{pair_id}.png"), np.full((12, 16, 3), 40 * (k + 1), np.uint8))
        dirs[method] = str(folder)
    return dirs


def _design(**blocks):
    return {"title": "Pilot questions", "per_participant": 2, "observers": 4, "completion_code": "Q1",
            "blocks": list(blocks.values()) or [
                {"name": "best", "task": "choose_best", "questions": [{"id": "realism", "text": "Most realistic?"},
                                                                       {"id": "saliency", "text": "Best saliency?"}],
                 "reference": {"input": True, "target_map": True}},
                {"name": "fidelity", "task": "rate", "scale": "fidelity"},
                {"name": "salient", "task": "pick_region",
                 "follow_up": {"id": "different", "text": "Do the two differ?", "choices": ["yes", "no"]}},
                {"name": "words", "task": "describe", "question": "Describe the image.", "max_chars": 200},
            ]}


@pytest.fixture
def quest(app, dataset, method_dirs):
    """Experiment 'quest' from the four-block design, in the app's database."""
    db = app.extensions["studyweb.sessions"]()
    design = {**_design(), "methods": method_dirs, "catch": {"every": 3, "max_failures": 0}}
    experiment = create_from_design(db, design, dataset.path, "quest")
    db.commit()
    n_stimuli = len(experiment.stimuli)
    db.close()
    return n_stimuli


@pytest.fixture
def enter(enrol_in, quest):
    return lambda pid: enrol_in("quest", PROLIFIC_PID=pid)


def _fetch(c, url) -> tuple[int, bytes, str]:
    """(status, body, mimetype) of a GET, the response closed (its file handle too)."""
    with c.get(url) as r:
        return r.status_code, r.data, r.mimetype


def _trials(c, token):
    return c.get("/api/v1/session", headers={H: token}).get_json()["trials"]


def _good_answers(c, token, trial):
    """Answers a diligent participant gives (the identical candidate on a catch trial)."""
    answers = []
    for q in trial["questions"]:
        if trial["task"] == "choose_best":
            choice = trial["candidates"][0]["label"]
            if q["id"] == "catch":
                reference = _fetch(c, trial["reference"]["input_url"])[1]
                choice = next(x["label"] for x in trial["candidates"] if _fetch(c, x["image_url"])[1] == reference)
            answers.append({"question": q["id"], "choice": choice})
        elif trial["task"] == "rate":
            answers.append({"question": q["id"], "rating": max(trial["scale"]["scores"]) if q["id"] == "catch"
                            else trial["scale"]["scores"][1]})
        elif trial["task"] == "pick_region":
            x0, y0, x1, y1 = trial["regions"][0]["box"]
            answers.append({"question": q["id"], "x": (x0 + x1) / 2, "y": (y0 + y1) / 2})
        else:
            answers.append({"question": q["id"], "text": "=a red cube"})
    if trial.get("follow_up"):
        answers.append({"question": trial["follow_up"]["id"], "choice": "no"})
    return answers


def _answer(c, token, trial, answers, key, **extra):
    return c.post(trial["answer_url"], headers={H: token},
                  json={"idempotency_key": key, "answers": answers, "rt_ms": 1500, **extra})


def test_a_design_makes_stimuli_for_every_method_and_blocks_of_trials(enter, quest):
    assert quest == 3 * (1 + len(METHODS))
    c, token = enter("blocks")
    trials = _trials(c, token)
    blocks = [t["block"] for t in trials]
    assert blocks == sorted(blocks, key=["best", "fidelity", "salient", "words"].index)  # blocks in order
    best = [t for t in trials if t["task"] == "choose_best" and t["questions"][0]["id"] != "catch"]
    assert len(best) == 2 and all(len(t["candidates"]) == 3 for t in best)
    assert all(t["reference"]["input_url"] and t["reference"]["target_map_url"] for t in best)
    assert "catch" in [q["id"] for t in trials for q in t["questions"]]
    for t in trials:
        for url in [x["image_url"] for x in t.get("candidates", [])] + [t.get("image_url")]:
            if url:
                status, _, mimetype = _fetch(c, url)
                assert status == 200 and mimetype == "image/png"
    status, target, _ = _fetch(c, best[0]["reference"]["target_map_url"])
    assert status == 200 and cv2.imdecode(np.frombuffer(target, np.uint8), 1).shape == (12, 16, 3)
    other, other_token = enter("other")
    assert other.get(best[0]["candidates"][0]["image_url"].split("?")[0], headers={H: other_token}).status_code == 404


def test_each_question_type_is_stored_with_its_method_and_order(enter, dbs):
    c, token = enter("answers")
    trials = _trials(c, token)
    for i, trial in enumerate(trials):
        shown = [x["label"] for x in trial.get("candidates", [])][::-1]
        r = _answer(c, token, trial, _good_answers(c, token, trial), f"a{i}", shown_order=shown)
        assert r.status_code == 200, r.get_json()
    assert c.get("/api/v1/session", headers={H: token}).get_json()["status"] == "debrief"
    rows = dbs.query(Response).join(Participant).filter(Participant.recruit_id == "answers").all()
    best = [r for r in rows if r.task == "choose_best" and r.question == "realism"]
    assert best and all(r.choice in (*METHODS, "original") and r.payload["label"] == "A" for r in best)
    assert all(sorted(r.shown_methods) == sorted(METHODS) for r in best)
    assert {r.rating for r in rows if r.task == "rate" and r.question == "score"} == {2.0}
    picks = [r for r in rows if r.task == "pick_region" and r.question == "most_salient"]
    assert picks and all(r.choice in ("1", "2") and r.x is not None for r in picks)
    assert {r.choice for r in rows if r.question == "different"} == {"no"}
    assert {r.text for r in rows if r.task == "describe"} == {"=a red cube"}
    assert all(r.correct is True for r in rows if r.question == "catch")


@pytest.mark.parametrize("task, bad, message", [
    ("choose_best", {"choice": "Z"}, "must be one of the candidates"),
    ("rate", {"rating": 7}, "one of the scale's scores"),
    ("pick_region", {"x": 15.5, "y": 11.5}, "on no object"),
    ("describe", {"text": "  "}, "a text of 1 to 200 characters"),
])
def test_answers_that_do_not_fit_are_refused_and_nothing_is_stored(enter, dbs, task, bad, message):
    c, token = enter(f"bad-{task}")
    trial = next(t for t in _trials(c, token) if t["task"] == task and t["questions"][0]["id"] != "catch")
    answers = _good_answers(c, token, trial)
    answers[0] = {"question": answers[0]["question"], **bad}
    r = _answer(c, token, trial, answers, "bad")
    assert r.status_code == 422 and message in r.get_json()["message"]
    assert _answer(c, token, trial, answers[1:] or [{"question": "nope", "choice": "A"}], "missing").status_code == 422
    assert dbs.query(Response).count() == 0
    assert _answer(c, token, trial, _good_answers(c, token, trial), "fixed").status_code == 200


def test_failing_a_catch_trial_excludes_the_participant_and_csv_says_why(enter, dbs, app, tmp_path):
    from studyweb.experiments import experiment_by_name
    from studyweb.export import export_csv

    c, token = enter("careless")
    for i, trial in enumerate(_trials(c, token)):
        answers = _good_answers(c, token, trial)
        if answers[0]["question"] == "catch":  # the wrong candidate / not the top score
            answers[0] = ({"question": "catch", "choice": next(x["label"] for x in trial["candidates"]
                                                               if x["label"] != answers[0]["choice"])}
                          if trial["task"] == "choose_best" else {"question": "catch", "rating": 0})
        assert _answer(c, token, trial, answers, f"c{i}").status_code == 200
    files = export_csv(dbs, experiment_by_name(dbs, "quest"), tmp_path / "csv")
    with open(files["participants"], encoding="utf-8", newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["recruit_id"] == "careless")
    assert row["qc_status"] == "excluded" and "catch" in row["qc_reason"]
    with open(files["responses"], encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["block"] for r in rows} == {"best", "fidelity", "salient", "words"}
    assert any(r["shown_methods"].count("|") == 2 for r in rows)
    assert {r["text"] for r in rows if r["task"] == "describe"} == {"'=a red cube"}  # spreadsheet-safe


YAML = """\
title: A study
methods:
  salggan: {salggan}
blocks:
  - name: best
    task: choose_best
    questions:
      - {{id: realism, text: "Most realistic?"}}
    candidatez: [salggan, original]
"""


def test_design_errors_name_the_line_and_key(tmp_path, method_dirs, dataset, dbs):
    path = tmp_path / "design.yaml"
    path.write_text(YAML.format(salggan=method_dirs["salggan"]))
    with pytest.raises(DesignError, match=r"design.yaml line 9: blocks\[0\]\.candidatez: unknown key"):
        load_design(path)
    path.write_text(YAML.format(salggan=method_dirs["salggan"]).replace("candidatez", "candidates")
                    .replace("original]", "nomethod]"))
    with pytest.raises(DesignError, match=r"line 9: blocks\[0\]\.candidates\[1\]: 'nomethod' is not a method"):
        load_design(path)
    path.write_text(YAML.format(salggan=tmp_path / "missing").replace("candidatez", "candidates"))
    with pytest.raises(DesignError, match=r"line 3: methods\.salggan: folder .*missing does not exist"):
        load_design(path)
    empty = tmp_path / "edits" / "empty"
    empty.mkdir()
    design = load_design(YAML.format(salggan=empty).replace("candidatez", "candidates"))
    with pytest.raises(DesignError, match=r"method 'salggan' has no output for pair 000000"):
        create_from_design(dbs, design, dataset.path, "nope")
    dbs.rollback()


def test_methods_from_the_command_line_override_the_design(tmp_path, method_dirs):
    design = load_design(YAML.format(salggan=tmp_path / "missing").replace("candidatez", "candidates"),
                         methods={"salggan": method_dirs["salggan"]})
    assert design.values["methods"]["salggan"] == method_dirs["salggan"]


def test_simulated_participants_answer_every_question_type_and_pass_the_catch_trials(app, quest, dbs):
    from studyweb.serving import serve_in_background as served
    from studyweb.experiments import experiment_by_name
    from studyweb.qc import run_qc
    from studyweb.simulate import simulate_participants

    with served(app) as url:
        summary = simulate_participants(url, "quest", 3, concurrency=2, drop_rate=0.2, model="centre")
    assert summary["complete"] == 3 and not summary["failures"]
    tasks = {r.task for r in dbs.query(Response)}
    assert tasks == {"choose_best", "rate", "pick_region", "describe"}
    assert all(r.correct for r in dbs.query(Response).filter(Response.question == "catch"))
    result = run_qc(dbs, experiment_by_name(dbs, "quest"))
    assert len(result.kept) == 3 and not [f for f in result.flags if f.excluded]


@pytest.mark.parametrize("task", ["bubbleview", "codecharts"])
def test_latin_square_blocks_over_participants(app, tmp_path, write_pair, task):
    """Gatys' design on the server: each participant sees each source image once per block,
    one condition per block, and the conditions of the first blocks balance over participants."""
    from collections import Counter

    from datagen.dataset import Dataset
    from studyweb.assignment import assign

    ds = Dataset.create(tmp_path / "g", "g", seed=1)
    ds.add_pairs([write_pair(ds.path, f"g{i}", size=(320, 240)) for i in range(4)])
    folders = {}
    for method in ("increase", "decrease"):
        folder = tmp_path / method
        folder.mkdir()
        for i in range(4):
            cv2.imwrite(str(folder / f"g{i}.png"), np.full((240, 320, 3), 90, np.uint8))
        folders[method] = str(folder)
    design = {"methods": folders, "per_participant": "all", "observers": 50,
              "conditions": ["original", "increase", "decrease"],
              "blocks": [{"name": "look", "task": task, **({"codecharts": {"image_ms": [500]}}
                                                            if task == "codecharts" else {})}]}
    db = app.extensions["studyweb.sessions"]()
    experiment = create_from_design(db, design, ds.path, "gatys")
    db.commit()
    firsts = Counter()
    for p in range(6):
        participant = Participant(experiment_id=experiment.id, status="instructions")
        db.add(participant)
        db.flush()
        trials = [t for t in assign(db, experiment, participant) if not t.is_practice and t.stimulus_id]
        db.commit()
        blocks = {}
        for trial in trials:
            stimulus = db.get(type(experiment.stimuli[0]), trial.stimulus_id)
            assert (stimulus.method or "original") == trial.spec["condition"]
            blocks.setdefault(trial.spec["block"], []).append((stimulus.pair_id, trial.spec["condition"]))
        assert sorted(blocks) == [0, 1, 2]
        for shown in blocks.values():
            assert sorted(pair for pair, _ in shown) == [f"g{i}" for i in range(4)]  # each image once per block
            assert len({condition for _, condition in shown}) == 1  # one version per block
        assert sorted(shown[0][1] for shown in blocks.values()) == ["decrease", "increase", "original"]
        firsts[blocks[0][0][1]] += 1
    assert firsts == Counter({"original": 2, "increase": 2, "decrease": 2})
    db.close()


def test_conditions_belong_to_attention_designs(method_dirs):
    with pytest.raises(DesignError, match="conditions are for codecharts and bubbleview designs"):
        load_design({**_design(), "methods": method_dirs, "conditions": ["original", "hag"]})
    with pytest.raises(DesignError, match=r"conditions\[1\]: 'nope' is not 'original' nor a method"):
        load_design({"methods": method_dirs, "conditions": ["original", "nope"],
                     "blocks": [{"name": "b", "task": "bubbleview"}]})
