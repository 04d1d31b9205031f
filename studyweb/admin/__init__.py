"""Admin pages: login (Admin table, werkzeug hashes), the experiment dashboards per task
(`studyweb.admin.dashboards`: questionnaires' answers per method and question, catch failures
and exclusions; CodeCharts' valid codes, sentinel accuracy and tutorial failures; BubbleView's
and CodeCharts' stimuli with their current maps as heat maps), the recruitment links ready to
paste, and export buttons. Every route but login refuses without a logged-in admin; every form
carries a CSRF token."""
from __future__ import annotations

import io
import logging
import re
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

from flask import (Blueprint, abort, flash, g, redirect, render_template, request, send_file,
                   url_for)
from sqlalchemy import func, select

from studyweb.admin import dashboards
from studyweb.admin.csrf import check_csrf, csrf_token
from studyweb.admin.heatmap import overlay_png
from studyweb.admin.sessions import current_admin, end_session, start_session
from studyweb.assignment import completed_counts, observer_counts
from studyweb.db.request import get_db
from studyweb.db.schema import Admin, Experiment, Participant, Stimulus
from studyweb.experiments import related_experiments
from studyweb.export import SOURCES, FewerObservers, export_csv, export_to_dataset
from studyweb.maps import build_maps as build, current_map, current_maps, recorded_flags
from studyweb.security import login_throttle
from studyweb.tasks import task_named

