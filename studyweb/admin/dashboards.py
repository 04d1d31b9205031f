"""What the admin experiment page shows per task, read from the database as it is (QC is never
run here: exclusions are the decisions stored on the participants, `studyweb.qc.decide_qc`).

- every task: the recruitment links (Prolific's URL template, MTurk's external question) built
  from the query parameters the server reads (`studyweb.participant.enrol.RECRUITERS`), the
  completion and screen-out codes, the related experiments whose workers are refused, and the
  exclusions (qc_status 'excluded' or status / qc_status 'screened_out');
- questionnaires (`questionnaire_dashboard`): progress per block counted in the design's unit
  (a pair for choose_best, an image version for the other tasks) against its observers, the
  answers per method and question, catch failures per participant. Catch trials count for no
  unit and no method;
- CodeCharts (`codecharts_dashboard`): the share of valid codes, sentinel accuracy
  (`Response.correct` of sentinel trials) and tutorial failures, main trials and tutorial apart.
Counts include every participant who answered (excluded and simulated ones too; the page says so).
"""
from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from studyweb.db.schema import FINISHED_STATUSES, Event, Experiment, Participant, Response, Stimulus, Trial, utcnow
from studyweb.participant.enrol import RECRUITERS

ORIGINAL = "original"  # the version name of a stimulus with method '' (the input image)
# Prolific fills {{%NAME%}} in a study URL with the participant's, the study's and the session's ids.
PROLIFIC_PLACEHOLDER = "{{{{%{key}%}}}}"  # str.format: {{ is one brace
MTURK_XML = ('<ExternalQuestion xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/'
             '2006-07-14/ExternalQuestion.xsd">\n  <ExternalURL>{url}</ExternalURL>\n'
             '  <FrameHeight>0</FrameHeight>\n</ExternalQuestion>')


def version_name(stimulus: Stimulus) -> str:
    """The stimulus' version: its method, 'original' for the input image (method '')."""
    return stimulus.method or ORIGINAL


def version_label(stimulus: Stimulus) -> str:
    """'METHOD · pair PAIR_ID · side S' (no side part for a lone image)."""
    side = f" · side {stimulus.side}" if stimulus.side else ""
    return f"{version_name(stimulus)} · pair {stimulus.pair_id}{side}"


def recruitment_links(study_url: str) -> dict[str, Any]:
    """How to recruit through `study_url` (the experiment's /s/NAME link): Prolific's study URL
    with its placeholders for exactly the parameters the server reads; MTurk's ExternalQuestion
    (MTurk appends workerId, assignmentId and hitId itself, with turkSubmitTo, which the server
    ignores) and the parameters read from it."""
    keys = {source: list(parameters) for source, *parameters in RECRUITERS}
    prolific = "&".join(f"{key}={PROLIFIC_PLACEHOLDER.format(key=key)}" for key in keys["prolific"])
    return {"prolific": f"{study_url}?{prolific}", "prolific_parameters": keys["prolific"],
            "mturk_xml": MTURK_XML.format(url=study_url), "mturk_parameters": keys["mturk"],
            "https": study_url.startswith("https://")}


def related_names(experiments: list[Experiment]) -> dict[str, list[str]]:
    """{experiment name: the experiments whose workers it refuses}, both ways (an experiment
    listing another in exclude_workers_of, and the one listed), as `related_experiments` decides."""
    related: dict[str, set[str]] = defaultdict(set)
    for experiment in experiments:
        for other in experiment.settings.get("exclude_workers_of") or []:
            if other != experiment.name:
                related[experiment.name].add(other)
                related[other].add(experiment.name)
    return {name: sorted(others) for name, others in related.items()}


def exclusions(session: Session, experiment: Experiment) -> dict[str, Any]:
    """{"rows": participants excluded by QC or screened out (id, recruit id, source, status,
    qc_status, qc_reason), "undecided": participants with a saved answer or trial that QC has
    not decided yet (qc_status NULL)}."""
    rows = session.execute(
        select(Participant.id, Participant.recruit_id, Participant.source, Participant.status, Participant.qc_status,
               Participant.qc_reason)
        .where(Participant.experiment_id == experiment.id,
               (Participant.qc_status.in_(("excluded", "screened_out"))) | (Participant.status == "screened_out"))
        .order_by(Participant.id)).all()
    undecided = session.scalar(
        select(func.count()).select_from(Participant)
        .where(Participant.experiment_id == experiment.id, Participant.qc_status.is_(None),
               Participant.id.in_(select(Trial.participant_id).where(Trial.status == "done",
                                                                     Trial.is_practice.is_(False)))))
    return {"rows": [dict(r._mapping) for r in rows], "undecided": int(undecided or 0)}


