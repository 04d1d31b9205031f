"""The admin experiment page per task (`studyweb.admin.dashboards`): questionnaire answers per
method as stored, CodeCharts sentinel accuracy as stored, the recruitment link templates, and
`exclude_workers_of` (one worker, one experiment of a study) through the study link and the CLI."""
from __future__ import annotations

import html
import re
from urllib.parse import parse_qsl, urlsplit

import cv2
import numpy as np
import pytest

from studyweb import codecharts
from studyweb.db.schema import Experiment, Participant, Response, Trial

H = "X-Participant-Token"
METHODS = ("salggan", "hag", "cyclegan")


def _csrf(page) -> str:
    return re.search(rb'name="csrf_token" value="([^"]+)"', page.data).group(1).decode()


@pytest.fixture
def admin(app):
    """A test client logged in as alice; .csrf holds the session's CSRF token."""
    c = app.test_client()
    token = _csrf(c.get("/admin/login"))
    r = c.post("/admin/login", data={"username": "alice", "password": "correct horse", "csrf_token": token})
    assert r.status_code == 302
    c.csrf = _csrf(c.get("/admin/"))
    return c


@pytest.fixture
def quest(app, tmp_path, dataset):
    """Questionnaire 'quest' on the 3-pair dataset: a choose_best block over three methods and a
    fidelity rating of each method's output, a catch trial in 3, 2 pairs per participant, 2 observers."""
    from studyweb.designs import create_from_design

    methods = {}
    for k, method in enumerate(METHODS):
        folder = tmp_path / "edits" / method
        folder.mkdir(parents=True)
        for pair_id in dataset.pairs["pair_id"]:
            cv2.imwrite(str(folder / f"{pair_id}.png"), np.full((12, 16, 3), 40 * (k + 1), np.uint8))
        methods[method] = str(folder)
    design = {"title": "Which is best?", "methods": methods, "per_participant": 2, "observers": 2,
              "catch": {"every": 3, "max_failures": 0}, "completion_code": "Q1",
              "blocks": [{"name": "best", "task": "choose_best", "candidates": list(METHODS),
                          "questions": [{"id": "realism", "text": "Most realistic?"}]},
                         {"name": "fidelity", "task": "rate", "image": "methods", "scale": "fidelity"}]}
    db = app.extensions["studyweb.sessions"]()
    create_from_design(db, design, dataset.path, "quest")
    db.commit()
    db.close()
    return "quest"


def _answer_questionnaire(c, token, dbs, favourite: str, rating: float, fail_catch: bool) -> None:
    """Answer every trial: choose `favourite`, rate `rating`, and the catch trials right unless
    `fail_catch` (the spec says which candidate is the original, as the images would)."""
    trials = c.get("/api/v1/session", headers={H: token}).get_json()["trials"]
    for i, trial in enumerate(trials):
        spec = dbs.get(Trial, trial["id"]).spec
        question = trial["questions"][0]["id"]
        if trial["task"] == "choose_best":
            labels = {x["method"]: x["label"] for x in spec["candidates"]}
            if spec["catch"]:
                right = spec["catch"]["expected"]
                choice = next(label for label in labels.values() if label != right) if fail_catch else right
            else:
                choice = labels[favourite]
            answer = {"question": question, "choice": choice}
        else:
            top = max(spec["scale"]["scores"])
            answer = {"question": question, "rating": (0 if fail_catch else top) if spec["catch"] else rating}
        r = c.post(trial["answer_url"], headers={H: token},
                   json={"idempotency_key": f"{token[:8]}{i}", "answers": [answer], "rt_ms": 900})
        if fail_catch and r.status_code == 409:  # screened out after the failed catch trial
            return
        assert r.status_code == 200, r.get_json()


def _cells(page: bytes, table_attrs: str) -> dict[str, str]:
    """{data-method: data-n} of the rows of the answers table with these data attributes."""
    table = re.search(rf'<table class="answers" {table_attrs}>(.*?)</table>'.encode(), page, re.S).group(1)
    return {m.decode(): n.decode() for m, n in re.findall(rb'<tr data-method="([^"]+)" data-n="(\d+)">', table)}


