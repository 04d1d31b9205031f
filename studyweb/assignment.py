"""Which stimuli a participant sees, and in what order.

Rules (issue 4, psiTurk's counting): each participant gets K = settings.per_participant
stimuli, least-observed first, until each stimulus has M = settings.observers observers. An
observer is a participant with a (non-practice) trial on the stimulus who either completed
the study or is still active: not finished and seen within settings.active_timeout_min
minutes. Every participant gets all K (issue 23, `studyweb.workload`): when fewer than K
stimuli still want observers, the rest are the least observed of the full ones, so a few
stimuli get one observer more than M rather than someone a short session; a participant for
whom no stimulus wants an observer is refused (StudyFull). The two sides of a pair never go
to the same participant unless allow_both_sides.
The order is shuffled per participant from a seed stored in participant.assignment_seed.
A recruit id that already has an assignment in the experiment gets no second one unless
allow_repeat. Trial 0 is a practice trial (is_practice=True) on a stimulus of a pair the
participant does not see in their main trials, or, where every pair is theirs, on the image the
page draws itself (no stimulus): the practice image is never one of their main images nor the
other side of one. Practice clicks never enter a map. The trials are the task's
(`Task.shown_trials`): BubbleView's practice and one trial per image, or CodeCharts' tutorial
and sentinels between the images (`studyweb.tasks.codecharts.build_trials`).

A questionnaire (a study whose task counts observers per block, `Task.by_block`) gets K units
of each design block, least observed in that block first, topped up like the rest, and the
block's catch trials in their gaps (`workload.catch_gaps`); each block's task says what its
units are and what its trials show (`studyweb.tasks.questions.QuestionTask`). A design's breaks,
block screens and inter-trial interval go on the trials' specs (spec["pace"],
`studyweb.workload.pace_trials`).

Concurrency: `assign` first takes the experiment's write lock (`db.engine.lock_experiment`: a no-op
UPDATE of the experiment row — a row lock on PostgreSQL, the database write lock on SQLite
WAL, where other writers wait up to busy_timeout), then counts and inserts in the same
transaction. Two participants arriving together are therefore assigned one after the other
and never both take the last free observer slot. The caller commits right after, which
releases the lock.
"""
from __future__ import annotations

import datetime as dt
import logging
import secrets

import numpy as np
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from studyweb.counterbalance import counterbalanced_blocks
from studyweb.db.engine import lock_experiment
from studyweb.db.schema import FINISHED_STATUSES, Experiment, Participant, Stimulus, Trial, utcnow
from studyweb.tasks import Task, task_named
from studyweb.workload import catch_gaps, pace_trials, per_participant

log = logging.getLogger(__name__)


class AssignmentError(ValueError):
    """No assignment can be made: the participant returns, or every stimulus is full."""


class AlreadyParticipated(AssignmentError):
    """This recruit id already has an assignment and the experiment does not allow repeats."""


class StudyFull(AssignmentError):
    """Every stimulus the participant could see already has its M observers."""


