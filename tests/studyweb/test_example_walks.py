"""Each questionnaire example design (studyweb/examples/) walked in Chromium as a participant
walks it: the device check passes, the consent text describes the design's task, then the
instructions, every trial (catch trials answered right, found by looking as a participant does),
the design's pauses, the debrief and the completion code. The window alternates between 1366x768
and 1280x720 from trial to trial, and on every screen the controls lie inside it with nothing
wider than it. (The CodeCharts and BubbleView examples' pages are walked in
test_codecharts_browser.py, test_browser.py, test_layouts.py and test_pacing_browser.py.)"""
from __future__ import annotations

import pytest
import yaml

from support.browser import chromium_page, require_browser
from support.study_data import EXAMPLES, example_dataset, method_outputs

pytestmark = pytest.mark.browser
require_browser()
SIZES = [(1366, 768), (1280, 720)]
QUESTIONNAIRES = [e for e in EXAMPLES if e.stem in ("sgit_preference", "gazeshiftnet_ratings", "sagim_salient_object")]
# What the consent page must say the study is about, per example.
TASK_WORDS = {"sgit_preference": "pick the image", "gazeshiftnet_ratings": "on the scale",
              "sagim_salient_object": "click on the object"}
CONTROLS = ".qn-next, .qn-candidate, .qn-choice, textarea.qn-text"
INSIDE = """(selector) => {
  const w = innerWidth, h = innerHeight;
  const boxes = [...document.querySelectorAll(selector)].filter((e) => e.offsetParent !== null)
    .map((e) => e.getBoundingClientRect());
  return {n: boxes.length, wide: document.documentElement.scrollWidth > w,
          outside: boxes.filter((b) => b.left < -0.5 || b.top < -0.5 || b.right > w + 0.5 || b.bottom > h + 0.5)
                        .map((b) => [b.left, b.top, b.right, b.bottom])};
}"""
SAME_AS_INPUT = """async (t) => {
  const bytes = async (u) => new Uint8Array(await (await fetch(u)).arrayBuffer());
  const input = await bytes(t.reference.input_url);
  for (const c of t.candidates) {
    const b = await bytes(c.image_url);
    if (b.length === input.length && b.every((v, i) => v === input[i])) return c.label;
  }
  return null;
}"""
FRAMES = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
NEXT_SCREEN = """(previous) => location.pathname.includes('debrief') || location.pathname.includes('screened')
  || document.querySelector('.pace-continue') !== null
  || (window.gazelabLastTrial && window.gazelabLastTrial.id !== previous
      && document.querySelector('.qn-stage')?.dataset.state === 'answering')"""


