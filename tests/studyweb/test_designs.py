"""Study designs in YAML (`studyweb.designs`) and the questionnaire trials they make
(`studyweb.tasks`): checking with lines, stimuli per method, each question type
answered and refused, catch trials and QC, responses.csv."""
from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from studyweb.db.schema import Participant, Response
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
            x, y = trial["regions"][0]["point"]
            answers.append({"question": q["id"], "x": x, "y": y})
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


def test_failing_a_catch_trial_screens_the_participant_out_and_csv_says_why(enter, dbs, app, tmp_path):
    """catch.max_failures 0: the first failed catch trial screens the participant out then and
    there (studyweb.screening); their later answers are refused."""
    from studyweb.experiments import experiment_by_name
    from studyweb.export import export_csv
    from studyweb.maps import build_maps

    careful, careful_token = enter("careful")
    for i, trial in enumerate(_trials(careful, careful_token)):
        assert _answer(careful, careful_token, trial, _good_answers(careful, careful_token, trial),
                       f"g{i}").status_code == 200
    c, token = enter("careless")
    answered = []
    for i, trial in enumerate(_trials(c, token)):
        answers = _good_answers(c, token, trial)
        if answers[0]["question"] == "catch":  # the wrong candidate / not the top score
            answers[0] = ({"question": "catch", "choice": next(x["label"] for x in trial["candidates"]
                                                               if x["label"] != answers[0]["choice"])}
                          if trial["task"] == "choose_best" else {"question": "catch", "rating": 0})
        r = _answer(c, token, trial, answers, f"c{i}")
        answered.append((answers[0]["question"], r.status_code, (r.get_json() or {}).get("status")))
    first_catch = next(k for k, (question, _, _) in enumerate(answered) if question == "catch")
    assert answered[first_catch][1:] == (200, "screened_out")
    assert all(code == 200 for _, code, _ in answered[:first_catch])
    assert answered[first_catch + 1:] and all(code == 409 for _, code, _ in answered[first_catch + 1:])
    assert "/screened-out" in c.get("/s/quest/resume").location
    build_maps(dbs, experiment_by_name(dbs, "quest"))  # a questionnaire builds no maps; QC decides and stores
    dbs.commit()
    files = export_csv(dbs, experiment_by_name(dbs, "quest"), tmp_path / "csv")
    with open(files["participants"], encoding="utf-8", newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["recruit_id"] == "careless")
    assert row["status"] == "screened_out" and "catch" in row["qc_reason"]
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

    from datadir import Dataset
    from studyweb.assignment import assign

    ds = Dataset.create(tmp_path / "g", "g", seed=1)
    ds.add_pairs([write_pair(ds.path, f"g{i}", size=(480, 360)) for i in range(4)])  # CodeCharts: legible codes
    folders = {}
    for method in ("increase", "decrease"):
        folder = tmp_path / method
        folder.mkdir()
        for i in range(4):
            cv2.imwrite(str(folder / f"g{i}.png"), np.full((360, 480, 3), 90, np.uint8))
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


EXAMPLES = sorted((Path(__file__).parents[2] / "studyweb" / "examples").glob("*.yaml"))
BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{prev}'] * 9)}]\n" for prev, n in zip("abcdefgh", "bcdefghi"))  # 9^9 values
LOAD_LIMITED = """\
import resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # a regression ends in MemoryError here, not the machine's
from studyweb.designs import DesignError, load_design
start = time.perf_counter()
try:
    load_design(sys.argv[1])
except DesignError as exc:
    print(f"{time.perf_counter() - start:.3f}", exc)
"""


def _yaml_design(tmp_path, text: str) -> Path:
    path = tmp_path / "design.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_an_alias_bomb_fails_fast_with_a_clear_error(tmp_path):
    path = _yaml_design(tmp_path, BOMB)
    result = subprocess.run([sys.executable, "-c", LOAD_LIMITED, str(path)], capture_output=True, text=True,
                            timeout=120, cwd=Path(__file__).parents[2])
    assert result.returncode == 0 and "MemoryError" not in result.stderr, result.stderr[-2000:]
    seconds, message = result.stdout.split(" ", 1)
    assert float(seconds) < 5
    assert re.match(r"\S+design\.yaml line 6: f\[[\d\]\[]+\]: more than 100000 values once YAML aliases are expanded",
                    message), message