def test_a_questionnaire_dashboard_shows_answers_per_method_as_stored_and_no_map_buttons(
        admin, enrol_in, quest, dbs):
    # Three diligent participants fill the 3 pairs (2 each, 2 observers wanted); the careless
    # fourth fails their catch trial (screened out, their trials count for no pair).
    for i, (favourite, rating, careless) in enumerate([("hag", 2, False), ("hag", 1, False), ("salggan", 3, False),
                                                       ("hag", 0, True)]):
        c, token = enrol_in("quest", PROLIFIC_PID=f"q{i}")
        _answer_questionnaire(c, token, dbs, favourite, rating, careless)
    page = admin.get("/admin/e/quest").data

    # Answers per method equal the database's (catch trials apart).
    answers = dbs.query(Response, Trial).join(Trial, Trial.id == Response.trial_id).all()
    chosen = _cells(page, 'data-block="best" data-question="realism"')
    assert chosen == {m: str(sum(1 for r, t in answers if r.question == "realism" and r.choice == m))
                      for m in METHODS}
    assert int(chosen["hag"]) >= 4 and int(chosen["salggan"]) == 2 and chosen["cyclegan"] == "0"
    rated = _cells(page, 'data-block="fidelity" data-question="score"')
    by_method = {m: [r.rating for r, t in answers if r.question == "score" and t.spec["method"] == m] for m in METHODS}
    assert rated == {m: str(len(v)) for m, v in by_method.items() if v} and sum(map(int, rated.values())) >= 6
    for method, ratings in by_method.items():
        if ratings:
            assert f"{sum(ratings) / len(ratings):.2f}".encode() in page
    assert all(m.encode() in page for m in METHODS) and b"000000_x" not in page

    # Progress in the design's units: 3 participants x 2 pairs fill 3 pairs with 2 observers each.
    best = re.search(rb'<tr data-block="best">(.*?)</tr>', page, re.S).group(1)
    assert b"<strong>3 of 3</strong> pairs" in best and b"6 of 6" in best
    assert b"original \xc2\xb7 pair" not in page  # versions are units of the rating block only
    assert re.search(rb"salggan \xc2\xb7 pair 00000\d \xc2\xb7 side x", page)

    # Catch failures per participant, as stored; no maps for a questionnaire.
    careless = dbs.query(Participant).filter_by(recruit_id="q3").one()
    failed = dbs.query(Response).filter_by(participant_id=careless.id, question="catch", correct=False).count()
    assert failed >= 1 and f'data-participant="{careless.id}" data-failed="{failed}"'.encode() in page
    for absent in (b'id="build-maps"', b'id="export-dataset"', b"heatmap.png", b"No maps yet"):
        assert absent not in page
    r = admin.post("/admin/e/quest/build-maps", data={"csrf_token": admin.csrf}, follow_redirects=True)
    assert b"QC: 3 participant(s) kept" in r.data and b"Maps:" not in r.data
    exclusions = re.search(rb'<table id="exclusions">(.*?)</table>', r.data, re.S).group(1)
    assert b"<td>q3</td>" in exclusions and b"catch" in exclusions
    assert b"<td>q0</td>" not in exclusions


@pytest.fixture
def cc(app, tmp_path, write_pair):
    """Experiment 'cc' (CodeCharts, 6 pairs of 480x360, K=4, M=5; a sentinel in about 3 trials)."""
    from datadir import Dataset
    from studyweb.experiments import create_experiment

    ds = Dataset.create(tmp_path / "ccds", "cc", seed=1)
    ds.add_pairs([write_pair(ds.path, f"c{i}", size=(480, 360)) for i in range(6)])
    db = app.extensions["studyweb.sessions"]()
    create_experiment(db, ds.path, "cc", task="codecharts", per_participant=4, observers=5, completion_code="CC1",
                      codecharts={"sentinel_every": 3})
    db.commit()
    db.close()
    return "cc"


