"""How much a design asks of each participant, and how many participants it needs (pure
functions of the checked design: no database, no Flask). `studyweb.assignment` builds the trials
by these rules, `studyweb.designs` checks a design against them, `studyweb.pilot` sizes pilots.

Even workloads: every participant of a design does the same work, K = per_participant units
in each block ('all': one per selected pair), so everyone paid the same does the same amount.
A participant sees at most one version of a pair per block, so K can be at most the number of
selected pairs; a larger K is an error naming both numbers (`check_workload`), never silently
reduced. The assignment gives the units with the fewest observers first and, once fewer than K
are still short of the observers target, tops the workload up with the least observed of the
full ones (`assignment.choose_stimuli`, top_up): the last participants do a full session and a
few images get one observer more than the target, rather than someone doing 4 trials.
`participants_needed` is then ceil(units × observers / K) for the largest block.

Catch trials (design `catch`: one in `every`): a block whose task has a known answer
(`Task.has_catch`: choose_best, rate on the fidelity scale) gets
round(n / (every − 1)) of them among its n units, at least one (`catch_count`), each in a
random gap of its own stretch of the block, never two in a row (`catch_gaps`). A block shorter
than every − 1 units still gets one, and a block whose task has no catch trial gets none:
both are warnings naming the block (`workload_warnings`), logged when the experiment is
created and shown in the pilot's summary, as is a design whose participants get no more catch
trials than catch.max_failures allows them to fail (no one could be excluded).

Pacing (design keys `break_after`, `between_blocks`, `iti_ms`; `pace_trials`): stored on each
trial as spec["pace"] = {iti_ms, screen}: the task pages (static/pacing.js) show a mid-grey
full-window screen for iti_ms before every main trial but the first trial of all (Gatys et
al.'s 2-s grey inter-trial screen, papers/002…, §5; practice and tutorial trials go at their
own pace), and before a main trial a `screen` {kind, title, text} with a
Continue button: kind 'block' (the design's between_blocks text) where a new block starts,
kind 'break' every break_after main trials (not where a block screen already pauses).
"""
from __future__ import annotations

import math

import numpy as np

from studyweb.design_yaml import DesignError
from studyweb.tasks import task_named

BREAK_TITLE = "Time for a short break"
# Shares of simulated participants who fail (`studyweb.simulate.failing`) in a pilot
# (`studyweb.pilot`); the design's `pilot: {catch_failure_rate: ...}` and --catch-failure-rate etc.
# override them.
# - catch: simple attention checks fail a few per cent of Prolific participants and several times
#   more of MTurk workers without quality filters (Peer, Brandimarte, Samat & Acquisti 2017, J. Exp.
#   Soc. Psychol. 70:153-163; Peer, Rothschild, Gordon, Evernden & Damer 2022, Behav. Res. Methods
#   54:1643-1662; Douglas, Ewell & Brauer 2023, PLOS ONE): 5%, a Prolific-like sample; raise it
#   to 0.10-0.30 for MTurk.
# - sentinel: CodeCharts' sentinels (TurkEyes: Newman et al., CHI 2020; papers/004…, §4.3, which
#   cites it) are an attention check of the same kind: 5%, assumed alike.
# - tutorial: CodeCharts' gated tutorial (at most 1 invalid code and no missed sentinel, the gate
#   of turkeyes/codecharts' custom.js) is stricter than one check: 10%, an assumption to replace
#   with a small real pilot's rate.
FAILURE_RATES = {"catch_failure_rate": 0.05, "sentinel_failure_rate": 0.05, "tutorial_failure_rate": 0.10}


def per_participant(design: dict, n_pairs: int) -> int:
    """K, the units a participant gets in each block: the design's per_participant, or every
    pair ('all' or unset)."""
    value = design.get("per_participant")
    return n_pairs if value in (None, "all") else int(value)


def check_workload(design: dict, n_pairs: int, source: str = "<design>") -> int:
    """K (`per_participant`); DesignError naming both numbers when the `n_pairs` selected pairs
    cannot give every participant K units per block."""
    k = per_participant(design, n_pairs)
    if k > n_pairs:
        raise DesignError(f"{source}: per_participant: {k} images per block and participant, but stimuli selects"
                          f" {n_pairs} pair(s) and a participant sees at most one version of a pair per block;"
                          f" set per_participant to at most {n_pairs} or select more pairs")
    return k


def block_units(design: dict, n_pairs: int) -> list[tuple[str, int]]:
    """(block name, units its trials are counted on) per block: a pair (choose_best, an
    attention task), one version per pair, or every method's version of every pair
    (image: methods)."""
    n_methods = len(design.get("methods") or {})
    return [(block["name"], n_pairs * (n_methods if block.get("image") == "methods" else 1))
            for block in design["blocks"]]


