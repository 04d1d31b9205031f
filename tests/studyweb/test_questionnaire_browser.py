"""Browser tests of the questionnaire task page (static/questionnaire.js, static/questionnaire_flow.js)
against the real server: one trial of each task type answered as a participant would (click a
candidate, a scale button, an object; type a text), what the database stored, what the screen
shows; and a pick on no object asked again, whether the page or the server catches it.

Images are 120x90 px: four methods' outputs of flat, distinct colours, and an input whose mask
holds a disc (mask id 1) and a rectangle (mask id 2)."""
from __future__ import annotations


import cv2
import numpy as np
import pytest

from support.browser import chromium_page, require_browser

pytestmark = pytest.mark.browser
require_browser()
SIZE = (120, 90)  # natural size of every image, (w, h) px
METHODS = {"red": (40, 40, 220), "green": (40, 200, 40), "blue": (220, 60, 40), "yellow": (40, 220, 230)}  # BGR
DISC = ((30, 25), 18)  # mask id 1: centre (x, y), radius, image px
RECT = ((60, 40), (109, 79))  # mask id 2: inclusive corners, image px
FIDELITY = ["not edited", "slightly edited", "moderately edited", "definitely edited"]


@pytest.fixture
def serve(serve_with, tmp_path, write_pair):
    """serve(name, block) -> base URL of the app (werkzeug, in a thread) with questionnaire
    experiment `name` of one block (one trial per participant) on one pair of 120x90 images and
    the four METHODS' outputs."""
    from datagen.dataset import Dataset
    from studyweb.designs import create_from_design

    def start(name: str, block: dict) -> str:
        ds = Dataset.create(tmp_path / name, name, seed=1)
        pair_id = f"{name}0"
        ds.add_pairs([write_pair(ds.path, pair_id, size=SIZE)])
        cv2.imwrite(str(ds.path / f"masks/{pair_id}_x.png"), _mask())
        folders = {}
        for method, colour in METHODS.items():
            folder = tmp_path / name / "edits" / method
            folder.mkdir(parents=True)
            cv2.imwrite(str(folder / f"{pair_id}.png"), np.full((SIZE[1], SIZE[0], 3), colour, np.uint8))
            folders[method] = str(folder)
        design = {"title": "Questions", "per_participant": 1, "observers": 10, "completion_code": "QN1",
                  "methods": folders, "blocks": [{"name": block["task"], **block}]}
        return serve_with(lambda db: create_from_design(db, design, ds.path, name))

    return start


@pytest.fixture
def page():
    with chromium_page(1200, 800) as page:
        yield page


def test_choose_best_shows_the_candidates_side_by_side_and_stores_the_chosen_method(serve, page, app):
    base = serve("best", {"task": "choose_best", "questions": [{"id": "realism", "text": "Which is most realistic?"}],
                          "reference": {"input": True, "target_map": True}})
    trial = _enter(page, base, "best", "best1")
    labels = [c["label"] for c in trial["candidates"]]
    assert len(labels) == 4
    assert page.locator(".qn-question").inner_text() == "Which is most realistic?"
    assert page.locator(".qn-progress").inner_text() == "Question 1 of 1"
    assert page.locator(".qn-figure figcaption").all_inner_texts() == ["Original", "Target attention"]
    boxes = [page.locator(f'.qn-candidate[data-label="{label}"] img').bounding_box() for label in labels]
    # Side by side, in the server's order, each at twice its natural size (the most allowed).
    assert [b["x"] for b in boxes] == sorted(b["x"] for b in boxes) and len({round(b["x"]) for b in boxes}) == 4
    assert len({round(b["y"]) for b in boxes}) == 1
    assert all((round(b["width"]), round(b["height"])) == (2 * SIZE[0], 2 * SIZE[1]) for b in boxes)
    shot = _screenshot(page)
    methods = _candidate_methods(app, "best1")
    for label, box in zip(labels, boxes):  # each box shows its candidate's image
        centre = shot[int(box["y"] + box["height"] / 2), int(box["x"] + box["width"] / 2)].astype(int)
        assert np.abs(centre - METHODS[methods[label]]).max() <= 10, (label, centre)
    assert page.locator("button.qn-next").is_disabled()
    page.locator(f'.qn-candidate[data-label="{labels[2]}"] img').click()
    page.locator("button.qn-next").click()
    page.wait_for_url("**/debrief*")
    (response,) = _responses(app, "best1")
    assert (response.task, response.question, response.choice) == ("choose_best", "realism", methods[labels[2]])
    assert response.payload["label"] == labels[2]
    assert response.shown_methods == [methods[label] for label in labels]