def questionnaire_dashboard(session: Session, experiment: Experiment, now: dt.datetime | None = None) -> dict:
    """{"blocks": per design block its progress and answers, "catch": catch failures per
    participant}. A block's progress: units (pairs for choose_best, image versions otherwise)
    with their observers (distinct participants with a trial of the block on the unit who
    completed or are active, as `studyweb.assignment.observer_counts` counts) against the
    design's observers, and those participants' answered trials against units x observers. Its answers, per
    question and method: n; choose_best how often each candidate method was chosen and its share
    of the answers; rate the mean rating; a follow-up the count of each choice."""
    design = experiment.settings["design"]
    stimuli = {s.id: s for s in session.scalars(select(Stimulus).where(Stimulus.experiment_id == experiment.id))}
    methods = [ORIGINAL, *design["methods"]]
    target = int(design["observers"])
    counting = _counting_participants(session, experiment, now)
    trials = session.execute(
        select(Trial.participant_id, Trial.stimulus_id, Trial.status, Trial.spec)
        .join(Participant, Participant.id == Trial.participant_id)
        .where(Participant.experiment_id == experiment.id, Trial.is_practice.is_(False))).all()
    answers = session.execute(
        select(Response.participant_id, Response.question, Response.choice, Response.rating, Response.correct,
               Trial.spec)
        .join(Trial, Trial.id == Response.trial_id)
        .join(Participant, Participant.id == Response.participant_id)
        .where(Participant.experiment_id == experiment.id)).all()
    blocks = [_block_progress(block, stimuli, methods, target, counting, trials) for block in design["blocks"]]
    for block, summary in zip(design["blocks"], blocks):
        summary["questions"] = _block_answers(block, methods, [a for a in answers if (a.spec or {}).get("block")
                                                               == block["name"] and not (a.spec or {}).get("catch")])
    return {"blocks": blocks, "target": target, "methods": methods,
            "catch": _catch_failures(session, experiment, design, answers)}


def codecharts_dashboard(session: Session, experiment: Experiment) -> dict:
    """{"main", "tutorial": {codes, valid, sentinels, correct} (image codes typed, those on
    the chart; sentinel answers, those correct), "failures": tutorial failures (participant,
    recruit id, reason), "participants": the same counts per participant with their tutorial
    verdict ('failed', 'passed' once every tutorial trial is answered, else '')}."""
    rows = session.execute(
        select(Response.participant_id, Response.valid, Response.correct, Trial.is_practice, Trial.spec)
        .join(Trial, Trial.id == Response.trial_id)
        .join(Participant, Participant.id == Response.participant_id)
        .where(Participant.experiment_id == experiment.id, Response.task == "codecharts")).all()
    totals = {part: Counter() for part in ("main", "tutorial")}
    people: dict[int, Counter] = defaultdict(Counter)
    for row in rows:
        sentinel = (row.spec or {}).get("kind") == "sentinel"
        counts = Counter({"sentinels": 1, "correct": int(row.correct is True)} if sentinel
                         else {"codes": 1, "valid": int(bool(row.valid))})
        totals["tutorial" if row.is_practice else "main"].update(counts)
        if not row.is_practice:
            people[row.participant_id].update(counts)
    failures = session.execute(
        select(Event.participant_id, Participant.recruit_id, Event.payload)
        .join(Participant, Participant.id == Event.participant_id)
        .where(Participant.experiment_id == experiment.id, Event.kind == "tutorial_failed")
        .order_by(Event.participant_id)).all()
    failed = {pid: (payload or {}).get("reason", "") for pid, _, payload in failures}
    open_tutorial = dict(session.execute(
        select(Trial.participant_id, func.count()).join(Participant, Participant.id == Trial.participant_id)
        .where(Participant.experiment_id == experiment.id, Trial.is_practice.is_(True), Trial.status != "done")
        .group_by(Trial.participant_id)).all())
    participants = session.execute(
        select(Participant.id, Participant.recruit_id, Participant.source, Participant.status, Participant.qc_status)
        .where(Participant.experiment_id == experiment.id, Participant.id.in_(select(Trial.participant_id)))
        .order_by(Participant.id)).all()
    return {
        "main": _totals(totals["main"]), "tutorial": _totals(totals["tutorial"]),
        "failures": [{"participant_id": pid, "recruit_id": recruit_id, "reason": failed[pid]}
                     for pid, recruit_id, _ in failures],
        "participants": [{**dict(p._mapping), **_totals(people[p.id]),
                          "tutorial": "failed" if p.id in failed else "" if open_tutorial.get(p.id) else "passed"}
                         for p in participants],
    }


def attention_progress(observers: dict[int, int], stimuli: list[Stimulus], target: int) -> dict:
    """{"full": stimuli with `target` observers or more, "n", "min", "mean", "max"} of a
    BubbleView or CodeCharts experiment's observers per stimulus."""
    counts = [observers.get(s.id, 0) for s in stimuli] or [0]
    return {"full": sum(c >= target for c in counts), "n": len(stimuli), "min": min(counts),
            "mean": sum(counts) / len(counts), "max": max(counts)}