@pytest.mark.parametrize("text, message", [
    ("title: x\nblocks: &b [*b]\n", r"line 2: blocks\[0\]: a YAML alias refers to the mapping or list that contains"),
    ("title: x\nstimuli: &s {side: *s}\n", r"line 2: stimuli\.side: a YAML alias refers to the mapping or list"),
])
def test_a_self_referencing_alias_is_a_design_error(tmp_path, text, message):
    with pytest.raises(DesignError, match=message):
        load_design(_yaml_design(tmp_path, text))


@pytest.mark.parametrize("value, tag", [
    ("!!python/object/apply:os.system [touch PWNED]", "python/object/apply:os.system"),
    ("!!python/object/apply:os.system {args: [touch PWNED]}", "python/object/apply:os.system"),
    ("!!python/name:os.system", "python/name:os.system"),
    ("!!binary aGVsbG8=", "binary"),
    ("!!set {a, b}", "set"),
    ("!custom x", "!custom"),
])
def test_yaml_tags_beyond_plain_values_are_refused(tmp_path, monkeypatch, value, tag):
    monkeypatch.chdir(tmp_path)
    message = rf"design\.yaml line 2: title: YAML tag '[^']*{re.escape(tag)}' is not allowed"
    with pytest.raises(DesignError, match=message):
        load_design(_yaml_design(tmp_path, f"observers: 3\ntitle: {value}\nblocks: []\n"))
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("text, message", [
    ("observers: 3\nblocks: [\n", r"line 3: not valid YAML: expected the node content"),
    ("observers: 3\nobservers: 4\n", r"line 2: observers: the key is given twice"),
    ("observers: 3\n? [a, b]\n: 1\n", r"line 2: the design: keys are plain names, got a seq as a key"),
    ("observers: !!int abc\n", r"line 1: observers: 'abc' is not a valid int"),
    ("observers: " + "9" * 5000 + "\n", r"line 1: observers: '9+' is not a valid int"),
    ("title: x\nblocks: " + "[" * 100_000, r"line 2: not valid YAML: nested more than 32 levels deep"),
    ("observers: 3\nblocks: [\x00]\n", r"line 2: not valid YAML: unacceptable character"),
    ("a: 1\n---\nb: 2\n", r"line 2: not valid YAML: but found another document"),
])
def test_broken_yaml_is_one_design_error_with_its_line(tmp_path, text, message):
    with pytest.raises(DesignError, match=r"design\.yaml " + message):
        load_design(_yaml_design(tmp_path, text))


def test_a_design_file_over_1_mib_is_refused_before_it_is_read(tmp_path):
    text = "title: x\nobservers: 3\n" + "#" * (1 << 20) + "\n"
    with pytest.raises(DesignError, match=r"design\.yaml: \d+ bytes; a design has at most 1048576 \(1 MiB\)"):
        load_design(_yaml_design(tmp_path, text))
    with pytest.raises(DesignError, match=r"<design>: \d+ characters; a design has at most"):
        load_design(text)
    (tmp_path / "latin1.yaml").write_bytes("title: caf\xe9\n".encode("latin-1"))
    with pytest.raises(DesignError, match=r"latin1\.yaml: not UTF-8 text \(byte 10"):
        load_design(tmp_path / "latin1.yaml")


def test_non_finite_scores_are_refused_and_the_session_json_stays_strict(app, dataset, dbs, enrol_in):
    from studyweb.db.schema import Experiment

    def rate(scores: str) -> str:
        return ("observers: 3\nper_participant: 2\nblocks:\n  - name: feel\n    task: rate\n    image: original\n"
                f"    scale: {{labels: [low, 1.5, high], scores: {scores}}}\n")

    for scores, k, got in [("[.nan, 0, 1]", 0, "nan"), ("[0, .inf, 1]", 1, "inf"), ("[0, 1, -.inf]", 2, "-inf"),
                           ("[1.0e+400, 0, 1]", 0, "inf")]:
        with pytest.raises(DesignError, match=rf"<design> line 7: blocks\[0\]\.scale\.scores\[{k}\]: expected a"
                                              rf" finite number in \[-1e\+06, 1e\+06\], got {got}$"):
            create_from_design(dbs, rate(scores), dataset.path, "nanq")
        dbs.rollback()
    assert dbs.query(Experiment).filter_by(name="nanq").count() == 0
    create_from_design(dbs, rate("[0, 0.5, 1]"), dataset.path, "strict")
    dbs.commit()
    c, token = enrol_in("strict")

    def refuse(constant):
        raise AssertionError(f"{constant} in the session JSON")

    body = c.get("/api/v1/session", headers={H: token}).data
    scale = json.loads(body, parse_constant=refuse)["trials"][0]["scale"]
    assert scale["labels"] == ["low", "1.5", "high"] and scale["scores"] == [0, 0.5, 1]