@pytest.mark.parametrize("example", QUESTIONNAIRES, ids=[e.stem for e in QUESTIONNAIRES])
def test_a_participant_walks_the_example_from_consent_to_the_completion_code(example, serve_with, app, tmp_path):
    from studyweb.db.schema import Experiment, Participant
    from studyweb.designs import create_from_design

    dataset = example_dataset(tmp_path / "walk", 6)
    design = yaml.safe_load(example.read_text())
    design["methods"] = method_outputs(example, tmp_path / "edits", dataset)
    design["per_participant"] = 3  # a short walk; every block and catch trial still comes
    design["stimuli"] = {**design.get("stimuli", {}), "pairs": 6}
    base = serve_with(lambda db: create_from_design(db, design, dataset.path, example.stem))
    with chromium_page(*SIZES[0]) as page:
        page.goto(f"{base}/s/{example.stem}?PROLIFIC_PID=walk-{example.stem}")
        page.locator("#consent-yes").wait_for(state="visible")  # the device check passed
        assert TASK_WORDS[example.stem] in page.locator("#consent-text").inner_text().lower()
        _assert_inside(page, "#consent-yes, #consent-no", "consent")
        page.locator("#consent-yes").click()
        while page.wait_for_selector("#instructions-ok, #instructions-next").get_attribute("id") != "instructions-ok":
            page.locator("#instructions-next").click()  # instructions of several pages
        page.locator("#instructions-ok").click()
        previous, trials, pauses, catches = None, 0, 0, 0
        for _ in range(200):
            try:
                page.wait_for_function(NEXT_SCREEN, arg=previous, timeout=60_000)
            except Exception:
                state = page.evaluate("[location.href, document.querySelector('.qn-stage')?.dataset.state,"
                                      " document.body.innerText.slice(0, 600)]")
                raise AssertionError(f"after trial {previous}, no next screen: {state}") from None
            page.set_viewport_size(dict(zip(("width", "height"), SIZES[(trials + pauses) % 2])))
            page.evaluate(FRAMES)  # the page lays itself out again for the new window
            if "debrief" in page.url or "screened" in page.url:
                break
            if _continue_pause(page):
                pauses += 1
                continue
            trial = page.evaluate("window.gazelabLastTrial")
            _assert_inside(page, CONTROLS, f"trial {trial['id']} ({trial['task']})")
            _answer(page, trial)
            catches += any(q["id"] == "catch" for q in trial["questions"])
            previous, trials = trial["id"], trials + 1
        assert "debrief" in page.url, f"the walk ended on {page.url}"
        _assert_inside(page, "#debrief-ok", "the debrief")
        page.locator("#debrief-ok").click()
        code = page.locator("#completion-code").inner_text()
    with app.extensions["studyweb.sessions"]() as db:
        experiment = db.query(Experiment).filter_by(name=example.stem).one()
        participant = db.query(Participant).filter_by(experiment_id=experiment.id).one()
        assert participant.status == "complete"
        assert code == participant.completion_code == experiment.settings["completion_code"]
        assert trials == sum(not t.is_practice for t in participant.trials) >= 3
        assert catches >= 1 if design.get("catch") else catches == 0  # answered right: still complete


