"""`gazelab study ...`: the attention-study server's database, experiments, maps and exports.

Every command takes `--db URL` (default GAZELAB_DATABASE_URL, else instance/gazelab.db) and
migrates that database to the newest schema first, so a fresh database needs no extra step.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

DB_OPTION = click.option("--db", "db_url", default=None, metavar="URL",
                         help="SQLAlchemy database URL [default: GAZELAB_DATABASE_URL or instance/gazelab.db].")


@click.group("study")
def group() -> None:
    """Run attention studies (BubbleView, CodeCharts) and questionnaires; fixation maps, pilots, exports."""


@group.command("init-db")
@DB_OPTION
def init_db(db_url: str | None) -> None:
    """Create the database or migrate it to the newest schema."""
    from studyweb.db.revisions import current_revision

    url = _url(db_url)
    _migrate(url)
    click.echo(f"database at revision {current_revision(url)}: {_safe(url)}")


@group.command("create-admin")
@click.option("--username", default="admin", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@DB_OPTION
def create_admin(username: str, password_stdin: bool, db_url: str | None) -> None:
    """Add an administrator (or set an existing one's password); the password is stored hashed."""
    from sqlalchemy import select

    from studyweb.admin.sessions import end_all_sessions
    from studyweb.db import Admin

    if password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise ValueError(f"the password must have at least 8 characters, got {len(password)}")
    with _session(db_url) as session:
        admin = session.scalar(select(Admin).where(Admin.username == username))
        created = admin is None
        if created:
            admin = Admin(username=username)
            session.add(admin)
        admin.set_password(password)
        session.flush()
        ended = 0 if created else end_all_sessions(session, admin.id)  # the old password's logins end
        session.commit()
    click.echo(f"admin {username!r} {'created' if created else 'password changed'}"
               + (f"; {ended} session(s) logged out" if ended else ""))


METHODS_OPTION = click.option(
    "--methods", "method_dirs", multiple=True, metavar="NAME=DIR",
    help="A method's outputs (<pair_id>.png; DIR relative to the current directory), adding to or overriding"
         " the design's methods; repeatable.")


@group.command("create-experiment")
@click.option("--dataset", "dataset_dir", required=True, type=click.Path(file_okay=False), help="Dataset directory.")
@click.option("--name", required=True, help="Slug used in the link /s/NAME (a-z 0-9 _ -).")
@click.option("--from", "design_path", type=click.Path(dir_okay=False),
              help="A study design in YAML (studyweb/examples/); the task and its settings come from it.")
@METHODS_OPTION
@click.option("--task", default="bubbleview", show_default=True, type=click.Choice(["bubbleview", "codecharts"]))
@click.option("--title", default="", help="Title shown to participants [default: the name].")
@click.option("--description", default="")
@click.option("--per-participant", type=int, help="Stimuli per participant (K).")
@click.option("--observers", type=int, help="Observers wanted per stimulus (M).")
@click.option("--sides", default=None, help="Sides of each pair to show, e.g. x,y or x.")
@click.option("--allow-both-sides", is_flag=True, default=None, help="Let one participant see both sides of a pair.")
@click.option("--allow-repeat", is_flag=True, default=None, help="Let a returning recruit id take part again.")
@click.option("--mode", type=click.Choice(["free", "describe"]), default=None)
@click.option("--blur-sigma-frac", type=float, help="Blur σ as a fraction of the image width [0.03].")
@click.option("--bubble-radius-frac", type=float, help="Bubble radius as a fraction of the image width [0.03].")
@click.option("--blur-sigma", type=float, help="Blur σ in image pixels (overrides --blur-sigma-frac).")
@click.option("--bubble-radius", type=float, help="Bubble radius in image pixels (overrides --bubble-radius-frac).")
@click.option("--display-width", type=float, help="CSS width images are shown at, shrunk to fit the window [1000].")
@click.option("--max-upscale", type=float, help="Never enlarge an image more than this [2].")
@click.option("--time-limit", type=float, help="Seconds per image [10].")
@click.option("--max-clicks", type=int, help="End a trial after this many clicks.")
@click.option("--px-per-degree", type=float, help="Display pixels per degree (map σ = 1°).")
@click.option("--image-ms", default=None, metavar="MS[,MS...]",
              help="CodeCharts: image duration(s) in ms, one drawn per trial [2000].")
@click.option("--fixation-ms", type=click.IntRange(1), help="CodeCharts: fixation cross, ms [750].")
@click.option("--chart-ms", type=click.IntRange(1), help="CodeCharts: code chart, ms [400].")
@click.option("--sentinel-every", type=click.IntRange(2), help="CodeCharts: about one sentinel in this many trials [7].")
@click.option("--no-tutorial", is_flag=True, default=None, help="CodeCharts: no gated tutorial.")
@click.option("--completion-code", default=None)
@click.option("--completion-url", default=None, help="Send participants here at the end (e.g. Prolific).")
@click.option("--exclude-workers-of", "exclude_workers_of", multiple=True, metavar="EXPERIMENT",
              help="Refuse recruit ids that took part in EXPERIMENT (one worker, one experiment of a study;"
                   " both ways); repeatable, adds to a design's exclude_workers_of.")
@click.option("--base-url", default="http://127.0.0.1:5000", show_default=True, help="For the printed link.")
@DB_OPTION
def create_experiment(dataset_dir, name, design_path, method_dirs, task, title, description, exclude_workers_of,
                      base_url, db_url, **options) -> None:
    """Create an experiment from a dataset's pairs (or from a design, --from) and print the link."""
    from studyweb.experiments import create_experiment as create

    if name in exclude_workers_of:
        raise click.BadParameter(f"{name!r} is the experiment being created", param_hint="--exclude-workers-of")
    if design_path:
        given = sorted(k.replace("_", "-") for k, v in options.items() if v is not None)
        if given or task != "bubbleview" or title or description:
            raise click.UsageError(f"--from takes the task and its settings from the design; drop"
                                   f" {', '.join('--' + g for g in given) or '--task/--title/--description'}")
        _create_from_design(design_path, dataset_dir, name, _method_dirs(method_dirs), exclude_workers_of, base_url,
                            db_url)
        return
    if method_dirs:
        raise click.UsageError("--methods goes with --from DESIGN.yaml")

    settings = {
        "per_participant": options["per_participant"], "observers": options["observers"],
        "sides": options["sides"], "allow_both_sides": options["allow_both_sides"],
        "allow_repeat": options["allow_repeat"], "mode": options["mode"],
        "blur_sigma_frac": options["blur_sigma_frac"], "bubble_radius_frac": options["bubble_radius_frac"],
        "blur_sigma_px": options["blur_sigma"], "bubble_radius_px": options["bubble_radius"],
        "display_width_px": options["display_width"], "max_upscale": options["max_upscale"],
        "time_limit_s": options["time_limit"], "max_clicks": options["max_clicks"],
        "px_per_degree": options["px_per_degree"], "completion_code": options["completion_code"],
        "completion_url": options["completion_url"], "exclude_workers_of": list(exclude_workers_of) or None,
    }
    codecharts = {"image_ms": _durations(options["image_ms"]), "fixation_ms": options["fixation_ms"],
                  "chart_ms": options["chart_ms"], "sentinel_every": options["sentinel_every"],
                  "tutorial": False if options["no_tutorial"] else None}
    codecharts = {k: v for k, v in codecharts.items() if v is not None}
    if codecharts:
        if task != "codecharts":
            options_given = ", ".join(f"--{k.replace('_', '-')}" for k in sorted(codecharts))
            raise click.UsageError(f"{options_given}: only with --task codecharts")
        settings["codecharts"] = codecharts
    with _session(db_url) as session:
        experiment = create(session, dataset_dir, name, task, title=title, description=description,
                            **{k: v for k, v in settings.items() if v is not None})
        session.commit()
        n_stimuli = len(experiment.stimuli)
        code = experiment.settings.get("completion_code")
        related = _exclusions(session, experiment)
    click.echo(f"experiment {name!r}: {n_stimuli} stimuli" + (f", completion code {code}" if code else ""))
    _echo_exclusions(related)
    click.echo(f"participant link: {base_url.rstrip('/')}/s/{name}")


def _create_from_design(design_path, dataset_dir, name, methods, exclude_workers_of, base_url, db_url) -> None:
    from studyweb.designs import create_from_design
    from studyweb.settings import experiment_names

    with _session(db_url) as session:
        experiment = create_from_design(session, design_path, dataset_dir, name, methods)
        if exclude_workers_of:  # added to the design's own list
            listed = experiment.settings.get("exclude_workers_of") or []
            experiment.settings = {**experiment.settings, "exclude_workers_of": experiment_names(
                "--exclude-workers-of", [*listed, *exclude_workers_of])}
        session.commit()
        n_stimuli, task = len(experiment.stimuli), experiment.task
        code = experiment.settings.get("completion_code")
        related = _exclusions(session, experiment)
    click.echo(f"experiment {name!r} ({task}, from {design_path}): {n_stimuli} images"
               + (f", completion code {code}" if code else ""))
    _echo_exclusions(related)
    click.echo(f"participant link: {base_url.rstrip('/')}/s/{name}")


def _exclusions(session, experiment) -> list[tuple[str, bool]]:
    """(name, exists) of each experiment whose workers the new one refuses."""
    from sqlalchemy import select

    from studyweb.db import Experiment
    from studyweb.experiments import related_experiments

    related = related_experiments(session, experiment)
    known = set(session.scalars(select(Experiment.name).where(Experiment.name.in_(list(related)))))
    return [(name, name in known) for name in related]


def _echo_exclusions(related: list[tuple[str, bool]]) -> None:
    if related:
        click.echo(f"refuses recruit ids that took part in {', '.join(name for name, _ in related)}"
                   " (and those experiments refuse this one's)")
    for name, exists in related:
        if not exists:
            click.echo(f"note: no experiment named {name!r} yet; its workers are refused once it exists", err=True)


def _method_dirs(values) -> dict[str, str]:
    """--methods NAME=DIR ... → {name: dir}; a bad one is one line and exit 2."""
    methods = {}
    for value in values:
        name, sep, folder = value.partition("=")
        if not sep or not name.strip() or not folder.strip():
            raise click.BadParameter(f"expected NAME=DIR, got {value!r}", param_hint="--methods")
        methods[name.strip()] = folder.strip()
    return methods


def _durations(value: str | None) -> list[int] | None:
    """--image-ms 1000,2000 → [1000, 2000]; a bad list is one line and exit 2."""
    if value is None:
        return None
    try:
        durations = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        durations = []
    if not durations or min(durations) < 1:
        raise click.BadParameter(f"expected durations in ms like 2000 or 1000,2000; got {value!r}",
                                 param_hint="--image-ms")
    return durations


@group.command("build-maps")
@click.argument("experiment")
@click.option("--sigma", type=float, default=None, help="Map σ in pixels [25 px per 640 px of width].")
@DB_OPTION
def build_maps(experiment: str, sigma: float | None, db_url: str | None) -> None:
    """Build the fixation maps of EXPERIMENT from the clicks that pass QC."""
    from studyweb.maps import build_maps as build

    with _session(db_url) as session:
        summary = build(session, _experiment(session, experiment), sigma_px=sigma, progress=True)
        session.commit()
    click.echo(f"maps: {summary['built']} built, {summary['skipped']} unchanged, {summary['empty']} without clicks;"
               f" {summary['kept_participants']} participants kept, {len(summary['excluded_participants'])} excluded")
    for flag in summary["flags"]:
        who = f"participant {flag['participant_id']}" if flag["participant_id"] is not None else "experiment"
        click.echo(f"  qc {'EXCLUDED ' if flag['excluded'] else ''}{who}: {flag['reason']}")


@group.command("export")
@click.argument("experiment")
@click.option("--to", "dataset_dir", type=click.Path(file_okay=False), help="Write maps into this dataset.")
@click.option("--csv", "csv_dir", type=click.Path(file_okay=False), help="Write tidy CSVs into this directory.")
@click.option("--force", is_flag=True, help="With --to: replace dataset maps that have more observers than the new.")
@DB_OPTION
def export(experiment: str, dataset_dir: str | None, csv_dir: str | None, force: bool, db_url: str | None) -> None:
    """Export EXPERIMENT's maps into a dataset (--to) and/or its data as CSVs (--csv).

    A map in the dataset with more observers (pairs.csv n_observers) than the new one is not
    replaced without --force; then nothing is written and the command exits with status 2."""
    from studyweb.export import export_csv, export_to_dataset

    if not dataset_dir and not csv_dir:
        raise ValueError("say where to export: --to DATASET and/or --csv DIR")
    with _session(db_url) as session:
        exp = _experiment(session, experiment)
        if dataset_dir:
            summary = export_to_dataset(session, exp, dataset_dir, force=force)
            click.echo(f"wrote {summary['maps']} maps for {summary['pairs']} pairs into {summary['dataset']}")
            for pair, side, old, new in summary["replaced_fewer"]:
                click.echo(f"  replaced {pair}_{side}: {old} observers → {new} (--force)")
        if csv_dir:
            paths = export_csv(session, exp, csv_dir)
            click.echo(f"wrote {', '.join(p.name for p in paths.values())} into {csv_dir}")


@group.command("status")
@click.argument("experiment")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@DB_OPTION
def status(experiment: str, as_json: bool, db_url: str | None) -> None:
    """Progress of EXPERIMENT: participants by status and source, observers per stimulus, maps."""
    from studyweb.experiments import experiment_status

    with _session(db_url) as session:
        report = experiment_status(session, _experiment(session, experiment))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    obs = report["observers"]
    click.echo(f"{report['name']} ({report['status']}): {report['stimuli']} stimuli, {obs['wanted']} observers wanted")
    click.echo("participants: " + (", ".join(f"{k} {v}" for k, v in report["participants"].items()) or "none"))
    click.echo("sources: " + (", ".join(f"{k} {v}" for k, v in report["sources"].items()) or "none"))
    click.echo(f"completed observers per stimulus: min {obs['min']}, mean {obs['mean']:.1f}, max {obs['max']};"
               f" {obs['full']} of {report['stimuli']} stimuli full")
    click.echo(f"current maps: {report['maps']}")


def _screen_size(ctx, param, value: str | None) -> tuple[int, int] | None:
    """--screen WxH → (width, height) in pixels."""
    import re

    if value is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", value)
    if not match or min(int(match[1]), int(match[2])) == 0:
        raise click.BadParameter(f"expected the screen size as WxH in pixels (e.g. 1920x1080), got {value!r}",
                                 ctx, param)
    return int(match[1]), int(match[2])


def _image_rect(ctx, param, value: str | None) -> tuple[float, ...] | None:
    """--image-rect X,Y,W,H → four floats (screen pixels)."""
    import math

    if value is None:
        return None
    try:
        numbers = tuple(float(part) for part in value.split(","))
    except ValueError:
        numbers = ()
    if len(numbers) != 4 or not all(math.isfinite(n) for n in numbers):
        raise click.BadParameter(f"expected X,Y,W,H (4 numbers, screen pixels, e.g. 320,140,1280,800), got {value!r}",
                                 ctx, param)
    return numbers


@group.command("import-fixations")
@click.argument("experiment")
@click.option("--csv", "csv_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Fixations: image, participant, x, y, t_ms [, duration_ms]; UTF-8 with a header row.")
@click.option("--screen", callback=_screen_size, metavar="WxH",
              help="Screen size in pixels: x, y are screen pixels (needs --image-rect).")
@click.option("--image-rect", callback=_image_rect, metavar="X,Y,W,H",
              help="Where each image was drawn on the screen, in screen pixels (needs --screen).")
@click.option("--replace", is_flag=True, help="Replace participants of this file that were imported before.")
@DB_OPTION
def import_fixations(experiment, csv_path, screen, image_rect, replace, db_url) -> None:
    """Import eye-tracker fixations into EXPERIMENT as participants with source=imported.

    x, y are image pixels at natural size, or screen pixels with --screen and --image-rect.
    Rows with bad values, unknown images or points outside the image are dropped and counted."""
    from studyweb.imports import DisplayGeometry, import_fixations as run_import

    if (screen is None) != (image_rect is None):
        raise click.UsageError("--screen and --image-rect go together: both for screen pixels,"
                               " neither for image pixels")
    geometry = DisplayGeometry(*screen, *image_rect) if screen else None
    with _session(db_url) as session:
        summary = run_import(session, _experiment(session, experiment), csv_path, geometry=geometry, replace=replace)
        session.commit()
    dropped = summary["dropped"]
    click.echo(f"imported {summary['fixations']} fixations: {summary['participants']} participants,"
               f" {summary['trials']} trials on {summary['images_matched']} of {summary['stimuli']} images"
               + (f" (replaced {summary['replaced_participants']} participants imported before)"
                  if summary["replaced_participants"] else ""))
    click.echo(f"dropped {sum(dropped.values())} of {summary['rows']} rows: {dropped['bad_values']} bad values,"
               f" {dropped['unknown_image']} unknown image, {dropped['outside_image']} outside the image")
    if summary["bad_value_lines"]:
        click.echo(f"  bad values on lines {', '.join(map(str, summary['bad_value_lines']))}")
    if summary["unknown_images"]:
        click.echo(f"  unknown images: {', '.join(summary['unknown_images'])}")
    if summary["ignored_columns"]:
        click.echo(f"  ignored columns: {', '.join(summary['ignored_columns'])}")
    click.echo(f"qc: {summary['mean_fixations_per_trial']:g} fixations per trial on average;"
               f" {summary['trials_below_min_clicks']} trial(s) with fewer than {summary['min_clicks']}"
               " (qc.min_clicks) will be dropped from the maps")
    click.echo(f"next: gazelab study build-maps {experiment}")


@group.command("pilot")
@click.argument("design_path", metavar="DESIGN.yaml", type=click.Path(exists=True, dir_okay=False))
@click.option("--dataset", "dataset_dir", required=True, type=click.Path(file_okay=False), help="Dataset directory.")
@METHODS_OPTION
@click.option("--participants", type=click.IntRange(1, 1000), default=None,
              help="Simulated participants [as many as the observers target needs, at most 200].")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Where the pilot's database, maps and CSVs go (an earlier pilot there is replaced).")
@click.option("--seed", default=0, show_default=True, help="Seed of the simulated answers.")
@click.option("--catch-failure-rate", type=click.FloatRange(0, 1), default=None,
              help="Share of simulated participants who fail the catch trials [design's pilot:, else 0.05].")
@click.option("--sentinel-failure-rate", type=click.FloatRange(0, 1), default=None,
              help="Share who miss the CodeCharts sentinels [design's pilot:, else 0.05].")
@click.option("--tutorial-failure-rate", type=click.FloatRange(0, 1), default=None,
              help="Share who fail the CodeCharts tutorial [design's pilot:, else 0.10].")
def pilot(design_path, dataset_dir, method_dirs, participants, out_dir, seed, **rates) -> None:
    """Pilot a study design with simulated participants before paying anyone: a throwaway study
    server, every task answered through the browser's API (some answered wrongly, at the failure
    rates), QC, maps, CSVs and a summary with the exclusions to expect and the participants to
    recruit. --methods folders are relative to the current directory."""
    from studyweb.pilot import run_pilot

    summary = run_pilot(design_path, dataset_dir, out_dir, _method_dirs(method_dirs), participants, seed, rates)
    for line in pilot_summary_lines(design_path, summary):
        click.echo(line)
    click.echo(f"data: {', '.join(Path(p).name for p in summary['csv'].values())} in {Path(out_dir) / 'csv'};"
               f" database {summary['database']}")
    if summary["failures"]:
        raise click.ClickException(f"{len(summary['failures'])} simulated participant(s) failed; first: "
                                   f"{summary['failures'][0]}")


def pilot_summary_lines(design_path, summary: dict) -> list[str]:
    """The pilot's summary as the command prints it (`studyweb.pilot.run_pilot`'s dict)."""
    from collections import Counter

    obs, rates, failed = summary["observers"], summary["failure_rates"], summary["simulated_failures"]
    lines = [f"pilot of {design_path} ({summary['task']}): {summary['took_part']} simulated participants took part,"
             f" {summary['complete']} finished, {summary['screened_out']} screened out,"
             f" {len(summary['excluded'])} excluded by QC, {summary['kept']} kept"
             + (f"; {summary['refused']} refused (the study was full)" if summary["refused"] else "")]
    lines.append("  answered wrongly on purpose: " + (", ".join(
        f"{kind} {n} ({rates[kind + '_failure_rate']:.0%} rate)" for kind, n in failed.items())
        or "nothing (no catch trials, sentinels or tutorial to fail)"))
    reasons = Counter(summary["exclusion_reasons"])
    lines += [f"  {n} x {reason}" for reason, n in reasons.most_common(5)]
    lines.append(f"observers per image (kept participants): min {obs['min']}, mean {obs['mean']:.1f}, max {obs['max']}"
                 f" of {obs['wanted']} wanted, over {obs['images']} images"
                 + (f" ({obs['blocks']} blocks: each counts its own observers)" if obs["blocks"] > 1 else ""))
    low, high = summary["trials_range"]
    practice = f" (and {summary['practice_trials']} practice)" if summary["practice_trials"] else ""
    lines.append(f"each finished participant: {low if low == high else f'{low}-{high}'} trials{practice}, about"
                 f" {summary['minutes_per_participant']:g} minutes")
    recruit = f"recruit about {summary['recruit']}" if summary["recruit"] else "this pilot kept no one to estimate from"
    lines.append(f"to reach {obs['wanted']} observers per image: {summary['needed']} participants who finish and are"
                 f" kept; {recruit} ({summary['lost']} of {summary['took_part']} screened out or excluded here)"
                 + (f"; the pilot stopped at {summary['participants']} participants" if summary["capped"] else ""))
    if summary["maps"]:
        lines.append(f"maps: {summary['maps']['built']} built into {summary['maps']['folder']}")
    lines += [f"warning: {warning}" for warning in summary["warnings"]]
    return lines


@group.command("simulate")
@click.argument("experiment")
@click.option("--url", "base_url", required=True, help="The running study server, e.g. http://127.0.0.1:5000.")
@click.option("--participants", "n_participants", default=7, show_default=True, type=click.IntRange(1))
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1), help="Participants at once.")
@click.option("--drop-rate", default=0.0, show_default=True, type=click.FloatRange(0, 0.9),
              help="Share of save answers treated as lost, so the client resends (exercises idempotency).")
