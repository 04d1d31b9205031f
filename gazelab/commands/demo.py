"""`gazelab demo`: the main job on embedded defaults, small and quick, with no server to install.

Stages: render a small paired dataset → a BubbleView experiment on SQLite → the study server
in a background thread → simulated participants (7 per image) through its HTTP API → fixation
maps → export into the dataset → validate → contact sheet → train two saliency predictors (SalGAN,
SalG-GAN's detector) on the training pairs' maps → train GazeShiftNet against SalGAN → evaluate its
edits of the held-out pairs (`gazelab evaluate`) under the detector, which it never saw, and under
SalGAN, each predictor checked against the centre bias and shuffle controls → the HTML report
(`gazelab report`). The models use CPU-sized presets and a random VGG backbone for SalGAN (no
network here for ImageNet weights), chosen explicitly and reported.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import click

# 16 pairs, 4 of them held out (the seeded split puts pairs 1, 5, 11 and 13 in test): the models train
# on 12, and the predictor check and the evaluation score the 4 held-out pairs' 8 images (a one-sided
# Wilcoxon test needs at least 5 to reach p < 0.05 at all).
DEMO_PAIRS = 16
DEMO_SPLITS = "0.75,0,0.25"
DEMO_SIZE = (160, 120)
DEMO_SAMPLES = 16
OBSERVERS = 7  # the SalG-GAN paper's subjects per image
EXPERIMENT = "demo"
PREDICTOR, EDITOR = "salgan", "gazeshiftnet"
JUDGE = "salg_detector"  # a second predictor on the same maps, which the editor never trained against
MODEL_PRESET = "cpu"  # each model's CPU-sized preset: SalGAN 400 steps from scratch, GazeShiftNet 300


@click.command("demo")
@click.option("--out", default="demo_output", show_default=True, type=click.Path(file_okay=False),
              help="Where the demo writes its dataset, study database and contact sheet.")
@click.option("--pairs", "n_pairs", default=DEMO_PAIRS, show_default=True, type=click.IntRange(1))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1))
@click.option("--train-steps", default=None, type=click.IntRange(1),
              help=f"Training steps for each model [default: the {MODEL_PRESET!r} preset's].")
def command(out, n_pairs, workers, train_steps) -> None:
    """Render a small paired dataset, collect simulated attention on it, train a predictor and an editor."""
    from datadir import Dataset
    from datagen.generator_config import GeneratorConfig
    from datagen.pipeline import generate
    from datagen.preview import contact_sheet
    from studyweb.serving import local_study_server

    out = Path(out).resolve()
    dataset_dir = out / "dataset"
    width, height = DEMO_SIZE
    click.echo(f"[1/8] rendering {n_pairs} pairs at {width}x{height}, {DEMO_SAMPLES} samples into {dataset_dir}")
    config = GeneratorConfig.from_options(n_pairs, width=width, height=height, samples=DEMO_SAMPLES, seed=0,
                                          splits=DEMO_SPLITS)
    summary = generate(dataset_dir, config, workers=workers)
    for line in summary.lines():
        click.echo(f"      {line}")
    if summary.failed:
        raise click.ClickException(f"{len(summary.failed)} pair(s) failed to render")

    click.echo(f"[2/8] BubbleView study: {OBSERVERS} simulated observers per image")
    db_path = out / "study.db"
    for stale in out.glob("study.db*"):  # the demo's study starts afresh each run
        stale.unlink()
    db_url = f"sqlite:///{db_path}"
    n_stimuli = _create_experiment(db_url, dataset_dir, n_pairs)
    per_participant = min(n_pairs, 4)
    n_participants = -(-n_stimuli * OBSERVERS // per_participant)
    with local_study_server(db_url, out / "instance") as base_url:
        click.echo(f"      server at {base_url}, participant link {base_url}/s/{EXPERIMENT}")
        _simulate(db_url, base_url, n_participants)

    click.echo("[3/8] fixation maps from the clicks, exported into the dataset")
    _maps_and_export(db_url, dataset_dir)
    click.echo("[4/8] validating the dataset")
    problems = Dataset.open(dataset_dir).validate()
    for problem in problems:
        click.echo(f"      {problem}")
    if problems:
        raise click.ClickException(f"the demo dataset has {len(problems)} problem(s)")
    click.echo("      ok")
    sheet = contact_sheet(dataset_dir, out / "contact_sheet.png", n_pairs=n_pairs)
    click.echo(f"[5/8] contact sheet: {sheet}")
    report = _train_evaluate_report(out, dataset_dir, train_steps)
    click.echo(f"Done. The dataset, with simulated attention maps (source=simulated), is in {dataset_dir};")
    click.echo(f"GazeShiftNet's edits, scored, are in {out / 'evaluation'}; the report is {report}")
    click.echo(f"Look at it: open {sheet}, or run `gazelab dataset info {dataset_dir}`.")
    click.echo("See the study as an admin:")
    click.echo(f"  gazelab study create-admin --db {db_url}")
    click.echo(f"  gazelab study serve --db {db_url}    # then open http://127.0.0.1:5000/admin/")
    click.echo("Run it with real people: put the server behind gunicorn (see the README), and share the")
    click.echo(f"link http://YOUR-HOST/s/{EXPERIMENT} (Prolific adds ?PROLIFIC_PID=...&STUDY_ID=...&SESSION_ID=...).")


def _train_evaluate_report(out: Path, dataset_dir: Path, steps: int | None) -> Path:
    """Stages 6–8: SalGAN and SalG-GAN's detector on the exported maps of the training pairs,
    GazeShiftNet guided by SalGAN, its edits of the held-out pairs evaluated under the detector (a
    predictor it never saw: attention, not optimisation) and under SalGAN, and reported."""
    from gazelab.evaluation import MethodSpec, evaluate
    from analysis.report import build_report
    from models.runs import train

    runs = out / "runs"
    shutil.rmtree(runs, ignore_errors=True)  # the demo trains afresh each run
    echo = lambda line: click.echo(f"      {line}")  # noqa: E731
    common = {"preset": MODEL_PRESET, "overrides": {"backbone_weights": "random"}, "device": "cpu",
              "progress": False, "echo": echo, "steps": steps}
    click.echo(f"[6/8] training the saliency predictors {PREDICTOR} and {JUDGE} on the training pairs' maps "
               f"({MODEL_PRESET} presets; SalGAN with a random VGG16 backbone on purpose: the demo must not depend on "
               "downloading ImageNet weights)")
    predictor = train("predictor", PREDICTOR, dataset_dir, runs / PREDICTOR, **common)
    judge = train("predictor", JUDGE, dataset_dir, runs / JUDGE, **{**common, "overrides": {}})
    click.echo(f"[7/8] training the editor {EDITOR} guided by {PREDICTOR}")
    editor = train("editor", EDITOR, dataset_dir, runs / EDITOR, predictor_ckpt=predictor["checkpoint"], **common)
    splits = set(_split_column(dataset_dir))
    split = "test" if {"test", "train"} <= splits else "all"
    click.echo(f"[8/8] evaluating its edits of split {split}"
               f"{' (no held-out pairs in so small a dataset: in-sample)' if split == 'all' else ' (held out)'} "
               f"under {JUDGE}, which it never saw, and under {PREDICTOR}, and writing the report")
    # The editor runs once; the second evaluation scores the same saved outputs under SalGAN.
    method = MethodSpec(EDITOR, "checkpoint", editor["checkpoint"])
    for name, checkpoint, folder in ((JUDGE, judge["checkpoint"], out / "evaluation"),
                                     (PREDICTOR, predictor["checkpoint"], out / f"evaluation_{PREDICTOR}")):
        shutil.rmtree(folder, ignore_errors=True)  # the demo evaluates afresh each run
        record = evaluate(dataset_dir, [method], folder, predictor=checkpoint, split=split, device="cpu",
                          progress=False, echo=lambda line: None)
        check = record["predictor_check"]
        for line in check.get("verdicts") or [check.get("status", "")]:
            echo(f"predictor check ({name}): {line}")
        echo(f"{EDITOR} under {name}: {_headline(folder)}")
        method = MethodSpec(EDITOR, "outputs", str(out / "evaluation" / "outputs" / EDITOR))
    return build_report(out / "evaluation", out / "report")


def _headline(folder: Path) -> str:
    """The editor's attention gain and edit size from an evaluation's per-image table."""
    import pandas as pd

    table = pd.read_csv(folder / "per_image.csv", dtype={"pair_id": str})
    edits = table[table["method"] == EDITOR]
    parts = [f"{len(edits)} images"]
    if "dp_obj" in edits:
        gained = edits["dp_obj"].dropna()
        parts.append(f"in-mask fixation probability up on {int((gained > 0).sum())} of {len(gained)} "
                     f"(mean Δp_obj {gained.mean():+.3f})")
    parts.append(f"mean |edit − input| {edits['l1_x'].mean():.3f}")
    return ", ".join(parts)


def _split_column(dataset_dir: Path) -> list[str]:
    from datadir import Dataset

    return list(Dataset.open(dataset_dir).pairs["split"])


def _create_experiment(db_url: str, dataset_dir: Path, n_pairs: int) -> int:
    from studyweb.db import open_session
    from studyweb.experiments import create_experiment

    with open_session(db_url) as session:
        experiment = create_experiment(
            session, dataset_dir, EXPERIMENT, title="gazelab demo", per_participant=min(n_pairs, 4),
            observers=OBSERVERS, time_limit_s=10, completion_code="DEMO2026",
        )
        session.commit()
        return len(experiment.stimuli)


def _simulate(db_url: str, base_url: str, n_participants: int) -> None:
    from studyweb.simulate import simulate_participants

    summary = simulate_participants(base_url, EXPERIMENT, n_participants, concurrency=4, drop_rate=0.1,
                                    db_url=db_url)
    click.echo(f"      {summary['complete']} of {n_participants} simulated participants complete, "
               f"{summary['clicks_sent']} clicks in {summary['saves']} saves ({summary['resends']} answers "
               "dropped on purpose and resent)")
    if summary["failures"]:
        raise click.ClickException(f"{len(summary['failures'])} simulated participant(s) failed; "
                                   f"first: {summary['failures'][0]}")


def _maps_and_export(db_url: str, dataset_dir: Path) -> None:
    from studyweb.db import open_session
    from studyweb.experiments import experiment_by_name
    from studyweb.export import export_to_dataset
    from studyweb.maps import build_maps

    with open_session(db_url) as session:
        experiment = experiment_by_name(session, EXPERIMENT)
        built = build_maps(session, experiment)
        session.commit()
        # The demo's study starts afresh each run: its new maps replace the last run's, whatever their counts.
        exported = export_to_dataset(session, experiment, dataset_dir, force=True)
    click.echo(f"      {built['built']} maps from {built['kept_participants']} participants "
               f"({len(built['excluded_participants'])} excluded by QC); {exported['maps']} written into "
               f"{exported['dataset']}")
