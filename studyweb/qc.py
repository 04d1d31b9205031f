"""Quality control applied when maps are built: which clicks and participants count.

Rules (BubbleView, DESIGN.md §3), with the experiment's settings.qc:
1. clicks outside the image (x ∉ [0, width) or y ∉ [0, height), image pixels) are dropped;
2. late clicks (`Click.late`: a BubbleView click after the trial's time limit and its grace,
   stored flagged by the save route) are left out, flagged "N late click(s) left out";
3. a trial with fewer than min_clicks valid clicks is dropped (min_clicks 0 disables);
4. a participant whose mean valid clicks per trial lies outside [Q1 − k·IQR, Q3 + k·IQR] of
   all participants' means (k = iqr_k, numpy's linear percentiles) is dropped; the rule needs
   at least MIN_PARTICIPANTS_FOR_IQR participants and is skipped below that (and flagged so);
5. a participant with more than max_focus_losses 'focus_lost' events is dropped;
6. a participant who failed a CodeCharts tutorial (an event 'tutorial_failed') is dropped.
iqr_k None turns rule 4 off (CodeCharts: one gaze point per trial, nothing to compare).
Only saved ('done'), non-practice trials count. Every drop is returned as a Flag — never silent.
Questionnaires have their own rules (`questionnaire_qc`: catch trials, focus losses).

`decide_qc` runs the rules and stores each participant's decision on the participant
(qc_status kept | excluded, qc_reason, qc_decided_at; NULL for a participant the rules did not
see: no saved trial that counts); `studyweb.maps.build_maps` calls it and stores with each map
what it decided (the points that went in, the flags about its stimulus), so exports and the
admin page read the decision as it was made instead of running QC again.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from studyweb.db.schema import Click, Event, Experiment, Participant, Response, Stimulus, Trial, utcnow
from studyweb.tasks import task_named

log = logging.getLogger(__name__)
MIN_PARTICIPANTS_FOR_IQR = 4


@dataclass(frozen=True)
class Flag:
    """One QC decision: participant (None for the experiment), what happened, and whether the
    participant was excluded from the maps because of it."""

    participant_id: int | None
    reason: str
    excluded: bool

    def as_dict(self) -> dict:
        return {"participant_id": self.participant_id, "reason": self.reason, "excluded": self.excluded}


@dataclass
class QCResult:
    """Kept participants, the flags, and the valid clicks as parallel arrays (one per click:
    participant id, stimulus id, x, y in image pixels, t_ms) of kept participants and trials;
    viewers: {stimulus id: participants with a saved trial of it, kept or not}."""

    kept: list[int]
    flags: list[Flag]
    participant_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    stimulus_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    y: np.ndarray = field(default_factory=lambda: np.zeros(0))
    t_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    viewers: dict[int, list[int]] = field(default_factory=dict)

    def flags_about(self, participant_ids) -> list[dict]:
        """The flags (as dicts, in order) about the experiment or one of `participant_ids`."""
        wanted = {int(p) for p in participant_ids}
        return [f.as_dict() for f in self.flags if f.participant_id is None or f.participant_id in wanted]


def run_qc(session: Session, experiment: Experiment, qc: dict | None = None) -> QCResult:
    """Apply the rules above (qc defaults to experiment.settings['qc']) to every saved trial;
    a questionnaire's participants by `questionnaire_qc` instead."""
    qc = {**{"min_clicks": 2, "iqr_k": 3.0, "max_focus_losses": 5}, **(qc or experiment.settings.get("qc", {}))}
    if task_named(experiment.task).qc_by_answers:
        return questionnaire_qc(session, experiment, qc)
    trials = session.execute(
        select(Trial.id, Trial.participant_id, Trial.stimulus_id)
        .join(Participant, Participant.id == Trial.participant_id)
        .where(Participant.experiment_id == experiment.id, Trial.is_practice.is_(False), Trial.status == "done",
               Trial.stimulus_id.is_not(None))
        .order_by(Trial.id)
    ).all()
    rows = session.execute(
        select(Click.trial_id, Trial.participant_id, Trial.stimulus_id, Click.x, Click.y, Click.t_ms,
               Stimulus.width, Stimulus.height)
        .join(Trial, Trial.id == Click.trial_id)
        .join(Stimulus, Stimulus.id == Trial.stimulus_id)
        .where(Stimulus.experiment_id == experiment.id, Trial.is_practice.is_(False), Trial.status == "done",
               Click.late.is_(False))
        .order_by(Click.id)
    ).all()
    late = dict(session.execute(
        select(Trial.participant_id, func.count()).select_from(Click)
        .join(Trial, Trial.id == Click.trial_id)
        .join(Stimulus, Stimulus.id == Trial.stimulus_id)
        .where(Stimulus.experiment_id == experiment.id, Trial.is_practice.is_(False), Trial.status == "done",
               Click.late.is_(True))
        .group_by(Trial.participant_id)
    ).all())
    losses = dict(session.execute(
        select(Event.participant_id, func.count())
        .join(Participant, Participant.id == Event.participant_id)
        .where(Participant.experiment_id == experiment.id, Event.kind == "focus_lost")
        .group_by(Event.participant_id)
    ).all())
    failed = {participant: (payload or {}).get("reason", "") for participant, payload in session.execute(
        select(Event.participant_id, Event.payload)
        .join(Participant, Participant.id == Event.participant_id)
        .where(Participant.experiment_id == experiment.id, Event.kind == "tutorial_failed")
    ).all()}
    result = apply_rules(trials, rows, losses, qc, failed, late)
    viewers: dict[int, set[int]] = {}
    for _, participant, stimulus in trials:
        viewers.setdefault(stimulus, set()).add(participant)
    result.viewers = {stimulus: sorted(participants) for stimulus, participants in viewers.items()}
    return result


