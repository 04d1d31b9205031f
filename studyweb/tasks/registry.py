"""The task protocol and the registry of tasks (detectron2's shape: `@register` on a class, a
lookup by name).

A task is what a participant does in a trial and everything the study server needs to run it:
a design block's keys and their checks, the trials, what the page is sent, the answers and their
checks, the export's columns, the simulated participant's answer, and the page that runs it.
`Task` is that protocol, written as a base class whose defaults fit a task that does not use a
hook (no answer route, no tutorial, no catch trials ...). Names:

- a *block task* may be a design block's task (`block_keys` not empty): bubbleview, codecharts,
  choose_best, rate, pick_region, describe;
- a *study* is what an experiment's task can be (`Experiment.task`): an attention task, which is
  its own study (bubbleview, codecharts), or "questionnaire", made of question blocks
  (choose_best, rate, pick_region, describe: their `study` is "questionnaire");
- a trial's task is `Trial.task`, or the experiment's where that is None (BubbleView's trials).

Adding a task: one module in `studyweb/tasks/` with a `Task` subclass under `@register`, and its
name in the imports of `studyweb/tasks/__init__.py` (plus the page code it needs: a builder in
static/questionnaire.js for a question task, a template and its scripts for a new study).
"""
from __future__ import annotations

from typing import Any, Callable

UrlFor = Callable[..., str]  # flask.url_for, passed in: tasks never import Flask


class AnswerError(ValueError):
    """An answer that does not fit its trial (the API answers 422 with the message)."""


