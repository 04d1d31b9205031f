"""`gazelab study ...`: the attention-study server's database, experiments, maps and exports.

Every command takes `--db URL` (default GAZELAB_DATABASE_URL, else instance/gazelab.db) and
migrates that database to the newest schema first, so a fresh database needs no extra step.
"""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager

import click

DB_OPTION = click.option("--db", "db_url", default=None, metavar="URL",
                         help="SQLAlchemy database URL [default: GAZELAB_DATABASE_URL or instance/gazelab.db].")


@click.group("study")
def group() -> None:
    """Run attention studies (BubbleView) and turn the clicks into fixation maps."""


@group.command("init-db")
@DB_OPTION
def init_db(db_url: str | None) -> None:
    """Create the database or migrate it to the newest schema."""
    from studyweb.migrate import current_revision

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
        session.commit()
    click.echo(f"admin {username!r} {'created' if created else 'password changed'}")


@group.command("create-experiment")
@click.option("--dataset", "dataset_dir", required=True, type=click.Path(file_okay=False), help="Dataset directory.")
@click.option("--name", required=True, help="Slug used in the link /s/NAME (a-z 0-9 _ -).")
@click.option("--task", default="bubbleview", show_default=True, type=click.Choice(["bubbleview"]))
@click.option("--title", default="", help="Title shown to participants [default: the name].")
@click.option("--description", default="")
@click.option("--per-participant", type=int, help="Stimuli per participant (K).")
@click.option("--observers", type=int, help="Observers wanted per stimulus (M).")
@click.option("--sides", default=None, help="Sides of each pair to show, e.g. x,y or x.")
@click.option("--allow-both-sides", is_flag=True, default=None, help="Let one participant see both sides of a pair.")
@click.option("--allow-repeat", is_flag=True, default=None, help="Let a returning recruit id take part again.")
@click.option("--mode", type=click.Choice(["free", "describe"]), default=None)
@click.option("--blur-sigma", type=float, help="Blur σ of the shown image, pixels [30].")
@click.option("--bubble-radius", type=float, help="Radius of a revealed bubble, pixels [30].")
@click.option("--time-limit", type=float, help="Seconds per image [10].")
@click.option("--max-clicks", type=int, help="End a trial after this many clicks.")
@click.option("--px-per-degree", type=float, help="Display pixels per degree (map σ = 1°).")
@click.option("--completion-code", default=None)
@click.option("--completion-url", default=None, help="Send participants here at the end (e.g. Prolific).")
@click.option("--base-url", default="http://127.0.0.1:5000", show_default=True, help="For the printed link.")
@DB_OPTION
def create_experiment(dataset_dir, name, task, title, description, base_url, db_url, **options) -> None:
    """Create an experiment from a dataset's pairs and print the participant link."""
    from studyweb.experiments import create_experiment as create

    settings = {
        "per_participant": options["per_participant"], "observers": options["observers"],
        "sides": options["sides"], "allow_both_sides": options["allow_both_sides"],
        "allow_repeat": options["allow_repeat"], "mode": options["mode"],
        "blur_sigma_px": options["blur_sigma"], "bubble_radius_px": options["bubble_radius"],
        "time_limit_s": options["time_limit"], "max_clicks": options["max_clicks"],
        "px_per_degree": options["px_per_degree"], "completion_code": options["completion_code"],
        "completion_url": options["completion_url"],
    }
    with _session(db_url) as session:
        experiment = create(session, dataset_dir, name, task, title=title, description=description,
                            **{k: v for k, v in settings.items() if v is not None})
        session.commit()
        n_stimuli = len(experiment.stimuli)
        code = experiment.settings.get("completion_code")
    click.echo(f"experiment {name!r}: {n_stimuli} stimuli" + (f", completion code {code}" if code else ""))
    click.echo(f"participant link: {base_url.rstrip('/')}/s/{name}")


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
@DB_OPTION
def export(experiment: str, dataset_dir: str | None, csv_dir: str | None, db_url: str | None) -> None:
    """Export EXPERIMENT's maps into a dataset (--to) and/or its data as CSVs (--csv)."""
    from studyweb.export import export_csv, export_to_dataset

    if not dataset_dir and not csv_dir:
        raise ValueError("say where to export: --to DATASET and/or --csv DIR")
    with _session(db_url) as session:
        exp = _experiment(session, experiment)
        if dataset_dir:
            summary = export_to_dataset(session, exp, dataset_dir)
            click.echo(f"wrote {summary['maps']} maps for {summary['pairs']} pairs into {summary['dataset']}")
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
    from concurrent.futures import ThreadPoolExecutor

    from studyweb.simulate import run_participant

    density_of = _scene_densities(db_url) if model == "popout" else None
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(run_participant, base_url, experiment, seed + i, density_of=density_of,
                               drop_rate=drop_rate) for i in range(n_participants)]
        results, failures = [], []
        for future in futures:
            try:
                results.append(future.result())
            except Exception as exc:  # noqa: BLE001 — report every participant, then fail once
                failures.append(f"{type(exc).__name__}: {exc}")
    complete = sum(r["status"] == "complete" for r in results)
    click.echo(f"simulated {len(results)} participants on {base_url}: {complete} complete, "
               f"{sum(r['clicks_sent'] for r in results)} clicks sent in {sum(r['saves'] for r in results)} saves "
               f"({sum(r['resends'] for r in results)} resent); saliency model: {model}")
    if failures:
        raise click.ClickException(f"{len(failures)} simulated participant(s) failed; first: {failures[0]}")


def _scene_densities(db_url: str | None):
    """density_of(trial json) for run_participant: the pop-out model of the trial's scene side.

    Looks the trial's stimulus up in the study database (the simulated client never sees
    which pair it is shown); an image without a scene file gets the centre bias.
    """
    import threading

    from studyweb.db import Trial, make_engine, session_factory
    from studyweb.simulate import popout_density

    url = _url(db_url)
    _migrate(url)
    sessions = session_factory(make_engine(url))
    cache: dict[tuple, object] = {}  # per stimulus and size
    lock = threading.Lock()

    def density_of(trial: dict):
        with sessions() as session:
            stimulus = session.get(Trial, trial["id"]).stimulus
            key = (stimulus.id if stimulus else None, trial["natural_w"], trial["natural_h"])
            with lock:
                if key not in cache:
                    cache[key] = popout_density(_scene_side(stimulus), key[1:])
        return cache[key]

    return density_of


def _scene_side(stimulus) -> dict | None:
    from pathlib import Path

    if stimulus is None or not stimulus.pair_id:
        return None
    path = Path(stimulus.experiment.dataset_path) / "scenes" / f"{stimulus.pair_id}.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8")).get(stimulus.side)


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
    from sqlalchemy.exc import ArgumentError, OperationalError

    from studyweb.db import init_db as migrate

    try:
        migrate(url)
    except (ArgumentError, OperationalError) as exc:
        raise ValueError(f"cannot open database {_safe(url)}: {str(exc).splitlines()[0]}") from exc


@contextmanager
def _session(db_url: str | None):
    from studyweb.db import make_engine, session_factory

    url = _url(db_url)
    _migrate(url)
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def _experiment(session, name: str):
    from sqlalchemy import select

    from studyweb.db import Experiment

    experiment = session.scalar(select(Experiment).where(Experiment.name == name))
    if experiment is None:
        known = session.scalars(select(Experiment.name).order_by(Experiment.name)).all()
        raise ValueError(f"no experiment named {name!r}; known: {', '.join(known) or 'none'}")
    return experiment


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown as given; it has no password to hide
        return url
