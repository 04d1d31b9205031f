"""Study tasks as plug-ins (`studyweb.tasks`): the registry holds each task once by its name,
every task implements the hooks its kind needs and names page assets that exist, and a new task
is one module: a question task defined here runs through design, assignment, page JSON, answer
checks, the simulated participant and the export without a line of the server changed."""
from __future__ import annotations

import csv
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from flask import render_template

import studyweb
from studyweb.designs import DesignError, create_from_design, load_design
from studyweb.experiments import experiment_by_name
from studyweb.export import export_csv
from studyweb.simulate import SimulatedParticipant
from studyweb.tasks import (AnswerError, Task, attention_tasks, block_tasks, question_tasks, register, registry,
                            task_named, trial_task)
from studyweb.tasks.questions import QuestionTask

H = "X-Participant-Token"
PACKAGE = Path(studyweb.__file__).parent


def test_the_registry_holds_each_task_once_by_its_name():
    assert set(block_tasks()) == {"bubbleview", "codecharts", "choose_best", "rate", "pick_region", "describe"}
    assert attention_tasks() == ("bubbleview", "codecharts")
    assert set(question_tasks()) == {"choose_best", "rate", "pick_region", "describe"}
    assert {task_named(name).study for name in question_tasks()} == {"questionnaire"}
    assert [task_named(name).study for name in attention_tasks()] == ["bubbleview", "codecharts"]
    assert task_named("questionnaire").by_block and not task_named("questionnaire").block_keys
    assert all(task_named(name).name == name for name in [*block_tasks(), "questionnaire"])