def _answer_codecharts(c, token, *, miss_main_sentinels: bool, fail_tutorial: bool = False) -> None:
    """Answer every trial with a code on the chart: a sentinel with the code nearest its dot,
    or the farthest (a miss) in the main trials with `miss_main_sentinels`; `fail_tutorial`
    types codes that are on no chart in the tutorial."""
    trials = c.get("/api/v1/session", headers={H: token}).get_json()["trials"]
    for i, trial in enumerate(trials):
        chart = c.get(trial["chart_url"], headers={H: token}).get_json()
        code = chart["codes"][len(chart["codes"]) // 2]["code"]
        if fail_tutorial and trial["is_practice"]:
            code = "Z98"
        elif chart["kind"] == "sentinel":
            tx, ty = codecharts.locate_sentinel_target(chart["sentinel_png"], chart["width"])
            ranked = sorted(chart["codes"], key=lambda x: (x["x"] - tx) ** 2 + (x["y"] - ty) ** 2)
            code = (ranked[-1] if miss_main_sentinels and not trial["is_practice"] else ranked[0])["code"]
        r = c.post(trial["answer_url"], headers={H: token},
                   json={"idempotency_key": f"{token[:8]}{i}", "code": code, "rt_ms": 800})
        assert r.status_code == 200, r.get_json()
        if r.get_json().get("tutorial") and not r.get_json()["tutorial"]["passed"]:
            return


def test_a_codecharts_dashboard_shows_sentinel_accuracy_and_tutorial_failures_as_stored(admin, enrol_in, cc, dbs):
    _answer_codecharts(*enrol_in("cc", PROLIFIC_PID="good"), miss_main_sentinels=False)
    _answer_codecharts(*enrol_in("cc", PROLIFIC_PID="sloppy"), miss_main_sentinels=True)
    _answer_codecharts(*enrol_in("cc", PROLIFIC_PID="lost"), miss_main_sentinels=False, fail_tutorial=True)
    page = admin.get("/admin/e/cc").data

    rows = dbs.query(Response, Trial).join(Trial, Trial.id == Response.trial_id).filter(
        Trial.is_practice.is_(False)).all()
    sentinels = [r for r, t in rows if t.spec["kind"] == "sentinel"]
    correct = sum(r.correct is True for r in sentinels)
    assert 0 < correct < len(sentinels)  # the sloppy participant missed theirs
    codes = [r for r, t in rows if t.spec["kind"] == "image"]
    main = re.search(rb'<tr id="cc-main"([^>]*)>(.*?)</tr>', page, re.S)
    assert (f' data-valid="{sum(r.valid for r in codes)}" data-codes="{len(codes)}" data-correct="{correct}"'
            f'\n      data-sentinels="{len(sentinels)}"').encode() == main.group(1)
    assert f"{correct} of {len(sentinels)} ({100 * correct / len(sentinels):.0f} %)".encode() in main.group(2)
    failures = re.search(rb'<p id="tutorial-failures">(.*?)</p>', page, re.S).group(1)
    assert b"<strong>1</strong> participant(s) failed the tutorial" in failures and b"(lost)" in failures
    # An attention study keeps its maps view, its images labelled by version.
    assert b'id="build-maps"' in page and b"heatmap.png" in page
    assert re.search(rb"original \xc2\xb7 pair c\d \xc2\xb7 side x", page)


def test_the_link_templates_carry_exactly_the_parameters_the_server_reads(admin, app, dbs):
    from studyweb.participant.enrol import RECRUITERS

    page = admin.get("/admin/e/pilot").data.decode()
    link = "http://localhost/s/pilot"
    prolific = html.unescape(re.search(r'<code id="link-prolific">([^<]+)</code>', page).group(1))
    parts = urlsplit(prolific)
    query = parse_qsl(parts.query)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == link
    read = {source: set(keys) for source, *keys in RECRUITERS}
    assert {k for k, _ in query} == read["prolific"] == {"PROLIFIC_PID", "STUDY_ID", "SESSION_ID"}
    assert all(v == "{{%" + k + "%}}" for k, v in query)
    mturk = re.search(r'<dt>MTurk.*?</dd>', page, re.S).group(0)
    assert f"<ExternalURL>{link}</ExternalURL>" in html.unescape(mturk)
    named = set(re.findall(r"<code>(\w+)</code>", mturk.split("MTurk adds", 1)[1].split("to the URL", 1)[0]))
    assert named == read["mturk"] == {"workerId", "assignmentId", "hitId"}
    screenout = dbs.query(Experiment).filter_by(name="pilot").one().settings.get("screenout_code")
    assert 'id="completion">code <code>CODE123</code>' in page
    assert (f"code <code>{screenout}</code>" if screenout else 'id="screenout">not set') in page

    # What the platforms open, placeholders filled in, is read as theirs.
    filled = "&".join(f"{k}={k.lower()}-1" for k, _ in query)
    assert app.test_client().get(f"/s/pilot?{filled}").status_code == 302
    assert app.test_client().get("/s/pilot?assignmentId=a-1&hitId=h-1&turkSubmitTo=https://x&workerId=w-1") \
        .status_code == 302
    got = {(p.recruit_source, p.recruit_id, p.study_id, p.session_id) for p in dbs.query(Participant)}
    assert got == {("prolific", "prolific_pid-1", "study_id-1", "session_id-1"), ("mturk", "w-1", "h-1", "a-1")}


def test_exclude_workers_of_refuses_a_worker_of_the_other_experiment_both_ways(admin, app, dataset, dbs):
    from studyweb.experiments import create_experiment

    create_experiment(dbs, dataset.path, "pilot2", per_participant=2, observers=3, exclude_workers_of=["pilot"])
    dbs.commit()
    entries = lambda name, pid: app.test_client().get(f"/s/{name}", query_string={"PROLIFIC_PID": pid})  # noqa: E731
    rows = lambda name, pid: dbs.query(Participant).join(Experiment).filter(  # noqa: E731
        Experiment.name == name, Participant.recruit_id == pid).count()

    assert entries("pilot", "w1").status_code == 302
    refused = entries("pilot2", "w1")
    assert refused.status_code == 409 and b"already taken part in a related study" in refused.data
    assert rows("pilot2", "w1") == 0  # refused before a participant is made
    assert entries("pilot2", "w2").status_code == 302 and rows("pilot2", "w2") == 1
    assert entries("pilot", "w2").status_code == 409 and rows("pilot", "w2") == 0  # and the other way round
    assert entries("pilot", "w1").status_code == 302  # their own experiment still resumes

    index = admin.get("/admin/").data
    assert re.search(rb'pilot2</a>.*?<td class="related">pilot</td>', index, re.S)
    assert re.search(rb'pilot</a>.*?<td class="related">pilot2</td>', index, re.S)
    related = re.search(rb'<dd id="related">(.*?)</dd>', admin.get("/admin/e/pilot").data, re.S).group(1)
    assert b">pilot2</a>" in related and b"lists this one" in related


def test_create_experiment_exclude_workers_of_option(tmp_path, dataset):
    from click.testing import CliRunner

    from gazelab.commands.study import group
    from studyweb import create_app

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    design = tmp_path / "design.yaml"
    design.write_text("title: B\nexclude_workers_of: [a]\nblocks:\n  - {name: view, task: bubbleview}\n")
    cli = CliRunner()
    base = ["create-experiment", "--dataset", str(dataset.path), "--db", url]
    assert cli.invoke(group, [*base, "--name", "a"]).exit_code == 0
    made = cli.invoke(group, [*base, "--name", "b", "--exclude-workers-of", "a", "--exclude-workers-of", "later"])
    assert made.exit_code == 0, made.output
    assert "refuses recruit ids that took part in a, later" in made.output
    assert "no experiment named 'later' yet" in made.stderr
    from_design = cli.invoke(group, [*base, "--name", "c", "--from", str(design), "--exclude-workers-of", "b"])
    assert from_design.exit_code == 0, from_design.output
    itself = cli.invoke(group, [*base, "--name", "d", "--exclude-workers-of", "d"])
    assert itself.exit_code == 2 and "the experiment being created" in itself.output

    app = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": None, "INSTANCE_DIR": str(tmp_path / "i")})
    with app.app_context():
        db = app.extensions["studyweb.sessions"]()
        settings = {e.name: e.settings.get("exclude_workers_of") for e in db.query(Experiment)}
        db.close()
    assert settings == {"a": [], "b": ["a", "later"], "c": ["a", "b"]}
    enter = lambda name, pid: app.test_client().get(f"/s/{name}", query_string={"workerId": pid})  # noqa: E731
    assert enter("a", "worker").status_code == 302
    assert enter("b", "worker").status_code == 409 and enter("c", "worker").status_code == 409
    assert enter("b", "newcomer").status_code == 302
    app.extensions["studyweb.engine"].dispose()
