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
    from studyweb.db import Experiment, Participant
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
            if page.locator(".pace-continue").count():
                _assert_inside(page, ".pace-continue", "a pause")
                page.locator(".pace-continue").click()
                page.locator(".pace-continue").wait_for(state="detached")
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


def _assert_inside(page, selector: str, where: str) -> None:
    found = page.evaluate(INSIDE, selector)
    size = page.viewport_size
    assert found["n"] > 0, f"{where}: no control on screen"
    assert not found["wide"], f"{where} at {size}: wider than the window"
    assert not found["outside"], f"{where} at {size}: controls outside the window: {found['outside']}"
