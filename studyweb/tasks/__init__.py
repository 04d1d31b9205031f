"""Study tasks as plug-ins: one module per task, each a `Task` (the protocol in
`studyweb.tasks.registry`) registered under its name by `@register`; the server asks the
registry (`task_named`) instead of testing task names.

    bubbleview, codecharts       attention tasks: a study of their own, making fixation maps
    choose_best, rate,           question tasks: the blocks of a questionnaire study
    pick_region, describe          (`studyweb.tasks.questions`, `studyweb.tasks.questionnaire`)

`studyweb.tasks.pages` is the blueprint of the task pages and the images they show. Importing
this package registers every task; it imports neither Flask nor the pages.
"""
from __future__ import annotations

from studyweb.tasks import (bubbleview, choose_best, codecharts, describe, pick_region,  # noqa: F401 — registers
                            questionnaire, rate)
from studyweb.tasks.registry import (AnswerError, Task, attention_tasks, block_tasks, question_tasks, register,
                                     task_named, trial_task)

__all__ = ["AnswerError", "Task", "attention_tasks", "block_tasks", "question_tasks", "register", "task_named",
           "trial_task"]
