"""A pilot of a study design in one call (`gazelab study pilot DESIGN.yaml ...`): what a
researcher runs before paying anyone, and what it predicts of the real study.

A throwaway SQLite study in OUT (pilot.db, instance/), the design's experiment on the dataset,
the study server on a free loopback port, simulated participants for every task type through
the same HTTP API as browsers (`studyweb.simulate`), then QC (its decision stored, as
`gazelab study build-maps` stores it), fixation maps for attention tasks
(OUT/maps/LABEL.npy and .png; the dataset is never written), the tidy CSVs (OUT/csv/, with
responses.csv) and a summary.

Simulated participants fail catch trials, CodeCharts sentinels and the CodeCharts tutorial at
`workload.FAILURE_RATES` (shares of participants; the design's `pilot:` mapping and the command line
override them) by answering wrongly through the real answer routes, so the server decides what
follows (screened out, excluded by QC) as it will in the real study. The summary reads those
decisions back from the exported participants.csv: participants who took part, finished,
were screened out, excluded by QC, and kept; observers per image counting kept participants
only; the trials each finished participant did; and how many real participants to recruit to
reach the observers target after exclusions, at this pilot's rate of loss.

Without --participants the pilot runs as many as the target needs (`workload.participants_needed`,
more for the expected losses), then more in waves while some image still wants observers, at
most MAX_DEFAULT_PARTICIPANTS; those who arrive once the study is full are refused by the server
and counted as such (not as failures).

Minutes per participant come from the design's timing where it has one (BubbleView's time
limit, CodeCharts' screens, the inter-trial interval) plus an assumed time to answer, and for
questionnaires from an assumed time per trial and question (`Task.seconds_per_trial`), plus an
assumed time per break or between-blocks screen (PAUSE_S); they are an estimate to plan payment
with. Everything a study's task decides (what there is to fail, what it costs, what wants
observers) is its task's to say (`studyweb.tasks`).
"""
from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

from sqlalchemy import select

from datadir.maps import save_map
from studyweb.assignment import observer_counts
from studyweb.db.revisions import open_session
from studyweb.db.schema import Trial
from studyweb.designs import create_from_design, load_design
from studyweb.experiments import experiment_by_name
from studyweb.export import export_csv
from studyweb.maps import build_maps, current_maps
from studyweb.qc import decide_qc
from studyweb.serving import local_study_server
from studyweb.simulate import simulate_participants
from studyweb.tasks import task_named
from studyweb.workload import (FAILURE_RATES, catch_count, has_catch, participants_needed, per_participant,
                               workload_warnings)

log = logging.getLogger(__name__)
EXPERIMENT = "pilot"
MAX_DEFAULT_PARTICIPANTS = 200
PAUSE_S = 15.0  # assumed seconds on a break or between-blocks screen


def run_pilot(design_path, dataset_dir, out_dir, methods: dict[str, str] | None = None,
              participants: int | None = None, seed: int = 0, failure_rates: dict[str, float] | None = None) -> dict:
    """Pilot the design; returns the summary (see the module doc). `participants` defaults to
    what reaches every image's observers (module doc). failure_rates: {catch_failure_rate,
    sentinel_failure_rate, tutorial_failure_rate} over the design's and FAILURE_RATES (None
    values ignored). ValueError / DesignError for a design or dataset that cannot run; OUT's
    earlier pilot is replaced."""
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    design = load_design(design_path, methods)  # a bad design leaves the last pilot as it was
    rates = {**FAILURE_RATES, **(design.values.get("pilot") or {}),
             **{k: v for k, v in (failure_rates or {}).items() if v is not None}}
    unknown = sorted(set(rates) - set(FAILURE_RATES))
    if unknown:
        raise ValueError(f"unknown failure rates {unknown}; expected some of {sorted(FAILURE_RATES)}")
    for stale in out.glob("pilot.db*"):
        stale.unlink()
    url = f"sqlite:///{out / 'pilot.db'}"
    with open_session(url) as session:
        experiment = create_from_design(session, design, dataset_dir, EXPERIMENT)
        session.commit()
        n_pairs = len({s.pair_id for s in experiment.stimuli})
        needed = participants_needed(design.values, n_pairs)
        k = min(per_participant(design.values, n_pairs), n_pairs)
        has_scenes = any((Path(experiment.dataset_path) / "scenes").glob("*.json"))
        loss = _expected_loss(experiment, design.values, k, rates)
        kinds = _failure_kinds(experiment, design.values)
        rates_used = {kind: rates[f"{kind}_failure_rate"] if kind in kinds else 0.0
                      for kind in ("catch", "sentinel", "tutorial")}
    simulated = {"results": [], "failures": []}
    with local_study_server(url, out / "instance") as base_url:
        batch = participants or min(MAX_DEFAULT_PARTICIPANTS, math.ceil(needed / (1 - loss)))
        while batch > 0:
            run = _simulate(base_url, url, batch, len(simulated["results"]) + len(simulated["failures"]), seed,
                            rates_used, has_scenes)
            simulated["results"] += run["results"]
            simulated["failures"] += run["failures"]
            ran = len(simulated["results"]) + len(simulated["failures"])
            if participants or run["failures"] or ran >= MAX_DEFAULT_PARTICIPANTS:
                break
            with open_session(url) as session:
                missing, per_person = _still_wanted(session, design.values, k)
            batch = min(MAX_DEFAULT_PARTICIPANTS - ran, math.ceil(missing / per_person / (1 - loss)))
    with open_session(url) as session:
        summary = _summarise(session, design, simulated, out, kinds)
    capped = not participants and summary["participants"] >= MAX_DEFAULT_PARTICIPANTS and \
        summary["observers"]["min"] < summary["observers"]["wanted"]
    usable_share = summary["kept"] / summary["took_part"] if summary["took_part"] else 0.0
    summary.update(needed=needed, capped=capped, failure_rates=rates,
                   recruit=math.ceil(needed / usable_share) if usable_share else None,
                   warnings=workload_warnings(design.values, n_pairs))
    return summary