def assign(session: Session, experiment: Experiment, participant: Participant, rng_seed: int | None = None,
           now: dt.datetime | None = None) -> list[Trial]:
    """Create the participant's trials (practice first, at position 0) and return them in order.

    Calling it again for a participant that has trials returns those (a reload resumes).
    rng_seed: the shuffle seed (default: random), stored in participant.assignment_seed.
    Raises AlreadyParticipated / StudyFull (ValueErrors). Flushes; the caller commits promptly.
    """
    existing = session.scalars(select(Trial).where(Trial.participant_id == participant.id)
                               .order_by(Trial.position)).all()
    if existing:
        return list(existing)
    settings = experiment.settings
    now = now or utcnow()
    lock_experiment(session, experiment.id)

    if participant.recruit_id and not settings.get("allow_repeat", False):
        earlier = find_returning(session, experiment, participant.recruit_id, exclude_id=participant.id)
        if earlier is not None:
            raise AlreadyParticipated(
                f"{participant.recruit_source} id {participant.recruit_id!r} already took part in"
                f" experiment {experiment.name!r} (participant {earlier.id})"
            )
    seen = _seen_by_recruit(session, experiment, participant)
    study = task_named(experiment.task)
    counts = observer_counts(session, experiment, now=now, exclude_participant_id=participant.id,
                             by_block=study.by_block)
    stimuli = session.scalars(select(Stimulus).where(Stimulus.experiment_id == experiment.id)
                              .order_by(Stimulus.id)).all()
    seed = int(secrets.randbits(31) if rng_seed is None else rng_seed) % 2**31
    rng = np.random.default_rng(seed)
    if study.by_block:  # blocks of questions (a questionnaire)
        trials = _block_trials(participant, [s for s in stimuli if s.id not in seen], counts, settings, rng)
        wanted = int(settings["design"]["observers"])
        if not any(t.stimulus_id is not None and counts.get(study.observer_key(t.stimulus_id, t.spec), 0) < wanted
                   for t in trials):
            raise StudyFull(f"experiment {experiment.name!r}: every image already has"
                            f" {settings['design']['observers']} observers")
        return _store(session, participant, trials, seed, now)
    if settings.get("conditions"):  # blocks x conditions in a Latin square (a design's `conditions`)
        return _store(session, participant, _condition_trials(session, experiment, study, participant, stimuli,
                                                              counts, seen, rng), seed, now)
    chosen = choose_stimuli(
        stimuli, counts, k=int(settings["per_participant"]), m=int(settings["observers"]),
        allow_both_sides=bool(settings.get("allow_both_sides", False)), rng=rng, exclude_ids=seen, top_up=True,
    )
    if not any(counts.get(s.id, 0) < int(settings["observers"]) for s in chosen):
        raise StudyFull(f"experiment {experiment.name!r}: every stimulus already has"
                        f" {settings['observers']} observers (or is active with someone)")
    order = [chosen[i] for i in rng.permutation(len(chosen))]
    trials = study.shown_trials(participant, [(s, {}) for s in order], list(stimuli), settings, rng)
    return _store(session, participant, trials, seed, now)


def _store(session: Session, participant: Participant, trials: list[Trial], seed: int, now) -> list[Trial]:
    pace_trials(trials, participant.experiment.settings.get("design"))  # breaks, block screens, grey ITI
    session.add_all(trials)
    participant.assignment_seed = seed
    participant.last_seen_at = now
    session.flush()
    log.info("participant %d: %d trials (seed %d)", participant.id, len(trials), seed)
    return trials


def _condition_trials(session: Session, experiment: Experiment, study: Task, participant: Participant, stimuli,
                      counts, seen, rng) -> list[Trial]:
    """The trials of an attention study with conditions (`studyweb.counterbalance`): K source
    images (least observed first, counted over all their versions), then one block per
    condition, each showing every chosen image once in the block's condition (or, mixed, the
    conditions spread over the images), the blocks in the order of the participant's row of a
    Williams square (participants numbered in arrival order, under the experiment's lock)."""
    settings = experiment.settings
    conditions = settings["conditions"]
    versions = {(s.pair_id, s.method or "original"): s for s in stimuli}
    originals = [s for s in stimuli if not s.method and s.id not in seen]
    per_pair = {}
    for (pair_id, _), stimulus in versions.items():
        per_pair[pair_id] = max(per_pair.get(pair_id, 0), counts.get(stimulus.id, 0))
    chosen = choose_stimuli(originals, {s.id: per_pair[s.pair_id] for s in originals},
                            k=int(settings["per_participant"]), m=int(settings["observers"]),
                            allow_both_sides=False, rng=rng, top_up=True)
    if not any(per_pair[s.pair_id] < int(settings["observers"]) for s in chosen):
        raise StudyFull(f"experiment {experiment.name!r}: every image already has {settings['observers']} observers")
    index = session.scalar(select(func.count(func.distinct(Trial.participant_id)))
                           .join(Participant, Participant.id == Trial.participant_id)
                           .where(Participant.experiment_id == experiment.id))
    blocks = counterbalanced_blocks([s.pair_id for s in chosen], conditions["versions"], int(index),
                                    layout=conditions["layout"], seed=int(rng.integers(2**31)))
    shown = [(versions[pair_id, condition], {"block": b, "condition": condition}) for b, block in enumerate(blocks)
             for pair_id, condition in block]
    return study.shown_trials(participant, shown, list(stimuli), settings, rng)