class Task:
    """The protocol every task implements (see the module doc); class attributes describe the
    task, methods are the hooks the server calls. Sizes are image px of the natural size unless
    said otherwise, times ms."""

    name: str = ""
    study: str = ""  # the Experiment.task a design of this task's blocks makes
    block_keys: frozenset[str] = frozenset()  # a design block's keys; empty: not a block task
    words: str = ""  # what a participant does, in the default texts ("pick the image that ...")
    makes_maps: bool = False  # its trials give gaze points that make fixation maps
    has_tutorial: bool = False  # its practice trials are a tutorial whose answers get feedback
    by_block: bool = False  # observers are counted per design block (questionnaires)
    qc_by_answers: bool = False  # QC judges its participants by their answers, not by clicks
    answer_shape: str | None = None  # the body of POST /answer (`api.validate.ANSWER_CHECKS`); None: no answers
    settings_key: str | None = None  # the experiment setting that holds this task's own settings
    device_defaults: dict[str, Any] = {"min_window": [1024, 640], "phones": "exclude", "fullscreen": False}
    template: str | None = None  # the task page of a study of this task (templates/)
    scripts: tuple[str, ...] = ()  # the ES modules (static/) that page runs

    # --- designs (`studyweb.designs`) ---

    def check_block(self, checker, block: dict, out: dict, path: tuple, methods: dict) -> dict:
        """The design block as the design stores it: `out` (the block without its questions, its
        name checked) with this task's keys checked and filled in. Its keys are known to be
        `block_keys`; `checker` (`studyweb.design_checks.Checker`) fails with the file's line."""
        raise NotImplementedError(f"task {self.name!r} is not a design block's task")

    def check_dataset(self, blocks: list[dict], dataset, pair_ids: list[str], side: str, source: str) -> None:
        """DesignError when the dataset lacks what this task's `blocks` need (masks, maps) for the
        selected pairs' `side`."""

    def has_catch(self, block: dict) -> bool:
        """Whether a block of this task gets catch trials (a known answer: `studyweb.workload`)."""
        return False

    def block_label(self, block: dict) -> str:
        """The block's task as the design's warnings name it."""
        return self.name

    # --- experiments (`studyweb.experiments`, `studyweb.screening`) ---

    def default_device(self) -> dict[str, Any]:
        """The device check of a study of this task that gives no `device` key (a copy)."""
        return {**self.device_defaults, "min_window": list(self.device_defaults["min_window"])}

    def prepare_settings(self, settings: dict) -> dict:
        """A new experiment's settings with this task's own filled in and checked (ValueError)."""
        return settings

    def check_stimuli(self, stimuli: list, settings: dict) -> None:
        """ValueError when the experiment's images cannot be shown by this task."""

    def needed_window(self, session, experiment) -> tuple[int, int] | None:
        """The least browser window (CSS px) the task page needs for this experiment, or None."""
        return None

    # --- texts a study of this task shows by default (`studyweb.texts`: Markdown) ---

    def consent_text(self, settings: dict) -> tuple[str, str]:
        """(what participants do, what is recorded of it) for the consent form."""
        raise NotImplementedError(f"task {self.name!r} is not a study of its own")

    def instructions_text(self, settings: dict, counts: dict) -> str:
        """The instructions for a participant's assigned trials (`texts.assigned_counts`)."""
        raise NotImplementedError(f"task {self.name!r} is not a study of its own")

    def debrief_text(self, settings: dict) -> str:
        """What the study was about."""
        raise NotImplementedError(f"task {self.name!r} is not a study of its own")

    # --- trials (`studyweb.assignment`, `studyweb.api`) ---

    def shown_trials(self, participant, shown: list[tuple[Any, dict]], stimuli: list, settings: dict,
                     rng) -> list:
        """An attention task's trials (not added to a session) for `shown`, (stimulus, spec
        labels) in order, with the practice or tutorial it puts first."""
        raise NotImplementedError(f"task {self.name!r} builds no attention trials")

    def trial_summary(self, trial) -> dict:
        """What the session JSON says of each of its trials, finished ones too."""
        return {}

    def trial_json(self, trial, participant, settings: dict, url_for: UrlFor, stimulus_of) -> dict:
        """What the task page needs for an unfinished trial; stimulus_of(id) -> Stimulus."""
        raise NotImplementedError(f"task {self.name!r} has no trial page")

    def late_limit_ms(self, time_limit_s: float | None) -> float | None:
        """The time limit a trial save's clicks are late after (ms), or None (`api._late_rule`)."""
        return None

    def chart_json(self, trial, settings: dict) -> dict | None:
        """The chart a trial shows (CodeCharts), as the page draws it; None: no chart."""
        return None

    def shown_stimuli(self, spec: dict) -> set[int]:
        """The stimulus ids a trial of this task shows besides its own stimulus (their images are
        served to its participant: `tasks.stimulus_image`)."""
        return set()

    def mask_png(self, spec: dict) -> bytes | None:
        """The label mask a trial's page highlights objects from (PNG), or None."""
        return None

    def block_name(self, spec: dict) -> str | None:
        """The design block's name of a trial with this spec (exports)."""
        return None

    def block_index(self, spec: dict) -> int | None:
        """The block's place among the participant's (a questionnaire's design order, an
        attention design's Latin-square block)."""
        return spec.get("block_index", spec.get("block"))

    def observer_key(self, stimulus_id: int, spec: dict):
        """The key a trial counts an observer under (`assignment.observer_counts`)."""
        return stimulus_id

    def units(self, experiment) -> list:
        """Every key that wants observers in `experiment` (`observer_key`'s)."""
        return [s.id for s in experiment.stimuli]

    # --- answers (`studyweb.api`, `studyweb.participant`) ---

    def record_answer(self, session, participant, trial, body: dict, key: str) -> dict:
        """Check and store the answer `body` (checked by `api.validate` for `answer_shape`) to
        `trial`, which ends; the caller has claimed `key` and commits. Returns the task's fields
        of the API's answer. AnswerError (nothing stored) when it does not fit the trial."""
        raise NotImplementedError(f"task {self.name!r} takes no answers")

    def tutorial_feedback(self, session, trial) -> dict | None:
        """How the answer to a tutorial trial went, for the page to say; None: none to give."""
        return None

    # --- exports (`studyweb.export`) ---

    def response_method(self, response, shown_version: str | None) -> str | None:
        """responses.csv's method of an answer: the version shown, or the one the answer chose."""
        return shown_version

    # --- simulated participants (`studyweb.simulate`) ---

    def simulate_trial(self, trial: dict, participant) -> tuple[str, dict, int]:
        """A simulated participant's answer to the trial JSON `trial`: (the path to POST it to,
        the body, the gaze points it stores). `participant` is `simulate.SimulatedParticipant`:
        its rng, the failures it makes on purpose, keys, GETs, and the saliency it clicks from."""
        raise NotImplementedError(f"task {self.name!r} has no simulated participant")

    # --- pilots (`studyweb.pilot`) ---

    answer_s: float = 5.0  # the assumed seconds to answer a trial, besides its screens' own times

    def failure_kinds(self, settings: dict) -> list[str]:
        """What a study of this task gives participants to fail (`simulate.FAILURES`)."""
        return []

    def excluding_failures(self, settings: dict) -> list[str]:
        """The failure kinds of `failure_kinds` that cost a participant who makes them (screened
        out, excluded); catch trials are counted by `studyweb.pilot` for every study."""
        return []

    def seconds_per_trial(self, settings: dict) -> float:
        """The expected seconds of one trial, answering included."""
        return self.answer_s


_TASKS: dict[str, Task] = {}


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: register an instance of the task under its name (one per name)."""
    task = cls()
    if not task.name or task.name in _TASKS:
        raise ValueError(f"task name {task.name!r} is empty or registered twice")
    _TASKS[task.name] = task
    return cls


def task_named(name: str) -> Task:
    """The registered task called `name`; ValueError naming the known ones."""
    task = _TASKS.get(name)
    if task is None:
        raise ValueError(f"unknown task {name!r}; expected one of {sorted(_TASKS)}")
    return task


def trial_task(trial) -> Task:
    """The task of a trial: its own, or its experiment's (BubbleView's trials have none)."""
    return task_named(trial.task or trial.participant.experiment.task)


def block_tasks() -> dict[str, Task]:
    """{name: task} of the tasks a design block may have."""
    return {name: task for name, task in _TASKS.items() if task.block_keys}


def attention_tasks() -> tuple[str, ...]:
    """The names of the attention tasks (their own study, making maps), in registration order."""
    return tuple(name for name, task in _TASKS.items() if task.study == name and task.block_keys)


def question_tasks() -> tuple[str, ...]:
    """The names of the tasks of a questionnaire's blocks, in registration order."""
    return tuple(name for name, task in _TASKS.items() if task.study == "questionnaire" and task.block_keys)