def _simulate(base_url: str, db_url: str, n: int, first: int, seed: int, rates: dict, has_scenes: bool) -> dict:
    return simulate_participants(base_url, EXPERIMENT, n, concurrency=4, drop_rate=0.1, seed=seed, first=first,
                                 model="popout" if has_scenes else "centre", db_url=db_url, failure_rates=rates)


def _failure_kinds(experiment, design: dict) -> list[str]:
    """What this study gives participants to fail: catch trials (a block whose task has them,
    `Task.has_catch`), and what its task has (`Task.failure_kinds`: CodeCharts' sentinels and
    tutorial, the tutorial unless turned off)."""
    catch = ["catch"] if design.get("catch") and any(has_catch(b) for b in design["blocks"]) else []
    return catch + task_named(experiment.task).failure_kinds(experiment.settings)


def _expected_loss(experiment, design: dict, k: int, rates: dict) -> float:
    """The share of participants the failure rates should cost (screened out or excluded), to
    size the pilot: catch failures where failing every catch trial passes catch.max_failures,
    and the failures the task excludes for (`Task.excluding_failures`: a CodeCharts tutorial's;
    sentinel misses after it exclude no one by themselves). At most 0.9."""
    kept = 1.0
    catch = design.get("catch")
    if catch:
        catches = sum(catch_count(k, catch["every"]) for b in design["blocks"] if has_catch(b))
        if catches > catch["max_failures"]:
            kept *= 1 - rates["catch_failure_rate"]
    for kind in task_named(experiment.task).excluding_failures(experiment.settings):
        kept *= 1 - rates[f"{kind}_failure_rate"]
    return min(0.9, 1 - kept)


def _still_wanted(session, design: dict, k: int) -> tuple[int, int]:
    """(observations still wanted: the observers every image lacks, summed; the observations one
    participant adds: K per block or condition)."""
    experiment = experiment_by_name(session, EXPERIMENT)
    study = task_named(experiment.task)
    counts = observer_counts(session, experiment, by_block=study.by_block)
    wanted = int(design["observers"])
    missing = sum(max(0, wanted - counts.get(key, 0)) for key in study.units(experiment))
    blocks = len(design["conditions"]["versions"]) if design.get("conditions") else len(design["blocks"])
    return missing, max(1, k * blocks)