def _block_trials(participant: Participant, stimuli: list[Stimulus], counts: dict, settings: dict,
                  rng: np.random.Generator) -> list[Trial]:
    """A questionnaire participant's trials, block after block (not added to a session): K units
    per block (`workload.per_participant`; `QuestionTask.block_units`), least observed in that
    block first (counts: {(block index, stimulus id): observers}, `observer_counts` by_block),
    topped up with already full units when fewer than K still want observers (the caller refuses
    a participant none of whose units wants one), and the block's catch trials in their gaps
    (`workload.catch_gaps`), where its task has them."""
    design = settings["design"]
    by_version: dict[str, list[Stimulus]] = {}
    for stimulus in stimuli:
        by_version.setdefault(stimulus.method or "original", []).append(stimulus)
    originals = {s.pair_id: s for s in by_version.get("original", [])}
    catch = design.get("catch")
    trials: list[Trial] = []
    for b, block in enumerate(design["blocks"]):
        task = task_named(block["task"])
        seen_in_block = {sid: n for (index, sid), n in counts.items() if index == b}  # each block its own observers
        chosen = choose_stimuli(task.block_units(block, by_version), seen_in_block,
                                k=per_participant(design, len(originals)), m=int(design["observers"]),
                                allow_both_sides=False, rng=rng, top_up=True)
        specs = [(unit.id, task.trial_spec(block, b, unit, originals[unit.pair_id], by_version, rng))
                 for unit in chosen]
        if catch and task.has_catch(block) and specs:
            for gap in reversed(catch_gaps(len(chosen), catch["every"], rng)):  # from the end: gaps stay put
                source = originals[chosen[min(gap, len(chosen) - 1)].pair_id]
                specs.insert(gap, (None, task.catch_spec(block, b, source, by_version, rng)))  # counts for nobody
        for unit_id, spec in specs:
            trials.append(Trial(participant_id=participant.id, stimulus_id=unit_id, position=len(trials) + 1,
                                is_practice=False, task=block["task"], spec=spec))
    return trials


def choose_stimuli(stimuli, counts: dict[int, int], k: int, m: int, allow_both_sides: bool, rng,
                   exclude_ids=(), top_up: bool = False) -> list:
    """Up to k stimuli with fewer than m observers, fewest observers first (ties broken at
    random by `rng`), at most one side per pair unless allow_both_sides. top_up: when fewer
    than k are open, fill up to k with the least observed of the full ones (even workloads,
    `studyweb.workload`; the caller refuses a participant who got no open one). Pure: no database."""
    excluded = set(exclude_ids)
    candidates = [s for s in stimuli if s.id not in excluded and (top_up or counts.get(s.id, 0) < m)]
    ties = rng.random(len(candidates))
    # Open ones first, then (top_up) full ones; within each, fewest observers first.
    ranked = [candidates[i] for i in sorted(range(len(candidates)), key=lambda i: (
        counts.get(candidates[i].id, 0) >= m, counts.get(candidates[i].id, 0), ties[i]))]
    chosen, pairs = [], set()
    for stimulus in ranked:
        if len(chosen) == k:
            break
        if not allow_both_sides and stimulus.pair_id in pairs:
            continue
        chosen.append(stimulus)
        pairs.add(stimulus.pair_id)
    return chosen