def _counting_participants(session: Session, experiment: Experiment, now: dt.datetime | None) -> set[int]:
    """Participants who count as observers: complete, or unfinished and seen within
    active_timeout_min minutes (the rule of `studyweb.assignment.observer_counts`)."""
    now = now or utcnow()
    cutoff = now - dt.timedelta(minutes=float(experiment.settings.get("active_timeout_min", 30.0)))
    return {pid for pid, status, seen in session.execute(
        select(Participant.id, Participant.status, Participant.last_seen_at)
        .where(Participant.experiment_id == experiment.id))
        if status == "complete" or (status not in FINISHED_STATUSES and seen >= cutoff)}


def _block_progress(block: dict, stimuli: dict[int, Stimulus], methods: list[str], target: int, counting: set[int],
                    trials) -> dict:
    """A block's units with their observers and answered trials (see `questionnaire_dashboard`)."""
    if block["task"] == "choose_best":
        unit_kind, versions = "pair", {ORIGINAL}
    else:
        unit_kind = "image"
        versions = set(methods[1:]) if block["image"] == "methods" else {block["image"]}
    units = sorted((s for s in stimuli.values() if version_name(s) in versions),
                   key=lambda s: (methods.index(version_name(s)), s.pair_id, s.side))
    observers: dict[int, set[int]] = defaultdict(set)
    answered: Counter = Counter()
    catch = Counter()
    for participant, stimulus_id, status, spec in trials:
        spec = spec or {}
        if spec.get("block") != block["name"]:
            continue
        if spec.get("catch"):
            catch["assigned"] += 1
            catch["answered"] += status == "done"
            continue
        if participant in counting:  # a screened-out or timed-out participant's trials fill nothing
            observers[stimulus_id].add(participant)
            answered[stimulus_id] += status == "done"
    rows = [{"label": version_label(s).removeprefix(f"{ORIGINAL} · ") if unit_kind == "pair" else version_label(s),
             "stimulus_id": s.id, "observers": len(observers[s.id]), "answered": answered[s.id]} for s in units]
    counts = [r["observers"] for r in rows] or [0]
    return {"name": block["name"], "task": block["task"], "unit": unit_kind, "units": rows, "target": target,
            "full": sum(c >= target for c in counts), "min": min(counts), "mean": sum(counts) / len(counts),
            "max": max(counts), "answered": sum(answered.values()), "wanted": len(rows) * target,
            "catch_answered": catch["answered"], "catch_assigned": catch["assigned"]}


def _block_answers(block: dict, methods: list[str], answers) -> list[dict]:
    """Per question of the block (its follow-up last): {id, text, n, rows: per method {method,
    n, chosen, share, mean, choices}} (see `questionnaire_dashboard`)."""
    questions = list(block["questions"])
    if block.get("follow_up"):
        questions.append({"id": block["follow_up"]["id"], "text": block["follow_up"]["text"], "follow_up": True})
    out = []
    for question in questions:
        mine = [a for a in answers if a.question == question["id"]]
        if block["task"] == "choose_best":
            chosen = Counter(a.choice for a in mine)
            rows = [{"method": m, "n": len(mine), "chosen": chosen[m], "share": chosen[m] / len(mine) if mine else None}
                    for m in block["candidates"]]
        else:
            by_method: dict[str, list] = defaultdict(list)
            for a in mine:
                by_method[(a.spec or {}).get("method") or ORIGINAL].append(a)
            rows = []
            for method in sorted(by_method, key=lambda m: methods.index(m) if m in methods else len(methods)):
                group = by_method[method]
                ratings = [a.rating for a in group if a.rating is not None]
                rows.append({"method": method, "n": len(group),
                             "mean": sum(ratings) / len(ratings) if ratings and block["task"] == "rate" else None,
                             "choices": dict(sorted(Counter(a.choice for a in group).items()))
                             if question.get("follow_up") else None})
        out.append({"id": question["id"], "text": question["text"], "n": len(mine), "rows": rows})
    return out


def _catch_failures(session: Session, experiment: Experiment, design: dict, answers) -> dict:
    """{"every", "max_failures", "rows": per participant who answered a catch trial: id,
    recruit id, answered, failed, over (more failures than allowed: QC excludes them)}."""
    catch = design.get("catch") or {}
    allowed = int(catch.get("max_failures", 0))
    answered, failed = Counter(), Counter()
    for a in answers:
        if (a.spec or {}).get("catch") and a.question == "catch":
            answered[a.participant_id] += 1
            failed[a.participant_id] += a.correct is False
    recruits = dict(session.execute(select(Participant.id, Participant.recruit_id)
                                    .where(Participant.id.in_(list(answered)))).all()) if answered else {}
    rows = [{"participant_id": pid, "recruit_id": recruits.get(pid), "answered": answered[pid], "failed": failed[pid],
             "over": failed[pid] > allowed} for pid in sorted(answered)]
    return {"every": catch.get("every"), "max_failures": allowed, "rows": rows,
            "failing": sum(r["failed"] > 0 for r in rows), "over": sum(r["over"] for r in rows)}


def _totals(counts: Counter) -> dict:
    return {key: int(counts.get(key, 0)) for key in ("codes", "valid", "sentinels", "correct")}