def test_rate_shows_the_scale_in_order_and_stores_the_score_of_the_chosen_label(serve, page, app):
    base = serve("fid", {"task": "rate", "image": "blue", "scale": "fidelity", "reference": {"input": True}})
    _enter(page, base, "fid", "rate1")
    assert page.locator(".qn-figure figcaption").all_inner_texts() == ["Original", "Image to rate"]
    buttons = page.locator(".qn-scale .qn-choice")
    assert buttons.all_inner_texts() == FIDELITY
    boxes = [buttons.nth(i).bounding_box() for i in range(4)]
    assert [b["x"] for b in boxes] == sorted(b["x"] for b in boxes)
    shot = _screenshot(page)
    for box in boxes:  # drawn on screen: a dark border on the light page at the button's edge
        edge = shot[int(box["y"] + box["height"] / 2), int(box["x"]) + 1].astype(int)
        assert edge.max() < 200, edge
    page.get_by_text("moderately edited").click()
    page.locator("button.qn-next").click()
    page.wait_for_url("**/debrief*")
    (response,) = _responses(app, "rate1")
    assert (response.task, response.rating) == ("rate", 1.0)  # GazeShiftNet: moderately edited = 1


def test_pick_region_stores_the_point_in_image_pixels_and_the_follow_up(serve, page, app):
    base = serve("pick", {"task": "pick_region", "image": "original", "question": "Click on the edited object.",
                          "follow_up": {"id": "sure", "text": "Are you sure?", "choices": ["yes", "no"]}})
    trial = _enter(page, base, "pick", "pick1")
    assert sorted(r["id"] for r in trial["regions"]) == [1, 2]
    image = page.locator(".qn-pick img").bounding_box()
    scale = image["width"] / SIZE[0]
    # The objects' boxes are outlined where the objects are (display px = image px x scale).
    for region in trial["regions"]:
        outline = page.locator(f'.qn-region[data-region="{region["id"]}"]').bounding_box()
        x0, y0, x1, y1 = region["box"]
        assert outline["x"] == pytest.approx(image["x"] + x0 * scale, abs=1.5)
        assert outline["width"] == pytest.approx((x1 - x0) * scale, abs=1.5)
        assert outline["y"] == pytest.approx(image["y"] + y0 * scale, abs=1.5)
    assert page.locator(".qn-followup").is_hidden()
    _click_image_px(page, image, scale, 90.5, 60.25)  # inside the rectangle
    assert page.locator(".qn-followup").is_visible() and page.locator(".qn-hint").inner_text() == ""
    assert page.locator(".qn-marker").is_visible()
    assert page.locator("button.qn-next").is_disabled()  # the follow-up is not answered yet
    page.get_by_text("yes", exact=True).click()
    marker = _screenshot(page)[int(image["y"] + 60.25 * scale), int(image["x"] + 90.5 * scale)].astype(int)
    assert marker[2] > 180 and marker[:2].max() < 80, marker  # the red dot where the click was
    page.locator("button.qn-next").click()
    page.wait_for_url("**/debrief*")
    pick, sure = sorted(_responses(app, "pick1"), key=lambda r: r.question == "sure")
    assert (pick.question, pick.choice) == (trial["questions"][0]["id"], "2")  # the rectangle's mask id
    assert pick.x == pytest.approx(90.5, abs=1) and pick.y == pytest.approx(60.25, abs=1)
    assert (sure.question, sure.choice) == ("sure", "yes")