def observer_counts(session: Session, experiment: Experiment, now: dt.datetime | None = None,
                    exclude_participant_id: int | None = None, by_block: bool = False) -> dict:
    """{stimulus id: observers}: distinct participants with a non-practice trial on it who
    completed, or are unfinished and were seen within active_timeout_min minutes of `now`.
    by_block: {(block index, stimulus id): observers} of a questionnaire's trials (spec
    block_index), each block asking its own questions of its own observers."""
    now = now or utcnow()
    cutoff = now - dt.timedelta(minutes=float(experiment.settings.get("active_timeout_min", 30.0)))
    counting = or_(
        Participant.status == "complete",
        and_(Participant.status.not_in(FINISHED_STATUSES), Participant.last_seen_at >= cutoff),
    )
    keys = (Trial.spec["block_index"].as_integer(), Trial.stimulus_id) if by_block else (Trial.stimulus_id,)
    query = (
        select(*keys, func.count(func.distinct(Trial.participant_id)))
        .join(Participant, Participant.id == Trial.participant_id)
        .where(Participant.experiment_id == experiment.id, Trial.is_practice.is_(False),
               Trial.stimulus_id.is_not(None), counting)
        .group_by(*keys)
    )
    if exclude_participant_id is not None:
        query = query.where(Participant.id != exclude_participant_id)
    if by_block:
        return {(int(block), int(sid)): int(n) for block, sid, n in session.execute(query)}
    return {int(sid): int(n) for sid, n in session.execute(query)}


def completed_counts(session: Session, experiment: Experiment) -> dict[int, int]:
    """{stimulus id: participants who completed a non-practice trial on it} (status 'done')."""
    query = (
        select(Trial.stimulus_id, func.count(func.distinct(Trial.participant_id)))
        .join(Participant, Participant.id == Trial.participant_id)
        .where(Participant.experiment_id == experiment.id, Trial.is_practice.is_(False),
               Trial.status == "done", Trial.stimulus_id.is_not(None))  # sentinels and catch trials: no image
        .group_by(Trial.stimulus_id)
    )
    return {int(sid): int(n) for sid, n in session.execute(query)}


def find_returning(session: Session, experiment: Experiment, recruit_id: str,
                   exclude_id: int | None = None) -> Participant | None:
    """The earliest participant of `experiment` with this recruit id who has an assignment."""
    query = (
        select(Participant).where(Participant.experiment_id == experiment.id, Participant.recruit_id == recruit_id,
                                  Participant.id.in_(select(Trial.participant_id)))
        .order_by(Participant.id).limit(1)
    )
    if exclude_id is not None:
        query = query.where(Participant.id != exclude_id)
    return session.scalars(query).first()


def expire_inactive(session: Session, experiment: Experiment, now: dt.datetime | None = None) -> int:
    """Mark unfinished participants not seen for active_timeout_min minutes as 'timed_out';
    returns how many. (They stop counting as observers either way; this makes it visible.)"""
    now = now or utcnow()
    cutoff = now - dt.timedelta(minutes=float(experiment.settings.get("active_timeout_min", 30.0)))
    result = session.execute(
        update(Participant)
        .where(Participant.experiment_id == experiment.id, Participant.status.not_in(FINISHED_STATUSES),
               Participant.last_seen_at < cutoff)
        .values(status="timed_out")
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


def _seen_by_recruit(session: Session, experiment: Experiment, participant: Participant) -> set[int]:
    """Stimuli (and, without allow_both_sides, their pairs' other sides) this recruit id saw
    before in the experiment: a repeat participant gets new images."""
    if not participant.recruit_id:
        return set()
    seen = set(session.scalars(
        select(Trial.stimulus_id).join(Participant, Participant.id == Trial.participant_id)
        .where(Participant.experiment_id == experiment.id, Participant.recruit_id == participant.recruit_id,
               Participant.id != participant.id, Trial.is_practice.is_(False))
    ))
    if seen and not experiment.settings.get("allow_both_sides", False):
        pairs = select(Stimulus.pair_id).where(Stimulus.id.in_(seen))
        seen |= set(session.scalars(select(Stimulus.id).where(Stimulus.experiment_id == experiment.id,
                                                              Stimulus.pair_id.in_(pairs))))
    return seen