def _summarise(session, design, simulated: dict, out: Path, kinds: list[str]) -> dict:
    """QC decided and stored, the CSVs written, and the summary (module doc) read back from
    participants.csv and the kept participants' trials."""
    experiment = experiment_by_name(session, EXPERIMENT)
    study = task_named(experiment.task)
    maps = _maps(session, experiment, out) if study.makes_maps else None
    decide_qc(session, experiment)  # stored on the participants, as the CSVs report it
    session.commit()
    files = export_csv(session, experiment, out / "csv")
    with open(files["participants"], encoding="utf-8", newline="") as handle:
        people = list(csv.DictReader(handle))
    took_part = [p for p in people if p["status"] != "consent"]  # the refused stay at the consent page
    kept = {int(p["participant_id"]) for p in people if p["status"] == "complete" and p["qc_status"] == "kept"}
    # Screened out by the server during the study, or excluded by QC after it (not both counted).
    lost = [p for p in took_part if p["status"] == "screened_out" or p["qc_status"] in ("excluded", "screened_out")]
    units = study.units(experiment)
    viewers: dict = {}
    for participant, stimulus_id, spec in session.execute(
            select(Trial.participant_id, Trial.stimulus_id, Trial.spec)
            .where(Trial.participant_id.in_(kept), Trial.is_practice.is_(False), Trial.status == "done",
                   Trial.stimulus_id.is_not(None))):
        key = study.observer_key(stimulus_id, spec or {})
        viewers.setdefault(key, set()).add(participant)
    observers = [len(viewers.get(key, ())) for key in units] or [0]
    finished = [int(p["participant_id"]) for p in people if p["status"] == "complete"]
    workload = _workload(session, finished)
    main = [n for n, _, _ in workload.values()] or [0]
    typical = max(workload.values(), key=lambda w: w[1], default=(0, 0, 0))
    results = simulated["results"]
    return {
        "task": experiment.task, "participants": len(results) + len(simulated["failures"]),
        "took_part": len(took_part), "complete": len(finished),
        "screened_out": sum(p["status"] == "screened_out" for p in people),
        "refused": sum(r["status"] == "refused" for r in results), "failures": simulated["failures"],
        "excluded": sorted(int(p["participant_id"]) for p in people
                           if p["qc_status"] == "excluded" and p["status"] != "screened_out"),
        "kept": len(kept), "lost": len(lost),
        "exclusion_reasons": [f"{p['status']}: {p['qc_reason']}" for p in lost if p["qc_reason"]],
        "simulated_failures": {kind: sum(kind in r.get("fail", ()) for r in results if r["status"] != "refused")
                               for kind in kinds},
        "observers": {"min": min(observers), "mean": sum(observers) / len(observers), "max": max(observers),
                      "wanted": int((experiment.settings.get("design") or experiment.settings)["observers"]),
                      "images": len({key[1] if isinstance(key, tuple) else key for key in units}),
                      "blocks": len({key[0] for key in units if isinstance(key, tuple)}) or 1},
        "trials_per_participant": sum(main) / len(main), "trials_range": [min(main), max(main)],
        "practice_trials": typical[1] - typical[0],
        "minutes_per_participant": _minutes(experiment, design, typical[1], typical[2]),
        "maps": maps, "csv": {name: str(path) for name, path in files.items()}, "database": str(out / "pilot.db"),
    }


def _workload(session, participant_ids: list[int]) -> dict[int, tuple[int, int, int]]:
    """{participant: (main trials, all trials, break and block screens)} of those participants."""
    out: dict[int, list[int]] = {p: [0, 0, 0] for p in participant_ids}
    if not participant_ids:
        return {}
    rows = session.execute(select(Trial.participant_id, Trial.is_practice, Trial.spec)
                           .where(Trial.participant_id.in_(participant_ids)))
    for participant, practice, spec in rows:
        out[participant][0] += not practice
        out[participant][1] += 1
        out[participant][2] += bool(((spec or {}).get("pace") or {}).get("screen"))
    return {p: tuple(counts) for p, counts in out.items()}


def _minutes(experiment, design, trials: int, pauses: int) -> float:
    """The expected minutes one participant spends on `trials` trials (practice included) with
    `pauses` break or block screens (module doc; `Task.seconds_per_trial`)."""
    per_trial = task_named(experiment.task).seconds_per_trial(experiment.settings)
    iti_s = (design.values.get("iti_ms") or 0) / 1000
    return round((trials * per_trial + max(0, trials - 1) * iti_s + pauses * PAUSE_S) / 60, 1)


def _maps(session, experiment, out: Path) -> dict:
    """Build the maps in the pilot's database and save each as OUT/maps/LABEL.npy and .png."""
    summary = build_maps(session, experiment)
    session.commit()
    folder = out / "maps"
    folder.mkdir(exist_ok=True)
    stimuli = {s.id: s for s in experiment.stimuli}
    for stimulus_id, fixation_map in current_maps(session, experiment).items():
        density = fixation_map.density_array()
        label = stimuli[stimulus_id].label
        save_map(folder / f"{label}.npy", density)
        save_map(folder / f"{label}.png", density)
    return {"built": summary["built"], "empty": summary["empty"], "folder": str(folder)}