def test_describe_counts_the_characters_and_stores_the_text(serve, page, app):
    base = serve("words", {"task": "describe", "image": "green", "question": "Describe the image.", "max_chars": 40})
    _enter(page, base, "words", "words1")
    text = page.locator("textarea.qn-text")
    assert text.is_visible() and text.get_attribute("maxlength") == "40"
    page.locator("textarea.qn-text").fill("   ")
    assert page.locator("button.qn-next").is_disabled()  # blank is no answer
    page.locator("textarea.qn-text").fill("A green square, évidemment")
    assert page.locator(".qn-counter").inner_text() == "26 / 40 characters"
    page.locator("button.qn-next").click()
    page.wait_for_url("**/debrief*")
    (response,) = _responses(app, "words1")
    assert (response.task, response.text) == ("describe", "A green square, évidemment")


def test_a_pick_on_no_object_is_asked_again_by_the_page_and_by_the_server(serve, page, app):
    base = serve("miss", {"task": "pick_region", "image": "original", "question": "Click on the edited object."})
    _enter(page, base, "miss", "miss1")
    image = page.locator(".qn-pick img").bounding_box()
    scale = image["width"] / SIZE[0]
    _click_image_px(page, image, scale, 55, 80)  # outside every box: the page says so
    assert page.locator(".qn-hint").inner_text() == "Click on one of the outlined objects."
    assert page.locator("button.qn-next").is_disabled() and page.locator(".qn-marker").is_hidden()
    # In the disc's box but outside the disc: the page lets it through, the server refuses it.
    (cx, cy), r = DISC
    _click_image_px(page, image, scale, cx - r + 1.5, cy - r + 1.5)
    assert page.locator(".qn-hint").inner_text() == ""
    page.locator("button.qn-next").click()
    page.wait_for_function("document.querySelector('.qn-hint')?.textContent.includes('could not be saved')")
    assert "on no object" in page.locator(".qn-hint").inner_text()
    assert page.locator(".qn-stage").get_attribute("data-state") == "answering"
    assert _responses(app, "miss1") == []
    _click_image_px(page, image, scale, cx, cy)  # the disc's centre
    page.locator("button.qn-next").click()
    page.wait_for_url("**/debrief*")
    (response,) = _responses(app, "miss1")
    assert response.choice == "1" and response.x == pytest.approx(cx, abs=1) and response.y == pytest.approx(cy, abs=1)


# --- helpers -------------------------------------------------------------------------------


def _mask() -> np.ndarray:
    mask = np.zeros((SIZE[1], SIZE[0]), np.uint8)
    cv2.circle(mask, *DISC, color=1, thickness=-1)
    cv2.rectangle(mask, *RECT, color=2, thickness=-1)
    return mask


def _enter(page, base, name, recruit_id) -> dict:
    """Consent, read the instructions, and wait for the first trial's screen; the trial as the page has it."""
    page.goto(f"{base}/s/{name}?PROLIFIC_PID={recruit_id}")
    page.locator("#consent-yes").click()
    page.locator("#instructions-ok").click()
    page.wait_for_url("**/task*")
    page.wait_for_selector('.qn-stage[data-state="answering"]')
    return page.evaluate("window.gazelabLastTrial")


def _click_image_px(page, image, scale, x, y):
    page.mouse.click(image["x"] + x * scale, image["y"] + y * scale)


def _screenshot(page) -> np.ndarray:
    """The viewport as a BGR array (CSS px = device px here)."""
    return cv2.imdecode(np.frombuffer(page.screenshot(), np.uint8), cv2.IMREAD_COLOR)


def _candidate_methods(app, recruit_id) -> dict[str, str]:
    """label -> method of the participant's choose_best trial (hidden from the page)."""
    from studyweb.db import Participant

    db = app.extensions["studyweb.sessions"]()
    try:
        (trial,) = db.query(Participant).filter_by(recruit_id=recruit_id).one().trials
        return {c["label"]: c["method"] for c in trial.spec["candidates"]}
    finally:
        db.close()


def _responses(app, recruit_id) -> list:
    from studyweb.db import Participant, Response

    db = app.extensions["studyweb.sessions"]()
    try:
        participant = db.query(Participant).filter_by(recruit_id=recruit_id).one()
        responses = db.query(Response).filter_by(participant_id=participant.id).order_by(Response.id).all()
        db.expunge_all()
        return responses
    finally:
        db.close()
