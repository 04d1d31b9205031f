"""No request gives a 500 (issue 22): each request that once did, reproduced, now answers 4xx,
and a hypothesis fuzz of the answer, chart and admin routes with nested, huge and non-finite
values (raw JSON text: 1e999 parses as inf, a 400-digit integer overflows a float)."""
from __future__ import annotations

import re
from urllib.parse import quote

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studyweb.api.validate import MAX_JSON_DEPTH
from studyweb.db.schema import Response, Stimulus

H = "X-Participant-Token"
SIZE = (480, 360)


@pytest.fixture
def quest(app, dataset, tmp_path):
    """Experiment 'quest': a choose_best block (3 methods), a pick_region block and a rate block."""
    from studyweb.designs import create_from_design

    methods = {}
    for k, method in enumerate(("salggan", "hag", "cyclegan")):
        folder = tmp_path / "edits" / method
        folder.mkdir(parents=True)
        for pair_id in dataset.pairs["pair_id"]:
            cv2.imwrite(str(folder / f"{pair_id}.png"), np.full((12, 16, 3), 40 * (k + 1), np.uint8))
        methods[method] = str(folder)
    design = {"title": "Q", "per_participant": 1, "observers": 4, "completion_code": "Q1", "methods": methods,
              "blocks": [{"name": "best", "task": "choose_best", "questions": [{"id": "realism", "text": "Best?"}]},
                         {"name": "salient", "task": "pick_region",
                          "follow_up": {"id": "different", "text": "Differ?", "choices": ["yes", "no"]}},
                         {"name": "fidelity", "task": "rate", "scale": "fidelity"}]}
    db = app.extensions["studyweb.sessions"]()
    create_from_design(db, design, dataset.path, "quest")
    db.commit()
    db.close()
    return "quest"


@pytest.fixture
def cc(app, tmp_path, write_pair):
    """Experiment 'cc' (CodeCharts, 4 pairs of 480x360, K=2, no tutorial)."""
    from datadir import Dataset
    from studyweb.experiments import create_experiment

    ds = Dataset.create(tmp_path / "ccds", "cc", seed=1)
    ds.add_pairs([write_pair(ds.path, f"c{i}", size=SIZE) for i in range(4)])
    db = app.extensions["studyweb.sessions"]()
    create_experiment(db, ds.path, "cc", task="codecharts", per_participant=2, observers=5, completion_code="CC1",
                      codecharts={"image_ms": [1000], "sentinel_every": 3, "tutorial": False})
    db.commit()
    db.close()
    return "cc"


def _trials(client, token, task=None):
    trials = client.get("/api/v1/session", headers={H: token}).get_json()["trials"]
    return [t for t in trials if task is None or t.get("task") == task]


def _post_raw(client, token, url, text: str):
    return client.post(url, headers={H: token, "Content-Type": "application/json"}, data=text.encode())


def _assert_refused(r, status=422, *words):
    assert r.status_code == status, (r.status_code, r.data[:300])
    message = r.get_json()["message"]
    assert all(word in message for word in words), message


def _page_csrf(client, path: str) -> str:
    """The CSRF token in the forms of the page at `path`."""
    return re.search(rb'name="csrf_token" value="([^"]+)"', client.get(path).data).group(1).decode()


# --- JSON nested deeper than the limit ------------------------------------------------------


def _nested(depth: int, leaf: str = '"\\u0041"') -> str:
    """A JSON object nested `depth` levels deep in all (the body object counts as the first)."""
    return '{"a":' * (depth - 1) + '{"a":' + leaf + "}" + "}" * (depth - 1)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 600, 5000])
def test_json_nested_deeper_than_the_limit_is_422_on_every_route(enrol, depth):
    """600 levels with a \\u escape once ran `clean_strings` into a RecursionError (500)."""
    client, token = enrol(PROLIFIC_PID="deep")
    tid = _trials(client, token)[1]["id"]
    for url in (f"/api/v1/trials/{tid}/save", f"/api/v1/trials/{tid}/answer", "/api/v1/events"):
        for leaf in ('"\\u0041"', "1"):
            _assert_refused(_post_raw(client, token, url, _nested(depth, leaf)), 422, f"{MAX_JSON_DEPTH} levels")