@pytest.fixture
def two_methods(tmp_path) -> dict[str, str]:
    """Two empty method folders (a design only checks that they exist)."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    return {name: str(tmp_path / name) for name in ("a", "b")}


def _typed(two_methods, **changes) -> str:
    """YAML of a small valid design with `changes` (top keys, or block keys as block=...)."""
    import yaml

    block = {"name": "best", "task": "choose_best", "question": "Which is best?", "candidates": ["a", "b"],
             **changes.pop("block", {})}
    design = {"title": "Types", "methods": two_methods, "observers": 3, "blocks": [block], **changes}
    return yaml.safe_dump(design, sort_keys=False)


BIG = 10 ** 29
PICK = {"name": "p", "task": "pick_region", "image": "original"}


@pytest.mark.parametrize("changes, message", [
    ({"observers": BIG}, rf"observers: expected an integer in \[1, 10000\], got {BIG}"),
    ({"observers": 0}, r"observers: expected an integer in \[1, 10000\], got 0"),
    ({"per_participant": 10 ** 6}, r"per_participant: expected an integer in \[1, 10000\]"),
    ({"catch": {"every": BIG}}, r"catch\.every: expected an integer in \[2, 10000\]"),
    ({"catch": {"every": 4, "max_failures": BIG}}, r"catch\.max_failures: expected an integer in \[0, 10000\]"),
    ({"stimuli": {"pairs": BIG}}, r"stimuli\.pairs: expected an integer in \[1, 1000000\]"),
    ({"stimuli": {"pairs": [True]}}, r"stimuli\.pairs\[0\]: expected a pair id"),
    ({"title": ["a"]}, r"title: expected a text of at most 200 characters, got \['a'\]"),
    ({"title": "x" * 201}, r"title: expected a text of at most 200 characters, got 201 characters"),
    ({"description": 5}, r"description: expected a text .*got 5 \(quote it in YAML\)"),
    ({"completion_code": 123456}, r"completion_code: expected a text .*\(quote it in YAML\)"),
    ({"completion_url": "ftp://x"}, r"completion_url: expected a link starting with https://"),
    ({"methods": 5}, r"methods: expected a mapping of method name: folder"),
    ({"methods": ["a", "b"]}, r"methods: expected a mapping of method name: folder"),
    ({"methods": {"a": None}}, r"methods\.a: expected a non-empty text"),
    ({"block": {"task": ["rate"]}}, r"blocks\[0\]\.task: expected one of \[.*\], got \['rate'\]"),
    ({"block": {"name": "n" * 65}}, r"blocks\[0\]\.name: expected a non-empty text of at most 64 characters"),
    ({"block": {"question": ["a"]}}, r"blocks\[0\]\.question: expected a non-empty text"),
    ({"block": {"question": None, "questions": [{"id": {"a": 1}, "text": "T"}]}},
     r"blocks\[0\]\.questions\[0\]\.id: expected a non-empty text"),
    ({"block": {"question": None, "questions": [{"id": "q", "text": ""}]}},
     r"blocks\[0\]\.questions\[0\]\.text: expected a non-empty text"),
    ({"block": {"candidates": ["a", "a"]}}, r"blocks\[0\]\.candidates: candidates must be distinct"),
    ({"block": {"name": "r", "task": "rate", "image": "original", "candidates": None,
                "scale": {"labels": [True, False], "scores": [1, 0]}}},
     r"blocks\[0\]\.scale\.labels\[0\]: expected a non-empty text .*got True \(quote it in YAML\)"),
    ({"block": {**PICK, "question": None, "candidates": None,
                "follow_up": {"text": "Same?", "choices": [True, False]}}},
     r"blocks\[0\]\.follow_up\.choices\[0\]: .*got True \(quote it in YAML\)"),
    ({"block": {"name": "b", "task": "bubbleview", "question": None, "candidates": None, "time_limit_s": math.inf}},
     r"blocks\[0\]\.time_limit_s: expected a finite number in \(0, 3600\], got inf"),
    ({"block": {"name": "b", "task": "bubbleview", "question": None, "candidates": None, "mode": ["free"]}},
     r"blocks\[0\]\.mode: expected one of \['free', 'describe'\]"),
    ({"block": {"name": "b", "task": "bubbleview", "question": None, "candidates": None, "max_clicks": BIG}},
     r"blocks\[0\]\.max_clicks: expected an integer in \[1, 10000\]"),
    ({"block": {"name": "b", "task": "bubbleview", "question": None, "candidates": None, "blur_sigma_frac": math.nan}},
     r"blocks\[0\]\.blur_sigma_frac: expected a finite number in \(0, 1\], got nan"),
    ({"block": {"name": "c", "task": "codecharts", "question": None, "candidates": None,
                "codecharts": {"sentinel_radius_px": math.inf}}},
     r"blocks\[0\]\.codecharts\.sentinel_radius_px: expected a finite number in \(0, 1000\], got inf"),
    ({"block": {"name": "c", "task": "codecharts", "question": None, "candidates": None,
                "codecharts": {"image_ms": [2000, math.nan]}}},
     r"blocks\[0\]\.codecharts\.image_ms\[1\]: expected an integer in \[1, 60000\], got nan"),
    ({"block": {"name": "c", "task": "codecharts", "question": None, "candidates": None, "codecharts": 5}},
     r"blocks\[0\]\.codecharts: expected a mapping of"),
])
def test_every_kind_of_key_is_checked_by_type_and_range(two_methods, changes, message):
    block = changes.get("block", {})
    text = _typed(two_methods, **changes)
    for key in [k for k, v in block.items() if v is None]:  # None: leave the base block's key out
        text = "\n".join(line for line in text.splitlines() if not line.lstrip(" -").startswith(f"{key}: null"))
    with pytest.raises(DesignError, match=r"<design> line \d+: " + message):
        load_design(text)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.stem)
def test_every_example_design_still_loads(example, tmp_path):
    import yaml

    names = list(yaml.safe_load(example.read_text(encoding="utf-8")).get("methods") or {})
    for name in names:
        (tmp_path / name).mkdir()
    design = load_design(example, methods={name: str(tmp_path / name) for name in names})
    assert design.values["blocks"] and 1 <= design.values["observers"] <= 10_000
    json.dumps(design.values, allow_nan=False)


@pytest.mark.parametrize("text, message", [
    ("title: !!python/name:os.system\nblocks: [{name: b, task: bubbleview}]\n", "YAML tag"),
    ("title: x\nblocks: &b [*b]\n", "a YAML alias refers to"),
    ("blocks:\n  - {name: r, task: rate, image: original, scale: {labels: [a, b], scores: [.nan, 0]}}\n",
     r"scores\[0\]: expected a finite number"),
    ("observers: 100000000000000000000000000000\nblocks: [{name: b, task: bubbleview}]\n",
     r"observers: expected an integer in \[1, 10000\]"),
])
def test_study_commands_print_one_line_for_a_hostile_design(run_cli, tmp_path, dataset, text, message):
    path = _yaml_design(tmp_path, text)
    for args in (["create-experiment", "--dataset", dataset.path, "--name", "hostile", "--from", path,
                  "--db", f"sqlite:///{tmp_path / 'study.db'}"],
                 ["pilot", path, "--dataset", dataset.path, "--out", tmp_path / "pilot"]):
        code, out, err = run_cli("study", *args)
        assert code == 2 and out == "" and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1 and re.search(rf"design\.yaml line \d+: .*{message}", err), err


def test_attention_blocks_set_their_display_size_and_320x240_codecharts_can_run(tmp_path):
    """CodeCharts on the datasets gazelab renders (320x240): refused at the default max_upscale
    (codes under codecharts.MIN_CODE_PX), accepted once the design lets images grow."""
    import yaml

    from studyweb.db.revisions import open_session
    from support.study_data import example_dataset

    dataset = example_dataset(tmp_path, 4, size=(320, 240))
    design = yaml.safe_load((Path(__file__).parents[2] / "studyweb/examples/codecharts_attention.yaml").read_text())
    design["per_participant"] = 4
    with open_session(f"sqlite:///{tmp_path / 'study.db'}") as session:
        with pytest.raises(ValueError, match="max_upscale"):
            create_from_design(session, design, dataset.path, "small")
        session.rollback()
        design["blocks"][0]["max_upscale"] = 3
        experiment = create_from_design(session, design, dataset.path, "grown")
        assert experiment.settings["max_upscale"] == 3
    for key, value in (("max_upscale", 0.5), ("max_upscale", float("nan")), ("display_width_px", 1e9)):
        bad = {**design, "blocks": [{**design["blocks"][0], key: value}]}
        with pytest.raises(DesignError, match=key):
            load_design(bad)