@click.option("--seed", default=0, show_default=True, help="Seed of the simulated clicks.")
@click.option("--model", type=click.Choice(["popout", "centre"]), default="popout", show_default=True,
              help="popout: CLEVR pop-out saliency from each pair's scene file (needs --db); centre: centre bias.")
@DB_OPTION
def simulate(experiment, base_url, n_participants, concurrency, drop_rate, seed, model, db_url) -> None:
    """Simulated participants through the same HTTP API as the browser, stored as source=simulated."""
    from studyweb.simulate import simulate_participants

    summary = simulate_participants(base_url, experiment, n_participants, concurrency=concurrency,
                                    drop_rate=drop_rate, seed=seed, model=model, db_url=_url(db_url))
    click.echo(f"simulated {len(summary['results'])} participants on {base_url}: {summary['complete']} complete, "
               f"{summary['clicks_sent']} clicks sent in {summary['saves']} saves "
               f"({summary['resends']} resent); saliency model: {model}")
    if summary["failures"]:
        failures = summary["failures"]
        raise click.ClickException(f"{len(failures)} simulated participant(s) failed; first: {failures[0]}")


@group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--debug", is_flag=True, help="Flask's debugger and reloader (never on a public host).")
@DB_OPTION
def serve(host: str, port: int, debug: bool, db_url: str | None) -> None:
    """Run the study server with Flask's server, for local use (use gunicorn for real studies)."""
    from studyweb import create_app

    url = _url(db_url)
    _migrate(url)
    app = create_app({"DATABASE_URL": url})
    click.echo(f"serving {_safe(url)} on http://{host}:{port}/ (Ctrl+C to stop)")
    app.run(host=host, port=port, debug=debug, use_reloader=debug)


def _url(db_url: str | None) -> str:
    from studyweb.config import database_url

    return db_url or database_url()


def _migrate(url: str) -> None:
    from studyweb.db import migrate

    migrate(url)


def _session(db_url: str | None):
    from studyweb.db import open_session

    return open_session(_url(db_url))


def _experiment(session, name: str):
    from studyweb.experiments import experiment_by_name

    return experiment_by_name(session, name)


def _safe(url: str) -> str:
    from studyweb.db import safe_url

    return safe_url(url)