def test_json_at_the_limit_is_read(enrol, participant_of):
    """Exactly MAX_JSON_DEPTH levels, a lone surrogate at the bottom: stored, the surrogate replaced."""
    client, token = enrol(PROLIFIC_PID="deep-ok")
    data = _nested(MAX_JSON_DEPTH - 3, '"\\ud800"')  # body, events list, event object: 3 levels
    r = _post_raw(client, token, "/api/v1/events",
                  '{"idempotency_key": "ok", "events": [{"type": "resize", "data": %s}]}' % data)
    assert r.status_code == 200, r.data
    payload = participant_of(token).events[-1].payload
    for _ in range(MAX_JSON_DEPTH - 4):
        payload = payload["a"]
    assert payload == {"a": "\ufffd"}


@pytest.mark.parametrize("number", ["1e999", "-1e999", "1" + "0" * 400])
def test_numbers_beyond_a_float_are_422(enrol, number):
    """1e999 parses as inf and a 400-digit integer overflows float(): neither reaches a check."""
    client, token = enrol(PROLIFIC_PID="huge")
    tid = _trials(client, token)[1]["id"]
    body = '{"idempotency_key": "h", "clicks": [{"x": %s, "y": 1, "t_ms": 5}], "display_w": 9, "display_h": 9}'
    assert _post_raw(client, token, f"/api/v1/trials/{tid}/save", body % number).status_code == 422
    r = _post_raw(client, token, "/api/v1/events",
                  '{"idempotency_key": "h2", "events": [{"type": "resize", "data": {"w": %s}}]}' % number)
    assert r.status_code == 422, r.data


# --- Answer fields of the wrong type or out of range ----------------------------------------


def _answer(client, token, trial, answers, key="k"):
    return client.post(trial["answer_url"], headers={H: token},
                       json={"idempotency_key": key, "answers": answers, "rt_ms": 900})


@pytest.mark.parametrize("choice", [["A"], {"A": 1}, 1.5, True, "A" * 201])
def test_a_choice_that_is_not_a_label_is_422(enrol_in, quest, dbs, choice):
    """A list or object as choose_best's choice was unhashable in the answer checks (500)."""
    client, token = enrol_in(quest, PROLIFIC_PID="choice")
    trial = _trials(client, token, "choose_best")[0]
    r = _answer(client, token, trial, [{"question": "realism", "choice": choice}])
    _assert_refused(r, 422, "answers[0].choice")
    assert dbs.query(Response).count() == 0
    good = _answer(client, token, trial, [{"question": "realism", "choice": trial["candidates"][0]["label"]}], "ok")
    assert good.status_code == 200  # the trial still takes a good answer


@pytest.mark.parametrize("x, word", [("1.7e308", "answers[0].x"), ("-1.7e308", "answers[0].x"), ("1e6", "answers[0].x"),
                                     ('"3"', "answers[0].x"), ("[1]", "answers[0].x"), ("true", "answers[0].x"),
                                     ("1e999", "finite"), ("1" + "0" * 400, "finite")])
def test_pick_region_coordinates_must_be_finite_numbers_in_range(enrol_in, quest, x, word):
    """x = 1.7e308 overflowed in the mask lookup (int(inf), 500)."""
    client, token = enrol_in(quest, PROLIFIC_PID="pick")
    trial = _trials(client, token, "pick_region")[0]
    body = ('{"idempotency_key": "p", "rt_ms": 900, "answers": [{"question": "%s", "x": %s, "y": 2},'
            ' {"question": "different", "choice": "no"}]}' % (trial["questions"][0]["id"], x))
    _assert_refused(_post_raw(client, token, trial["answer_url"], body), 422, word)


@pytest.mark.parametrize("rating", ["1e300", "-1e7", '"3"', "[3]", "{}", "false"])
def test_a_rating_must_be_a_finite_number(enrol_in, quest, rating):
    client, token = enrol_in(quest, PROLIFIC_PID="rate")
    trial = _trials(client, token, "rate")[0]
    body = ('{"idempotency_key": "r", "answers": [{"question": "%s", "rating": %s}]}'
            % (trial["questions"][0]["id"], rating))
    _assert_refused(_post_raw(client, token, trial["answer_url"], body), 422, "answers[0].rating")