def decide_qc(session: Session, experiment: Experiment, qc: dict | None = None) -> QCResult:
    """`run_qc`, and its decision stored on each participant of the experiment: qc_status
    'kept' (qc_reason '') or 'excluded' (qc_reason the rule's reason), or NULL for one the rules
    did not see (no saved trial that counts). qc_decided_at is when the participant's decision
    last changed, so a rebuild that decides the same keeps it. A screened-out participant keeps
    the decision stored when they were screened out (`studyweb.screening.screen_out`). Flushes;
    the caller commits."""
    result = run_qc(session, experiment, qc)
    reasons: dict[int, list[str]] = {}
    for flag in result.flags:
        if flag.excluded and flag.participant_id is not None:
            reasons.setdefault(flag.participant_id, []).append(flag.reason)
    decided = {p: ("kept", "") for p in result.kept}
    decided.update({p: ("excluded", "; ".join(why)) for p, why in reasons.items()})
    now = utcnow()
    changes = []
    for pid, *stored in session.execute(select(Participant.id, Participant.qc_status, Participant.qc_reason)
                                        .where(Participant.experiment_id == experiment.id,
                                               Participant.status != "screened_out")):  # decided then
        status, reason = decided.get(pid, (None, None))
        if [status, reason] != stored:
            changes.append({"id": pid, "qc_status": status, "qc_reason": reason,
                            "qc_decided_at": now if status else None})
    if changes:
        session.execute(update(Participant).execution_options(synchronize_session=False), changes)
    session.flush()
    log.info("QC of %s: %d kept, %d excluded, %d decision(s) changed", experiment.name, len(result.kept),
             len(reasons), len(changes))
    return result


def questionnaire_qc(session: Session, experiment: Experiment, qc: dict) -> QCResult:
    """A questionnaire's QC: a participant who answered any trial is kept unless they failed
    more catch trials than the design's catch.max_failures, or lost focus more than
    max_focus_losses times. No points: questionnaires make no maps."""
    answered = sorted(session.scalars(
        select(Response.participant_id).join(Participant, Participant.id == Response.participant_id)
        .where(Participant.experiment_id == experiment.id).distinct()).all())
    failures = dict(session.execute(
        select(Response.participant_id, func.count())
        .join(Participant, Participant.id == Response.participant_id)
        .where(Participant.experiment_id == experiment.id, Response.question == "catch",
               Response.correct.is_(False)).group_by(Response.participant_id)).all())
    losses = dict(session.execute(
        select(Event.participant_id, func.count())
        .join(Participant, Participant.id == Event.participant_id)
        .where(Participant.experiment_id == experiment.id, Event.kind == "focus_lost")
        .group_by(Event.participant_id)).all())
    catch = (experiment.settings.get("design") or {}).get("catch") or {}
    allowed = int(catch.get("max_failures", 0))
    flags: list[Flag] = []
    for participant in answered:
        if failures.get(participant, 0) > allowed:
            flags.append(Flag(participant, f"{failures[participant]} catch trial(s) failed > max {allowed}", True))
        elif losses.get(participant, 0) > int(qc["max_focus_losses"]):
            flags.append(Flag(participant, f"{losses[participant]} focus losses > max {qc['max_focus_losses']}", True))
        elif failures.get(participant):
            flags.append(Flag(participant, f"{failures[participant]} catch trial(s) failed (allowed {allowed})",
                              False))
    excluded = {f.participant_id for f in flags if f.excluded}
    return QCResult(kept=[p for p in answered if p not in excluded], flags=flags)