def _answer(page, trial: dict) -> None:
    """Answer the trial on screen as an attentive participant (catch trials right) and send it;
    a trial of several questions asks them one screen ("part k of n") after another."""
    is_catch = any(q["id"] == "catch" for q in trial["questions"])
    for part in range(len(trial["questions"])):
        progress = page.locator(".qn-progress").inner_text()
        if trial["task"] == "choose_best":
            label = page.evaluate(SAME_AS_INPUT, trial) if is_catch else trial["candidates"][0]["label"]
            assert label is not None, "the catch trial shows no candidate identical to the input"
            page.locator(f'.qn-candidate[data-label="{label}"]').click()
        elif trial["task"] == "rate":
            scores = trial["scale"]["scores"]
            page.locator(".qn-scale .qn-choice").nth(scores.index(max(scores)) if is_catch else len(scores) // 2).click()
        elif trial["task"] == "pick_region":
            x, y = trial["regions"][0]["point"]
            box = page.locator(".qn-pick img").bounding_box()
            page.mouse.click(box["x"] + x * box["width"] / trial["natural_w"],
                             box["y"] + y * box["height"] / trial["natural_h"])
            if trial.get("follow_up"):
                page.locator(".qn-followup .qn-choice").first.click()
        else:
            page.locator("textarea.qn-text").fill("A few objects on a grey floor.")
        page.locator("button.qn-next").click()
        if part + 1 < len(trial["questions"]):
            page.wait_for_function("(before) => document.querySelector('.qn-progress')?.textContent !== before",
                                   arg=progress)
            _assert_inside(page, CONTROLS, f"trial {trial['id']}, question {part + 2}")


def _continue_pause(page) -> bool:
    """Continue the design's pause on screen (checked inside the window); False without one."""
    if not page.locator(".pace-continue").count():
        return False
    _assert_inside(page, ".pace-continue", "a pause")
    page.locator(".pace-continue").click()
    page.locator(".pace-continue").wait_for(state="detached")
    return True


def _assert_inside(page, selector: str, where: str) -> None:
    found = page.evaluate(INSIDE, selector)
    size = page.viewport_size
    assert found["n"] > 0, f"{where}: no control on screen"
    assert not found["wide"], f"{where} at {size}: wider than the window"
    assert not found["outside"], f"{where} at {size}: controls outside the window: {found['outside']}"


BUBBLEVIEW_NEXT = """() => location.pathname.includes('debrief') || document.querySelector('.pace-continue') !== null
  || [...document.querySelectorAll('button.start')].some((b) => b.offsetParent !== null)
  || ['running', 'describe'].includes(document.querySelector('canvas.bv-canvas')?.dataset.state)"""


def test_a_participant_walks_the_bubbleview_example_from_consent_to_the_completion_code(serve_with, app, tmp_path):
    """bubbleview_describe.yaml (its time limit cut to 2 s to keep the walk short): the practice
    and every trial clicked, then described, at both window sizes in turn."""
    from studyweb.db.schema import Experiment, Participant
    from studyweb.designs import create_from_design

    example = next(e for e in EXAMPLES if e.stem == "bubbleview_describe")
    dataset = example_dataset(tmp_path / "walk", 4)
    design = yaml.safe_load(example.read_text())
    design.update(per_participant=2, completion_code="BVWALK")
    design["blocks"][0]["time_limit_s"] = 2
    base = serve_with(lambda db: create_from_design(db, design, dataset.path, "bvwalk"))
    described = 0
    with chromium_page(*SIZES[0]) as page:
        page.goto(f"{base}/s/bvwalk?PROLIFIC_PID=walk-bv")
        page.locator("#consent-yes").wait_for(state="visible")
        assert "blurred" in page.locator("#consent-text").inner_text().lower()
        page.locator("#consent-yes").click()
        page.locator("#instructions-ok").click()
        for step in range(40):
            page.wait_for_function(BUBBLEVIEW_NEXT, timeout=60_000)
            page.set_viewport_size(dict(zip(("width", "height"), SIZES[step % 2])))
            page.evaluate(FRAMES)
            if "debrief" in page.url:
                break
            if page.locator(".pace-continue").count():
                page.locator(".pace-continue").click()
                continue
            state = page.locator("canvas.bv-canvas").get_attribute("data-state")
            if state == "running":
                box = page.locator("canvas.bv-canvas").bounding_box()
                page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
                page.wait_for_function("document.querySelector('canvas.bv-canvas')?.dataset.state !== 'running'")
            elif state == "describe":
                _assert_inside(page, "textarea.bv-text, button.bv-done", "a description")
                page.locator("textarea.bv-text").fill("Some shapes on a grey floor.")
                page.locator("button.bv-done").click()
                page.wait_for_function("document.querySelector('canvas.bv-canvas')?.dataset.state !== 'describe'")
                described += 1
            else:
                _assert_inside(page, "button.start", "the start of a trial")
                page.locator("button.start:visible").first.click()
                page.wait_for_function("document.querySelector('canvas.bv-canvas')?.dataset.state === 'running'")
        assert "debrief" in page.url, f"the walk ended on {page.url}"
        _assert_inside(page, "#debrief-ok", "the debrief")
        page.locator("#debrief-ok").click()
        code = page.locator("#completion-code").inner_text()
    with app.extensions["studyweb.sessions"]() as db:
        experiment = db.query(Experiment).filter_by(name="bvwalk").one()
        participant = db.query(Participant).filter_by(experiment_id=experiment.id).one()
        assert participant.status == "complete" and code == "BVWALK"
        assert described == len(participant.trials) == 3  # the practice and 2 images, each described
        assert all(t.response_text == "Some shapes on a grey floor." for t in participant.trials)


CODECHARTS_NEXT = """() => location.pathname.includes('debrief') || location.pathname.includes('screened')
  || document.querySelector('.pace-continue') !== null
  || [...document.querySelectorAll('button.start')].some((b) => b.offsetParent !== null)
  || document.querySelector('.cc-stage')?.dataset.screen === 'answer'"""
CODECHARTS = [e for e in EXAMPLES if e.stem in ("codecharts_attention", "gatys_latin_square")]


@pytest.mark.parametrize("example", CODECHARTS, ids=[e.stem for e in CODECHARTS])
def test_a_participant_walks_a_codecharts_example_through_the_tutorial_to_the_completion_code(
        example, serve_with, app, tmp_path):
    """The CodeCharts examples (screens cut to a fraction of a second to keep the walk short):
    the tutorial passed by typing a code on each chart and the one at each red dot, found by
    looking at its screen; every image and sentinel answered; the design's pauses; the window
    at both sizes in turn."""
    import math

    from studyweb.codecharts import locate_sentinel_target
    from studyweb.db.schema import Experiment, Participant
    from studyweb.designs import create_from_design

    dataset = example_dataset(tmp_path / "walk", 4)
    design = yaml.safe_load(example.read_text())
    design["methods"] = method_outputs(example, tmp_path / "edits", dataset)
    design.update(per_participant=1 if design.get("conditions") else 2, completion_code="CCWALK")
    design["stimuli"] = {**design.get("stimuli", {}), "pairs": 4}
    block = design["blocks"][0]
    block["codecharts"] = {**block.get("codecharts", {}), "fixation_ms": 100, "image_ms": [300], "chart_ms": 300}
    design["iti_ms"] = min(design.get("iti_ms", 0), 300)
    base = serve_with(lambda db: create_from_design(db, design, dataset.path, example.stem))
    answered, pauses = 0, 0
    with chromium_page(*SIZES[0]) as page:
        page.goto(f"{base}/s/{example.stem}?PROLIFIC_PID=walk-cc")
        page.locator("#consent-yes").wait_for(state="visible")
        assert "code" in page.locator("#consent-text").inner_text().lower()
        page.locator("#consent-yes").click()
        while page.wait_for_selector("#instructions-ok, #instructions-next").get_attribute("id") != "instructions-ok":
            page.locator("#instructions-next").click()
        page.locator("#instructions-ok").click()
        for step in range(80):
            page.wait_for_function(CODECHARTS_NEXT, timeout=60_000)
            if "debrief" in page.url or "screened" in page.url:
                break
            if _continue_pause(page):
                pauses += 1
                continue
            if page.locator(".cc-stage").get_attribute("data-screen") != "answer":
                page.set_viewport_size(dict(zip(("width", "height"), SIZES[answered % 2])))
                page.evaluate(FRAMES)
                _assert_inside(page, "button.start", "the start of a trial")
                page.locator("button.start:visible").first.click()
                page.wait_for_function(CODECHARTS_NEXT.replace("[...document.querySelectorAll('button.start')]"
                                                               ".some((b) => b.offsetParent !== null)", "false"))
                continue
            trial, chart = page.evaluate("[window.gazelabLastTrial, window.gazelabLastChart]")
            if trial["kind"] == "sentinel":
                x, y = locate_sentinel_target(chart["sentinel_png"], chart["width"])
                code = min(chart["codes"], key=lambda c: math.hypot(c["x"] - x, c["y"] - y))["code"]
            else:
                code = chart["codes"][(7 * answered + 3) % len(chart["codes"])]["code"]
            _assert_inside(page, "#cc-code", f"the answer of trial {trial['id']}")
            page.locator("#cc-code").fill(code)
            page.keyboard.press("Enter")
            page.wait_for_function("(id) => location.pathname.includes('debrief')"
                                   " || document.querySelector('.cc-stage')?.dataset.screen !== 'answer'"
                                   " || window.gazelabLastTrial.id !== id", arg=trial["id"])
            answered += 1
        assert "debrief" in page.url, f"the walk ended on {page.url}"
        page.locator("#debrief-ok").click()
        code = page.locator("#completion-code").inner_text()
    with app.extensions["studyweb.sessions"]() as db:
        experiment = db.query(Experiment).filter_by(name=example.stem).one()
        participant = db.query(Participant).filter_by(experiment_id=experiment.id).one()
        assert participant.status == "complete" and code == "CCWALK"
        assert answered == len(participant.trials)
        assert pauses >= (1 if design.get("between_blocks") else 0)