@pytest.mark.parametrize("field, value", [("text", "[1]"), ("question", '{"q": 1}'), ("question", '"%s"' % ("q" * 65))])
def test_question_and_text_must_be_short_strings(enrol_in, quest, field, value):
    client, token = enrol_in(quest, PROLIFIC_PID="text")
    trial = _trials(client, token, "choose_best")[0]
    answer = {"question": '"realism"', "choice": '"A"', field: value}
    body = '{"idempotency_key": "t", "answers": [{%s}]}' % ", ".join(f'"{k}": {v}' for k, v in answer.items())
    _assert_refused(_post_raw(client, token, trial["answer_url"], body), 422, f"answers[0].{field}")


# --- next= after login, and ids beyond the integer columns ----------------------------------


@pytest.mark.parametrize("target", [
    "/admin/\r\nSet-Cookie: x=1", "/admin/e/pilot\n", "/admin/\x00", "//evil.example/admin/", "/\\evil.example",
    "\\\\evil.example", "https://evil.example/admin/", "javascript:alert(1)", "/admin/\t", "admin/", "",
])
def test_login_goes_to_the_default_page_unless_next_is_a_same_site_path(client, target):
    """A CR/LF in next= once made the redirect's Location header raise a ValueError (500)."""
    csrf = _page_csrf(client, "/admin/login")
    r = client.post(f"/admin/login?next={quote(target, safe='')}",
                    data={"username": "alice", "password": "correct horse", "csrf_token": csrf})
    assert r.status_code == 302 and r.location == "/admin/"


def test_login_follows_a_same_site_next(client):
    csrf = _page_csrf(client, "/admin/login")
    r = client.post("/admin/login?next=/admin/e/pilot",
                    data={"username": "alice", "password": "correct horse", "csrf_token": csrf})
    assert r.status_code == 302 and r.location == "/admin/e/pilot"


def test_the_login_redirect_keeps_the_page_asked_for(client):
    r = client.get("/admin/e/pilot")
    assert r.status_code == 302 and r.location == "/admin/login?next=/admin/e/pilot"


@pytest.mark.parametrize("stimulus_id", [2**31, 2**63, 10**20])
def test_heatmap_ids_beyond_the_integer_columns_are_404(client, stimulus_id):
    """10**20 does not fit SQLite's INTEGER: the driver's OverflowError was a 500."""
    csrf = _page_csrf(client, "/admin/login")
    client.post("/admin/login", data={"username": "alice", "password": "correct horse", "csrf_token": csrf})
    assert client.get(f"/admin/stimuli/{stimulus_id}/heatmap.png").status_code == 404


# --- The fuzz: answer, chart and admin routes -----------------------------------------------

# JSON text, not Python values: only text can carry 1e999, 400-digit integers and deep nesting.
LEAVES = st.sampled_from([
    "1e999", "-1e999", "1.7e308", "-1.7e308", "1" + "0" * 400, "-0", "0", "3", "2.5", "null", "true", "false",
    '"A"', '"B"', '"no"', '"realism"', '"different"', '"B47"', '"\\ud800"', '"\\u0000"', '""', '"%s"' % ("x" * 70),
])
json_text = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3).map(lambda items: "[" + ",".join(items) + "]")
    | st.dictionaries(st.sampled_from(["question", "choice", "rating", "text", "x", "y", "a"]), inner,
                      max_size=3).map(lambda d: "{" + ",".join(f'"{k}":{v}' for k, v in d.items()) + "}"),
    max_leaves=12,
) | st.integers(MAX_JSON_DEPTH - 2, 1200).map(lambda n: "[" * n + '"\\u0041"' + "]" * n)
# Mostly the trials' own question ids, so that the values get past the question check.
question_id = st.sampled_from(['"realism"', '"most_salient"', '"different"', '"score"']) | json_text
answer_item = st.fixed_dictionaries({"question": question_id},
                                    optional={k: json_text for k in ("choice", "rating", "text", "x", "y", "rt_ms")})


def _object(fields: dict) -> str:
    return "{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}"


