"""The words participants read (`studyweb.texts`): a design's consent, instructions (pages),
debrief and screened-out message, sanitised; the task's defaults, which describe the task and
count its screens and answers."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from studyweb.designs import DesignError, create_from_design, load_design
from studyweb.texts import render

H = "X-Participant-Token"


@pytest.fixture
def edits(tmp_path, dataset):
    """A method's folder of <pair_id>.png for the 3-pair dataset (16x12, as the inputs)."""
    folder = tmp_path / "edits" / "grey"
    folder.mkdir(parents=True)
    for pair_id in dataset.pairs["pair_id"]:
        cv2.imwrite(str(folder / f"{pair_id}.png"), np.full((12, 16, 3), 90, np.uint8))
    return str(folder)


@pytest.fixture
def make(app, dataset, edits):
    """make(name, **design keys) -> `name`, an experiment of a one-block choose_best design with
    three questions (2 pairs per participant), in the app's database."""

    def create(name: str, **keys) -> str:
        design = {"title": "Texts", "per_participant": 2, "observers": 4, "methods": {"grey": edits},
                  "blocks": [{"name": "best", "task": "choose_best", "candidates": ["grey", "original"],
                              "reference": {"input": True, "target_map": False},
                              "questions": [{"id": f"q{k}", "text": f"Question {k}?"} for k in range(3)]}],
                  **keys}
        db = app.extensions["studyweb.sessions"]()
        create_from_design(db, design, dataset.path, name)
        db.commit()
        db.close()
        return name

    return create


def _enter(app, name: str, pid: str):
    client = app.test_client()
    assert client.get(f"/s/{name}", query_string={"PROLIFIC_PID": pid}).status_code == 302
    return client


def test_render_keeps_the_allowed_markup_and_removes_the_rest():
    html = str(render("Hello *there* and **you**\n\n- one\n- two\n\n"
                      '<p onclick="steal()">raw <strong>HTML</strong></p><script>alert(1)</script>'
                      '<img src=x onerror=alert(2)>\n\n'
                      "[irb](https://irb.example.org/form) [mail](mailto:irb@example.org) [js](javascript:alert(3))"
                      " [plain](http://example.org) [here](/admin/)"))
    assert "<em>there</em>" in html and "<strong>you</strong>" in html and "<li>one</li>" in html
    assert "<strong>HTML</strong>" in html and "onclick" not in html
    assert "<script" not in html and "alert(1)" not in html and "<img" not in html and "onerror" not in html
    assert 'href="https://irb.example.org/form"' in html and 'href="mailto:irb@example.org"' in html
    assert 'target="_blank"' in html and 'rel="noopener noreferrer"' in html
    assert "javascript:" not in html and "http://example.org" not in html and 'href="/admin/"' not in html


def test_a_questionnaire_says_what_it_asks_and_how_many_answers_and_never_talks_of_clicks(app, make):
    name = make("quest")
    client = _enter(app, name, "p1")
    consent = client.get(f"/s/{name}/consent").get_data(as_text=True)
    assert "pick the image that fits the question best" in consent and "your answers" in consent
    assert "blurred" not in consent and "click on an image" not in consent.lower()
    client.post(f"/s/{name}/consent", data={"consent": "yes"})
    page = client.get(f"/s/{name}/instructions").get_data(as_text=True)
    assert "You will see 2 screens of images; on each, answer 3 questions (6 answers in all)." in page
    assert "instructions-ok" in page and "Page 1 of" not in page  # one page: Start on it
    client.post(f"/s/{name}/instructions", data={"window_w": "1200", "window_h": "800"})
    token = client.get_cookie(app.config["PARTICIPANT_COOKIE"]).value
    for k, trial in enumerate(client.get("/api/v1/session", headers={H: token}).get_json()["trials"]):
        answers = [{"question": q["id"], "choice": "A"} for q in trial["questions"]]
        assert client.post(trial["answer_url"], headers={H: token},
                           json={"idempotency_key": f"a{k}", "answers": answers}).status_code == 200
    debrief = client.get(f"/s/{name}/debrief").get_data(as_text=True)
    assert "Your answers will be combined" in debrief and "click" not in debrief.lower()


def test_catch_trials_are_announced_with_what_failing_them_does(app, make):
    name = make("caught", per_participant=3, catch={"every": 2, "max_failures": 0})
    client = _enter(app, name, "p1")
    client.post(f"/s/{name}/consent", data={"consent": "yes"})
    page = client.get(f"/s/{name}/instructions").get_data(as_text=True)
    assert "check screen" in page and "wrongly ends the study early" in page
    lenient = make("lenient", per_participant=3, catch={"every": 2, "max_failures": 100})
    client = _enter(app, lenient, "p1")
    client.post(f"/s/{lenient}/consent", data={"consent": "yes"})
    page = client.get(f"/s/{lenient}/instructions").get_data(as_text=True)
    assert "check screen" in page and "ends the study early" not in page  # it never can


def test_attention_tasks_describe_themselves(app, dataset):
    from studyweb.experiments import create_experiment

    db = app.extensions["studyweb.sessions"]()
    create_experiment(db, dataset.path, "desc", per_participant=2, observers=3, mode="describe", time_limit_s=8)
    db.commit()
    db.close()
    client = _enter(app, "desc", "p1")
    consent = client.get("/s/desc/consent").get_data(as_text=True)
    assert "about 2 images, each blurred for 8 seconds" in consent and "describe it in a few words" in consent
    client.post("/s/desc/consent", data={"consent": "yes"})
    page = client.get("/s/desc/instructions").get_data(as_text=True)
    assert "describe the image" in page and "You will see 2 images, after one practice image." in page
    pilot = _enter(app, "pilot", "p2")
    assert "Your clicks will be combined" in _debrief_text(app, "pilot")
    assert "blurred" in pilot.get("/s/pilot/consent").get_data(as_text=True)