def participants_needed(design: dict, n_pairs: int) -> int:
    """Participants who finish (and count) that give every unit of every block its observers
    when each does K units per block: ceil(units × observers / K) of the largest block."""
    k = max(1, min(per_participant(design, n_pairs), n_pairs))
    return max(-(-units * int(design["observers"]) // k) for _, units in block_units(design, n_pairs))


def has_catch(block: dict) -> bool:
    """Whether a design block's task has catch trials (a known answer: `Task.has_catch`)."""
    return task_named(block["task"]).has_catch(block)


def catch_count(n_units: int, every: int) -> int:
    """Catch trials among a block's n_units (one trial in `every`): round(n / (every − 1)), at
    least one; none in an empty block."""
    return max(1, math.floor(n_units / (every - 1) + 0.5)) if n_units else 0


def catch_gaps(n_units: int, every: int, rng: np.random.Generator) -> list[int]:
    """Where a block's catch trials go: gap g is before unit g (g = n_units: after the last),
    one random gap from each of `catch_count` equal stretches of the n_units + 1 gaps, so two
    are never adjacent. Ascending."""
    n_catch = catch_count(n_units, every)
    strata = np.array_split(np.arange(n_units + 1), n_catch) if n_catch else []
    return [int(s[int(rng.integers(len(s)))]) for s in strata]


def workload_warnings(design: dict, n_pairs: int) -> list[str]:
    """What a checked questionnaire or attention design does that its author may not expect
    (module doc): blocks without catch trials in a design that asks for them, blocks too
    short for catch.every, and catch trials too few for max_failures to exclude anyone."""
    catch = design.get("catch")
    if not catch:
        return []
    k = min(per_participant(design, n_pairs), n_pairs)
    warnings = []
    for block in design["blocks"]:
        if not has_catch(block):
            warnings.append(f"block {block['name']!r} ({task_named(block['task']).block_label(block)}) has no"
                            " catch trials: its task has no known answer")
        elif k < catch["every"] - 1:
            warnings.append(f"block {block['name']!r} has {k} trial(s) per participant, fewer than catch.every − 1 ="
                            f" {catch['every'] - 1}: it gets one catch trial all the same (1 in {k + 1})")
    catches = sum(catch_count(k, catch["every"]) for block in design["blocks"] if has_catch(block))
    if catches and catches <= catch["max_failures"]:
        warnings.append(f"catch: a participant gets {catches} catch trial(s) and may fail {catch['max_failures']}"
                        " (max_failures), so catch trials exclude no one; lower max_failures or catch.every")
    return warnings


def main_trials(design: dict, n_pairs: int, sentinel_every: int | None = None) -> int:
    """The main (not practice or tutorial) trials of one participant: K per block (per condition
    in an attention design with conditions), the catch trials, and for CodeCharts the
    sentinels (round(images / (sentinel_every − 1)), `codecharts.trial_plan`)."""
    k = min(per_participant(design, n_pairs), n_pairs)
    conditions = design.get("conditions")
    if conditions:
        images = k * len(conditions["versions"])
        return images + (math.floor(images / (sentinel_every - 1) + 0.5) if sentinel_every else 0)
    catch = design.get("catch")
    total = 0
    for block in design["blocks"]:
        total += k + (catch_count(k, catch["every"]) if catch and has_catch(block) else 0)
        if sentinel_every:
            total += math.floor(k / (sentinel_every - 1) + 0.5)
    return total


def pace_trials(trials: list, design: dict | None) -> list:
    """Set spec["pace"] on the trials (Trial objects in order, practice first) where the
    design's break_after, between_blocks or iti_ms ask for a pause (module doc); returns them."""
    design = design or {}
    iti_ms, every, between = design.get("iti_ms"), design.get("break_after"), design.get("between_blocks")
    if not (iti_ms or every or between):
        return trials
    total = sum(1 for t in trials if not t.is_practice)
    n_blocks = _block_count(design)
    number, block = 0, None
    for i, trial in enumerate(trials):
        pace: dict = {"iti_ms": int(iti_ms)} if iti_ms and i and not trial.is_practice else {}
        if not trial.is_practice:
            number += 1
            previous, block = block, _block_of(trial, block)
            if between and previous is not None and block != previous:
                pace["screen"] = {"kind": "block", "title": f"Part {previous + 1} of {n_blocks} done",
                                  "text": between}
            elif every and number > 1 and (number - 1) % int(every) == 0:
                pace["screen"] = {"kind": "break", "title": BREAK_TITLE,
                                  "text": f"You have done {number - 1} of {total} trials. Rest your eyes for a"
                                          " moment, then press Continue."}
        if pace:
            trial.spec = {**(trial.spec or {}), "pace": pace}
    return trials


def _block_of(trial, previous: int | None) -> int | None:
    """A main trial's block index (a questionnaire's design block, an attention design's
    Latin-square block); a trial without one (a CodeCharts sentinel) stays in the one before."""
    spec = trial.spec or {}
    block = spec.get("block_index", spec.get("block") if not isinstance(spec.get("block"), str) else None)
    return previous if block is None else int(block)


def _block_count(design: dict) -> int:
    conditions = design.get("conditions")
    return len(conditions["versions"]) if conditions else len(design.get("blocks") or [])