answers_body = st.fixed_dictionaries(
    {"idempotency_key": st.uuids().map(lambda u: f'"{u}"')},
    optional={"answers": st.lists(answer_item.map(_object), max_size=3).map(lambda a: "[" + ",".join(a) + "]")
              | json_text, "rt_ms": json_text, "shown_order": json_text, "events": json_text, "code": json_text},
).map(_object)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=answers_body | json_text)
def test_junk_answers_never_500(answer_targets, body):
    for client, token, trial in answer_targets:
        r = _post_raw(client, token, trial["answer_url"], body)
        assert r.status_code < 500 and r.is_json, (trial["task"], body[:300], r.data[:300])
        if r.status_code >= 400:
            assert r.get_json()["message"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(trial_id=st.integers(-10, 10**30) | st.text(max_size=12))
def test_junk_chart_and_answer_ids_never_500(answer_targets, trial_id):
    client, token, _ = answer_targets[0]
    path = quote(str(trial_id), safe="")
    for r in (client.get(f"/api/v1/trials/{path}/chart", headers={H: token}),
              client.post(f"/api/v1/trials/{path}/answer", headers={H: token}, json={"idempotency_key": "x"})):
        assert r.status_code < 500 and r.is_json, (trial_id, r.data[:300])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(max_size=20) | st.integers(-10, 10**30).map(str) | st.sampled_from(["\r\n", "//x", "/\\x"]))
def test_junk_admin_paths_and_parameters_never_500(admin_client, value):
    client = admin_client
    csrf = _page_csrf(client, "/admin/")
    quoted = quote(value, safe="")
    for r in (client.get(f"/admin/e/{quoted}"), client.get(f"/admin/stimuli/{quoted}/heatmap.png"),
              client.post("/admin/e/pilot/export", data={"what": value, "csrf_token": csrf}),
              client.post(f"/admin/e/{quoted}/build-maps", data={"csrf_token": csrf}),
              client.get(f"/admin/login?next={quoted}"),
              # last: a login starts a new session with a new CSRF token
              client.post(f"/admin/login?next={quoted}", data={"username": "alice", "password": "correct horse",
                                                                "csrf_token": csrf})):
        assert r.status_code < 500, (value, r.status_code, r.data[:300])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(max_size=20) | st.sampled_from(["\u00b2", "\u0663", "1" * 30, "\r\n", "\x00"]))
def test_junk_participant_links_and_forms_never_500(app, value):
    """A participant's pages with junk in the study name, the recruitment ids, the token and the
    screen sizes ("\u00b2".isdigit() is true, but int() refuses it)."""
    client = app.test_client()
    quoted = quote(value, safe="")
    assert client.get(f"/s/{quoted}").status_code < 500
    assert client.get(f"/s/pilot/consent?t={quoted}").status_code < 500
    r = client.get("/s/pilot", query_string={"PROLIFIC_PID": f"p{value}", "STUDY_ID": value, "SESSION_ID": value})
    assert r.status_code < 500, (value, r.data[:300])
    if r.status_code == 302:
        assert client.post("/s/pilot/consent", data={"consent": "yes"}).status_code < 500
        r = client.post("/s/pilot/instructions", data={k: value for k in ("screen_w", "screen_h", "window_w",
                                                                            "window_h")})
        assert r.status_code < 500, (value, r.data[:300])


@pytest.fixture
def answer_targets(enrol_in, cc, quest):
    """[(client, token, trial JSON)] of a CodeCharts trial and one trial of each questionnaire task."""
    targets = []
    client, token = enrol_in(cc, PROLIFIC_PID="fuzz-cc")
    targets.append((client, token, _trials(client, token, "codecharts")[0]))
    client, token = enrol_in(quest, PROLIFIC_PID="fuzz-q")
    for task in ("choose_best", "pick_region", "rate"):
        targets.append((client, token, _trials(client, token, task)[0]))
    return targets


@pytest.fixture
def admin_client(app, dbs):
    """A logged-in admin's test client."""
    client = app.test_client()
    csrf = _page_csrf(client, "/admin/login")
    assert client.post("/admin/login", data={"username": "alice", "password": "correct horse",
                                             "csrf_token": csrf}).status_code == 302
    assert dbs.query(Stimulus).count() > 0
    return client