def apply_rules(trials, rows, focus_losses: dict[int, int], qc: dict,
                failed_tutorial: dict[int, str] | None = None, late_clicks: dict[int, int] | None = None) -> QCResult:
    """The rules on plain data (pure, no database). trials: (trial id, participant id, ...) rows;
    rows: (trial id, participant id, stimulus id, x, y, t_ms, width, height) per click, late
    clicks already left out; focus_losses: {participant id: count}; failed_tutorial:
    {participant id: the gate's reason}; late_clicks: {participant id: late clicks left out}."""
    flags: list[Flag] = [Flag(int(p), f"{n} late click(s) left out", False)
                         for p, n in sorted((late_clicks or {}).items()) if n]
    trial_ids = np.array([t[0] for t in trials], np.int64)
    trial_owner = np.array([t[1] for t in trials], np.int64)
    table = np.array([tuple(r) for r in rows], np.float64).reshape(-1, 8)
    trial_of, pid, sid, x, y, t_ms, width, height = (table[:, i] for i in range(8))
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height) & np.isfinite(x) & np.isfinite(y)
    for participant, n in zip(*np.unique(pid[~inside].astype(np.int64), return_counts=True)):
        flags.append(Flag(int(participant), f"{n} click(s) outside the image dropped", False))

    # Valid clicks per saved trial (0 for trials without any).
    index = np.searchsorted(trial_ids, trial_of[inside].astype(np.int64))
    per_trial = np.bincount(index, minlength=len(trial_ids)) if len(trial_ids) else np.zeros(0, np.int64)
    good_trial = per_trial >= int(qc["min_clicks"])
    for participant in np.unique(trial_owner[~good_trial]):
        n = int(np.sum(~good_trial & (trial_owner == participant)))
        flags.append(Flag(int(participant), f"{n} trial(s) with fewer than {qc['min_clicks']} clicks dropped", False))

    participants = np.unique(trial_owner)
    excluded: dict[int, str] = {}
    for participant in participants:
        if focus_losses.get(int(participant), 0) > int(qc["max_focus_losses"]):
            excluded[int(participant)] = (f"{focus_losses[int(participant)]} focus losses >"
                                          f" max {qc['max_focus_losses']}")
    for participant, reason in sorted((failed_tutorial or {}).items()):
        excluded[int(participant)] = f"failed the CodeCharts tutorial ({reason})"
    if len(participants) and qc["iqr_k"] is not None:
        means = np.array([per_trial[trial_owner == p].mean() for p in participants])
        if len(participants) >= MIN_PARTICIPANTS_FOR_IQR:
            low, high = iqr_bounds(means, float(qc["iqr_k"]))
            for participant, mean in zip(participants, means):
                if (mean < low or mean > high) and int(participant) not in excluded:
                    excluded[int(participant)] = (f"mean clicks per trial {mean:.2f} outside"
                                                  f" [{low:.2f}, {high:.2f}] (Q1/Q3 ∓ {qc['iqr_k']:g}·IQR)")
        else:
            flags.append(Flag(None, f"IQR rule skipped: {len(participants)} participant(s) <"
                                    f" {MIN_PARTICIPANTS_FOR_IQR}", False))
    flags += [Flag(p, reason, True) for p, reason in sorted(excluded.items())]
    kept = [int(p) for p in participants if int(p) not in excluded]

    keep_click = inside.copy()
    keep_click[inside] = good_trial[index] if len(index) else False
    keep_click &= np.isin(pid.astype(np.int64), np.array(kept, np.int64))
    for flag in flags:
        if flag.excluded:
            log.info("QC: participant %s excluded: %s", flag.participant_id, flag.reason)
    return QCResult(kept=kept, flags=flags, participant_id=pid[keep_click].astype(np.int64),
                    stimulus_id=sid[keep_click].astype(np.int64), x=x[keep_click], y=y[keep_click],
                    t_ms=t_ms[keep_click])


def iqr_bounds(values, k: float) -> tuple[float, float]:
    """(Q1 − k·IQR, Q3 + k·IQR) of `values` with numpy's linear percentiles."""
    q1, q3 = np.percentile(np.asarray(values, np.float64), [25, 75])
    return float(q1 - k * (q3 - q1)), float(q3 + k * (q3 - q1))
