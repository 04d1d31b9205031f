"""Browser tests of the pauses a design asks for (static/pacing.js, `studyweb.workload.pace_trials`):
a questionnaire shows its between-blocks text and its breaks, each waiting for Continue, and a
mid-grey full-window screen between trials; a CodeCharts study with conditions (Gatys et al.'s
Latin square) shows the between-blocks screen and the grey inter-trial interval between its
blocks. No test asserts on durations: a loaded machine shows screens late, never in another
order."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from support.browser import chromium_page, require_browser

pytestmark = pytest.mark.browser
require_browser()
GREY = (128, 128, 128)
BETWEEN = "That part is done. Next: how realistic each image looks on its own."


@pytest.fixture
def make_study(serve_with, tmp_path, write_pair):
    """make_study(name, design, size) -> base URL of the app serving `design` (its one method
    'edit', a grey copy of each input) made on 2 pairs of `size` images."""
    from datadir import Dataset
    from studyweb.designs import create_from_design

    def start(name: str, design: dict, size: tuple[int, int]) -> str:
        ds = Dataset.create(tmp_path / name, name, seed=1)
        ds.add_pairs([write_pair(ds.path, f"{name}{i}", size=size) for i in range(2)])
        folder = tmp_path / name / "edit"
        folder.mkdir()
        for pair_id in ds.pairs["pair_id"]:
            cv2.imwrite(str(folder / f"{pair_id}.png"), np.full((size[1], size[0], 3), 90, np.uint8))
        design = {"observers": 5, "completion_code": "PACE1", "methods": {"edit": str(folder)}, **design}
        return serve_with(lambda db: create_from_design(db, design, ds.path, name))

    return start


def test_a_questionnaire_pauses_between_blocks_for_breaks_and_between_trials(make_study):
    base = make_study("qpace", {
        "per_participant": 2, "iti_ms": 1500, "break_after": 3, "between_blocks": BETWEEN,
        "blocks": [{"name": "fidelity", "task": "rate", "scale": "fidelity", "image": "edit"},
                   {"name": "realism", "task": "rate", "scale": "realism", "image": "edit"}]}, (120, 90))
    with chromium_page(1200, 800) as page:
        _enter(page, base, "qpace")
        seen = []
        for n in range(1, 5):
            page.wait_for_function(f"document.querySelector('.qn-progress')?.textContent === 'Question {n} of 4'"
                                   " && document.querySelector('.qn-stage').dataset.state === 'answering'")
            assert page.locator(".pace-screen").count() == 0  # gone before the trial
            page.locator(".qn-scale .qn-choice").first.click()
            page.locator("button.qn-next").click()
            if n == 4:
                break
            kind = page.wait_for_selector(".pace-screen").get_attribute("data-pace")
            if kind != "iti":
                seen.append((kind, page.locator(".pace-screen h2").inner_text(),
                             page.locator(".pace-screen p").first.inner_text()))
                assert page.locator(".pace-continue").is_visible()
                page.locator(".pace-continue").click()
                kind = page.wait_for_selector(".pace-screen").get_attribute("data-pace")
            assert kind == "iti"
            assert _centre(page) == GREY  # mid-grey, the whole window
            seen.append(("iti",))
        page.wait_for_url("**/debrief*")
    assert seen == [("iti",), ("block", "Part 1 of 2 done", BETWEEN), ("iti",),
                    ("break", "Time for a short break", "You have done 3 of 4 trials. Rest your eyes for a moment,"
                                                        " then press Continue."), ("iti",)]


def test_codecharts_blocks_of_conditions_pause_between_blocks_with_a_grey_interval(make_study):
    base = make_study("ccpace", {
        "per_participant": 1, "conditions": ["original", "edit"], "iti_ms": 1500, "between_blocks": BETWEEN,
        "blocks": [{"name": "look", "task": "codecharts", "codecharts": {
            "tutorial": False, "fixation_ms": 100, "image_ms": [200], "chart_ms": 300, "sentinel_every": 50}}]},
        (480, 360))
    with chromium_page(1100, 900) as page:
        _enter(page, base, "ccpace")
        for block in range(2):
            page.locator("button.start").click()
            page.wait_for_function("document.querySelector('.cc-stage').dataset.screen === 'answer'")
            chart = page.evaluate("window.gazelabLastChart")
            page.locator("#cc-code").fill(chart["codes"][0]["code"])
            page.keyboard.press("Enter")
            if block == 0:
                screen = page.wait_for_selector('.pace-screen[data-pace="block"]')
                assert BETWEEN in screen.inner_text() and "Part 1 of 2 done" in screen.inner_text()
                page.locator(".pace-continue").click()
                page.wait_for_selector('.pace-screen[data-pace="iti"]')
                assert _centre(page) == GREY
                page.wait_for_selector(".pace-screen", state="detached")
        page.wait_for_url("**/debrief*")


def _enter(page, base, name):
    page.goto(f"{base}/s/{name}?PROLIFIC_PID={name}1")
    page.locator("#consent-yes").click()
    page.locator("#instructions-ok").click()
    page.wait_for_url("**/task*")


def _centre(page) -> tuple[int, int, int]:
    """The RGB colour at the middle of the viewport."""
    shot = cv2.imdecode(np.frombuffer(page.screenshot(), np.uint8), cv2.IMREAD_COLOR)
    b, g, r = shot[shot.shape[0] // 2, shot.shape[1] // 2]
    return int(r), int(g), int(b)