def _debrief_text(app, name: str) -> str:
    from studyweb.db.schema import Experiment
    from studyweb.texts import debrief_html

    db = app.extensions["studyweb.sessions"]()
    try:
        return str(debrief_html(db.query(Experiment).filter_by(name=name).one()))
    finally:
        db.close()


def test_a_designs_own_texts_are_shown_sanitised_and_instructions_paged(app, make):
    name = make("own", consent="Our IRB says **this**.<script>alert(1)</script>",
                instructions=["First *page*.", "Second page.", "Third page."],
                debrief="Thanks, [read more](https://example.org/paper).", screened_out="Sorry: not this time.")
    client = _enter(app, name, "p1")
    consent = client.get(f"/s/{name}/consent").get_data(as_text=True)
    assert "Our IRB says <strong>this</strong>." in consent and "alert(1)" not in consent
    assert "pick the image" not in consent  # the design's words replace the default's
    client.post(f"/s/{name}/consent", data={"consent": "yes"})
    first = client.get(f"/s/{name}/instructions").get_data(as_text=True)
    assert "First <em>page</em>." in first and "Page 1 of 3" in first
    assert "instructions-next" in first and "instructions-ok" not in first and "instructions-back" not in first
    second = client.get(f"/s/{name}/instructions?page=2").get_data(as_text=True)
    assert "Second page." in second and "instructions-back" in second and "instructions-next" in second
    last = client.get(f"/s/{name}/instructions?page=99").get_data(as_text=True)  # clamped to the last
    assert "Third page." in last and "instructions-ok" in last and "instructions-next" not in last
    assert "First" in client.get(f"/s/{name}/instructions?page=x").get_data(as_text=True)


@pytest.mark.parametrize("keys, message", [
    ({"instructions": ["page"] * 21}, "instructions: expected a list of 1 to 20 pages"),
    ({"instructions": []}, "instructions: expected a list of 1 to 20 pages"),
    ({"consent": 42}, "consent: expected a non-empty text"),
    ({"debrief": "x" * 50_001}, "debrief: expected a non-empty text of at most 50000 characters"),
    ({"comprehension": {"questions": [{"text": "Q?", "choices": ["a", "b"], "answer": "c"}]}},
     "comprehension.questions[0].answer: expected one of the choices ['a', 'b'], got 'c'"),
    ({"comprehension": {"questions": [{"text": "Q?", "choices": ["a", "a"], "answer": "a"}]}},
     "choices must be distinct"),
    ({"comprehension": {"questions": []}}, "comprehension.questions: expected a list of 1 to 20"),
    ({"comprehension": {"max_attempts": 0, "questions": [{"text": "Q?", "choices": ["a", "b"], "answer": "a"}]}},
     "comprehension.max_attempts: expected an integer in [1, 100]"),
    ({"screenout_url": "ftp://x"}, "screenout_url: expected a link starting with https://"),
    ({"device": {"phones": "maybe"}}, "device.phones: expected one of ['exclude', 'allow']"),
    ({"device": {"min_window": [800]}}, "device.min_window: expected a list of 2 to 2 sizes"),
    ({"device": {"fullscreen": "yes"}}, "device.fullscreen: expected true or false"),
    ({"device": {"chinrest": True}}, "device.chinrest: unknown key 'chinrest'"),
])
def test_bad_text_comprehension_device_and_screenout_keys_name_the_key(keys, message):
    design = {"blocks": [{"name": "a", "task": "codecharts"}], **keys}
    with pytest.raises(DesignError) as error:
        load_design(design)
    assert message in str(error.value)


def test_design_keys_reach_the_settings_with_the_tasks_device_defaults(app, dataset, make, tmp_path, write_pair):
    from datadir import Dataset
    from studyweb.db.schema import Experiment

    make("quiet", device=False, screenout_code="SCR1")
    make("phones", comprehension={"questions": [{"text": "Q?", "choices": [1, 2], "answer": 2}]})
    cc = Dataset.create(tmp_path / "ccds", "cc", seed=1)
    cc.add_pairs([write_pair(cc.path, f"c{i}", size=(480, 360)) for i in range(2)])
    db = app.extensions["studyweb.sessions"]()
    create_from_design(db, {"blocks": [{"name": "a", "task": "codecharts"}], "device": {"fullscreen": True},
                            "screenout_url": "https://app.prolific.com/submissions/complete?cc=S1"}, cc.path, "ccd")
    db.commit()
    settings = {e.name: e.settings for e in db.query(Experiment)}
    db.close()
    assert settings["quiet"]["device"] is None and settings["quiet"]["screenout_code"] == "SCR1"
    assert settings["phones"]["device"] == {"min_window": [800, 600], "phones": "allow", "fullscreen": False}
    assert settings["phones"]["comprehension"] == {"questions": [{"text": "Q?", "choices": ["1", "2"], "answer": "2"}],
                                                   "max_attempts": 3}
    code = settings["phones"]["screenout_code"]  # drawn, as the completion code is
    assert len(code) == 8 and code != settings["phones"]["completion_code"]
    assert settings["ccd"]["device"] == {"min_window": [1024, 640], "phones": "exclude", "fullscreen": True}
    assert settings["ccd"]["screenout_url"].endswith("cc=S1") and settings["ccd"]["screenout_code"] is None
    assert settings["pilot"]["device"] is None  # made without a design: no device check
