"""The questionnaire study (Experiment.task "questionnaire"): blocks of question tasks
(choose_best, rate, pick_region, describe: `studyweb.tasks.questions`), made from a design
(`studyweb.designs`). Each block counts its own observers, on its task's units
(`QuestionTask.block_units`); QC judges participants by their catch trials and focus, and no
maps are made. The page: templates/tasks/questionnaire.html, static/questionnaire_flow.js, which
runs each trial with its task's builder in static/questionnaire.js.
"""
from __future__ import annotations

from studyweb.tasks.registry import Task, register, task_named
from studyweb.tasks.wording import count, joined


@register
class Questionnaire(Task):
    name = study = "questionnaire"
    by_block = True
    qc_by_answers = True
    device_defaults = {"min_window": [800, 600], "phones": "allow", "fullscreen": False}
    template = "tasks/questionnaire.html"
    scripts = ("questionnaire_flow.js", "questionnaire.js", "label_mask.js")
    answer_s = 5.0  # per trial
    question_s = 4.0  # per question on it

    def consent_text(self, settings: dict) -> tuple[str, str]:
        tasks = [task_named(t).words for t in dict.fromkeys(b["task"] for b in settings["design"]["blocks"])]
        return (f"In this study you will answer questions about images: {joined(tasks)}.",
                "your answers and how long each took")

    def instructions_text(self, settings: dict, counts: dict) -> str:
        """How many screens and answers, what each block's task asks (`Task.words`), and the
        catch trials' consequence."""
        design = settings["design"]
        n, per_screen = counts["screens"], counts["per_screen"]
        if per_screen:
            text = (f"You will see {count(n, 'screen')} of images; on each, answer {count(per_screen, 'question')}"
                    + (f" ({counts['answers']} answers in all)." if n > 1 and per_screen > 1 else "."))
        else:
            text = f"You will see {count(n, 'screen')} of images and answer {counts['answers']} questions in all."
        tasks = list(dict.fromkeys(b["task"] for b in design["blocks"]))
        if len(tasks) == 1:
            text += f" Each screen asks you to {task_named(tasks[0]).words}."
        else:
            text += " The screens ask you to:\n\n" + "\n".join(f"- {task_named(t).words};" for t in tasks)[:-1] + "."
        if any(b.get("follow_up") for b in design["blocks"]):
            text += " Some ask a short question about your answer afterwards."
        text += "\n\nThere are no right or wrong answers"
        n_catch = counts["catch"]
        if n_catch:
            text += (f", except on {count(n_catch, 'check screen')} that {'shows' if n_catch == 1 else 'show'}"
                     " whether the task is being read carefully")
            allowed = int((design.get("catch") or {}).get("max_failures", 0))
            if allowed < n_catch:  # the answer past the limit screens out (`tasks.questions.record_answers`)
                wrongly = "it" if n_catch == 1 else "one of them" if allowed == 0 else f"more than {allowed} of them"
                text += f": answering {wrongly} wrongly ends the study early"
        return text + "."

    def debrief_text(self, settings: dict) -> str:
        return ("This study compares images made by different computer methods for editing images. You were not"
                " told which method made which image, so that your answers would not depend on it. Your answers"
                " will be combined with other people's to find which methods work best.")

    def observer_key(self, stimulus_id: int, spec: dict):
        return spec["block_index"], stimulus_id

    def units(self, experiment) -> list[tuple[int, int]]:
        """(block index, stimulus id) of each block's units (each block has its own observers)."""
        by_version: dict[str, list] = {}
        for stimulus in experiment.stimuli:
            by_version.setdefault(stimulus.method or "original", []).append(stimulus)
        return [(b, stimulus.id) for b, block in enumerate(experiment.settings["design"]["blocks"])
                for stimulus in task_named(block["task"]).block_units(block, by_version)]

    def seconds_per_trial(self, settings: dict) -> float:
        """A trial's assumed answering time, per trial and per question (follow-ups too), over the
        blocks."""
        blocks = settings["design"]["blocks"]
        questions = sum(len(b["questions"]) + bool(b.get("follow_up")) for b in blocks) / len(blocks)
        return self.answer_s + self.question_s * questions