log = logging.getLogger(__name__)
bp = Blueprint("admin", __name__, url_prefix="/admin")
bp.add_app_template_global(csrf_token, "csrf_token")
OPEN_ENDPOINTS = {"admin.login"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@bp.before_request
def require_login():
    """CSRF on every POST; a live server-side session for everything but the login page."""
    check_csrf()
    g.admin = current_admin(get_db())
    if g.admin is None and request.endpoint not in OPEN_ENDPOINTS:
        return redirect(url_for("admin.login", next=request.path))


@bp.after_request
def no_store(response):
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The login form. Failed logins are throttled (`studyweb.security.LoginThrottle`): past the
    limit the page answers 429 with Retry-After, whatever the password."""
    error, status, headers = None, 200, {}
    if request.method == "POST":
        username = request.form.get("username", "")[:64]
        address = request.remote_addr or ""
        throttle = login_throttle()
        wait = throttle.retry_after(username, address)
        if wait is not None:
            log.warning("admin login throttled for %r from %s (%d s)", username, address, wait)
            error, status, headers = (f"Too many failed logins. Try again in {wait} s.", 429,
                                      {"Retry-After": str(wait)})
            return render_template("admin/login.html", error=error), status, headers
        admin = get_db().scalars(select(Admin).where(Admin.username == username)).first()
        if admin is not None and admin.check_password(request.form.get("password", "")):
            start_session(get_db(), admin)  # a fresh cookie session (and CSRF token): no fixation
            get_db().commit()
            return redirect(same_site_path(request.args.get("next"), "/admin/") or url_for("admin.index"))
        throttle.failed(username, address)
        error, status = "Wrong username or password.", 401
    return render_template("admin/login.html", error=error), status, headers


@bp.post("/logout")
def logout():
    """End the session on the server too: a copy of the cookie opens nothing afterwards."""
    end_session(get_db())
    return redirect(url_for("admin.login"))


@bp.get("/")
def index():
    """The experiments, their links, and which refuse the workers of which (exclude_workers_of)."""
    experiments = get_db().scalars(select(Experiment).order_by(Experiment.id)).all()
    return render_template("admin/index.html", experiments=experiments, related=dashboards.related_names(experiments))


@bp.get("/e/<name>")
def experiment(name: str):
    """Participants by status and source, the recruitment links, exclusions, then per task:
    a questionnaire's progress per block, answers per method and question and catch failures;
    a BubbleView or CodeCharts study's observers per stimulus, the QC flags stored with the
    current maps (what the last build decided; QC is not re-run here) and heat maps, with
    CodeCharts' code validity, sentinel accuracy and tutorial failures."""
    db = get_db()
    exp = _experiment(name)
    by_status = dict(db.execute(select(Participant.status, func.count()).where(
        Participant.experiment_id == exp.id).group_by(Participant.status)).all())
    by_source = {SOURCES.get(source, source): n for source, n in db.execute(  # the exports' words
        select(Participant.source, func.count()).where(Participant.experiment_id == exp.id)
        .group_by(Participant.source)).all()}
    known = set(db.scalars(select(Experiment.name)))
    context = dict(
        experiment=exp, by_status=by_status, by_source=by_source, exclusions=dashboards.exclusions(db, exp),
        links=dashboards.recruitment_links(url_for("participant.entry", name=exp.name, _external=True)),
        related=[(other, how, other in known) for other, how in related_experiments(db, exp).items()],
        has_maps=task_named(exp.task).makes_maps,
    )
    if exp.task == "questionnaire":
        context["quest"] = dashboards.questionnaire_dashboard(db, exp)
    else:
        context.update(_maps_context(db, exp))
    if exp.task == "codecharts":
        context["cc"] = dashboards.codecharts_dashboard(db, exp)
    return render_template("admin/experiment.html", **context)


def _maps_context(db, exp: Experiment) -> dict:
    """What the stimuli and QC sections of a study with maps need (BubbleView, CodeCharts)."""
    maps = current_maps(db, exp, arrays=False)
    flags, maps_without_flags = recorded_flags(maps.values())
    observers = observer_counts(db, exp)
    target = int(exp.settings.get("observers") or 0)
    return dict(observers=observers, completed=completed_counts(db, exp), maps=maps, qc_flags=flags,
                maps_without_flags=maps_without_flags, target=target,
                last_build=max((m.built_at for m in maps.values()), default=None),
                progress=dashboards.attention_progress(observers, exp.stimuli, target),
                version_label=dashboards.version_label)


@bp.get("/stimuli/<int(max=2147483647):stimulus_id>/heatmap.png")  # ids fit a 32-bit INTEGER column
def heatmap(stimulus_id: int):
    """The stimulus with its current map overlaid (PNG, natural size)."""
    stimulus = get_db().get(Stimulus, stimulus_id)
    if stimulus is None:
        abort(404)
    fixation_map = current_map(get_db(), stimulus.id)
    density = fixation_map.density_array() if fixation_map is not None else None
    return send_file(io.BytesIO(overlay_png(stimulus, density)), mimetype="image/png", max_age=0)


@bp.post("/e/<name>/build-maps")
def build_maps(name: str):
    """Build the maps, and store QC's decision on every participant; a questionnaire builds no
    maps, so for it this is the button that decides QC (catch trials, focus losses)."""
    db = get_db()
    exp = _experiment(name)
    summary = build(db, exp)
    db.commit()
    decided = (f"QC: {summary['kept_participants']} participant(s) kept,"
               f" {len(summary['excluded_participants'])} excluded.")
    if task_named(exp.task).makes_maps:
        flash(f"Maps: {summary['built']} built, {summary['skipped']} unchanged, {summary['empty']} without clicks."
              f" {decided}")
    else:
        flash(decided)
    return redirect(url_for("admin.experiment", name=name))


@bp.post("/e/<name>/export")
def export(name: str):
    """what=dataset: maps into the experiment's dataset (force=1 replaces maps that have more
    observers; without it such an export is refused, flashed in the category 'export-refused'
    so the page offers the confirmation); what=csv: a zip of tidy CSVs."""
    db = get_db()
    exp = _experiment(name)
    what = request.form.get("what")
    if what == "dataset":
        try:
            result = export_to_dataset(db, exp, force=request.form.get("force") == "1")
        except FewerObservers as exc:
            flash(f"Export refused: {exc.summary}. Nothing was written.", "export-refused")
        except (ValueError, OSError) as exc:  # the export is all or nothing: a failure leaves the dataset as it was
            flash(f"Export failed: {exc}. Nothing was written.")
        else:
            forced = len(result["replaced_fewer"])
            flash(f"Exported {result['maps']} maps into {result['dataset']}"
                  + (f", replacing {forced} map(s) that had more observers." if forced else "."))
        return redirect(url_for("admin.experiment", name=name))
    if what == "csv":
        buffer = io.BytesIO()
        with tempfile.TemporaryDirectory() as tmp:
            files = export_csv(db, exp, tmp)
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in files.values():
                    archive.write(path, Path(path).name)
        buffer.seek(0)
        return send_file(buffer, mimetype="application/zip", as_attachment=True,
                         download_name=f"{exp.name}-csv.zip")
    abort(400, description=f"unknown export {what!r}; expected 'dataset' or 'csv'")


def same_site_path(target: str | None, prefix: str = "/") -> str | None:
    """`target` (a `next=` parameter) when it is a path on this site under `prefix`, else None
    (the caller goes to its default page): it starts with a single '/' (not '//' nor '/\\',
    which browsers read as another host), has no scheme or host, no backslash and no control
    character (CR/LF would split the Location header)."""
    if not target or not target.startswith(prefix) or target.startswith(("//", "/\\")) \
            or "\\" in target or _CONTROL.search(target):
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


def _experiment(name: str) -> Experiment:
    exp = get_db().scalars(select(Experiment).where(Experiment.name == name)).first()
    if exp is None:
        abort(404)
    return exp