def test_an_unknown_task_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown task 'nope'; expected one of \['bubbleview', 'choose_best'"):
        task_named("nope")


def test_a_name_is_registered_once(monkeypatch):
    monkeypatch.setattr(registry, "_TASKS", dict(registry._TASKS))  # this test's registrations go away after it

    class Rate(Task):
        name = "rate"

    class Nameless(Task):
        pass

    with pytest.raises(ValueError, match="'rate' is empty or registered twice"):
        register(Rate)
    with pytest.raises(ValueError, match="'' is empty or registered twice"):
        register(Nameless)

    class Fresh(Task):
        name = "fresh"

    assert register(Fresh) is Fresh and isinstance(task_named("fresh"), Fresh)


@pytest.mark.parametrize("name", sorted({*block_tasks(), "questionnaire"}))
def test_every_task_implements_the_hooks_of_its_kind_and_names_pages_that_exist(name):
    task = task_named(name)
    own = {key for cls in type(task).__mro__ if cls not in (Task, object) for key in vars(cls)}  # not defaults
    if task.block_keys:
        assert {"name", "task"} <= task.block_keys and "check_block" in own
    if task.study == name:  # a study of its own: a page, and the pilot's timing
        assert task.template and (PACKAGE / "templates" / task.template).is_file()
        assert "task.scripts[0]" in (PACKAGE / "templates" / task.template).read_text()
        assert "seconds_per_trial" in own
    if name in attention_tasks():
        assert {"shown_trials", "trial_json", "simulate_trial"} <= own and task.makes_maps
    if name in question_tasks():
        assert {"answer_values", "simulated_answer"} <= own and task.answer_shape == "answers"
        assert task.template is None and task.words
    for script in task.scripts:
        assert (PACKAGE / "static" / script).is_file(), script


@pytest.mark.parametrize("name", ["bubbleview", "codecharts", "questionnaire"])
def test_each_studys_page_runs_the_entry_script_its_task_names(app, name):
    task = task_named(name)
    experiment = SimpleNamespace(name="study", title="Study", settings={})
    participant = SimpleNamespace(token="secret", status="trials")
    with app.test_request_context("/s/study/task"):
        page = render_template(task.template, experiment=experiment, participant=participant, task=task)
    scripts = re.findall(r'<script type="module" src="/static/([\w.]+)"', page)
    assert scripts[-1] == task.scripts[0] and set(scripts) - {"fullscreen.js"} == {task.scripts[0]}


def test_every_question_task_has_its_builder_in_the_questionnaire_page_and_no_builder_lacks_one():
    source = (PACKAGE / "static" / "questionnaire.js").read_text()
    builders = set(re.findall(r"^  async (\w+)\(trial, onRetry\)", source, re.M))
    assert builders == set(question_tasks())


# --- a new task is one module ------------------------------------------------------------------


class YesNo(QuestionTask):
    """A question task the server has never heard of: answer yes or no about an image."""

    name = "yes_no"
    block_keys = frozenset({"name", "task", "questions", "question", "image"})
    words = "say whether the image was edited"

    def check_block(self, checker, block, out, path, methods):
        out["questions"] = self.check_questions(checker, block, path)
        out["image"] = self.check_image(checker, block, path, methods)
        return out

    def own_json(self, out, trial, participant, url_for, stimulus_of):
        return {**super().own_json(out, trial, participant, url_for, stimulus_of), "choices": ["yes", "no"]}

    def answer_values(self, spec, question, answer):
        if answer.get("choice") not in ("yes", "no"):
            raise AnswerError(f"{question}: expected yes or no, got {answer.get('choice')!r}")
        return {"choice": answer["choice"]}

    def simulated_answer(self, trial, participant, catch):
        return {"choice": ("yes", "no")[int(participant.rng.integers(2))]}


@pytest.fixture
def yes_no(monkeypatch):
    """The YesNo task registered for one test."""
    monkeypatch.setitem(registry._TASKS, "yes_no", YesNo())


DESIGN = {"per_participant": 2, "observers": 2, "completion_code": "YN",
          "blocks": [{"name": "edited", "task": "yes_no", "question": "Was this image edited?"}]}


def test_a_design_block_of_an_unregistered_task_is_refused():
    with pytest.raises(DesignError, match=r"blocks\[0\]\.task: expected one of \['bubbleview', 'choose_best', 'codecharts',"
                                          r" 'describe', 'pick_region', 'rate'\], got 'yes_no'"):
        load_design(DESIGN)


def test_a_new_question_task_runs_through_the_whole_study_without_touching_the_server(app, dataset, yes_no,
                                                                                        enrol_in, tmp_path):
    db = app.extensions["studyweb.sessions"]()
    create_from_design(db, DESIGN, dataset.path, "yn")
    db.commit()
    c, token = enrol_in("yn")
    page = c.get("/s/yn/task")  # the questionnaire's page, which runs the task's builder
    assert page.status_code == 200 and b'/static/questionnaire_flow.js"' in page.data
    trials = c.get("/api/v1/session", headers={H: token}).get_json()["trials"]
    assert [(t["task"], t["block"], t["choices"]) for t in trials] == [("yes_no", "edited", ["yes", "no"])] * 2
    with c.get(trials[0]["image_url"]) as image:  # closed: it streams the file
        assert image.status_code == 200 and image.mimetype == "image/png"

    refused = c.post(trials[0]["answer_url"], headers={H: token},
                     json={"idempotency_key": "k0", "answers": [{"question": "yes_no", "choice": "maybe"}]})
    assert refused.status_code == 422 and "expected yes or no, got 'maybe'" in refused.get_json()["message"]
    me = SimulatedParticipant(None, "", np.random.default_rng(1), set(), None, (1, 1))
    statuses = []
    for trial in trials:
        url, body, points = task_named("yes_no").simulate_trial(trial, me)
        answer = c.post(url, headers={H: token}, json=body)
        assert answer.status_code == 200 and points == 0
        statuses.append(answer.get_json()["status"])
    assert statuses == ["trials", "debrief"]

    experiment = experiment_by_name(db, "yn")
    assert [trial_task(t).name for p in experiment.participants for t in p.trials] == ["yes_no", "yes_no"]
    files = export_csv(db, experiment, tmp_path / "csv")
    with open(files["responses"], encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["task"], r["block"], r["question"], r["method"]) for r in rows] == \
        [("yes_no", "edited", "yes_no", "original")] * 2
    assert {r["choice"] for r in rows} <= {"yes", "no"}
    db.close()
