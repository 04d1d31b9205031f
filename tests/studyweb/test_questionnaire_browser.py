"""Browser tests of the questionnaire task page (static/questionnaire.js, static/questionnaire_flow.js)
against the real server: one trial of each task type answered as a participant would (click a
candidate, a scale button, an object; type a text), what the database stored, what the screen
shows. pick_region: the object highlighted is the mask's object under the pointer, drawn over
its own mask pixels, and the one stored; a click on the background (even inside an object's
bounding box) picks nothing; the follow-up about the original shows the original.

Images are 120x90 px: a flat grey input, four methods' outputs of flat, distinct colours; the
input's mask holds a disc (mask id 1), a rectangle (mask id 2) and a square (mask id 3) inside
the disc's bounding box but off the disc, so a box-based page would take it for the disc."""
from __future__ import annotations


import cv2
import numpy as np
import pytest

from support.browser import chromium_page, require_browser

pytestmark = pytest.mark.browser
require_browser()
SIZE = (120, 90)  # natural size of every image, (w, h) px
METHODS = {"red": (40, 40, 220), "green": (40, 200, 40), "blue": (220, 60, 40), "yellow": (40, 220, 230)}  # BGR
INPUT = (128, 128, 128)  # BGR of the input image
DISC = ((30, 25), 18)  # mask id 1: centre (x, y), radius, image px
RECT = ((60, 40), (109, 79))  # mask id 2: inclusive corners, image px
SQUARE = ((40, 33), (47, 43))  # mask id 3: in the disc's box (x 12-48, y 7-43), off the disc
FIDELITY = ["not edited", "slightly edited", "moderately edited", "definitely edited"]
PICK_HINT = "Click on one of the objects (it is outlined when the pointer is over it)."


@pytest.fixture
def serve(serve_with, tmp_path, write_pair):
    """serve(name, block) -> base URL of the app (werkzeug, in a thread) with questionnaire
    experiment `name` of one block (one trial per participant) on one pair of 120x90 images and
    the four METHODS' outputs."""
    from datadir import Dataset
    from studyweb.designs import create_from_design

    def start(name: str, block: dict) -> str:
        ds = Dataset.create(tmp_path / name, name, seed=1)
        pair_id = f"{name}0"
        ds.add_pairs([write_pair(ds.path, pair_id, size=SIZE)])
        for side in ("x", "y"):
            cv2.imwrite(str(ds.path / f"images/{pair_id}_{side}.png"), np.full((SIZE[1], SIZE[0], 3), INPUT, np.uint8))
            cv2.imwrite(str(ds.path / f"masks/{pair_id}_{side}.png"), _mask())
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


def test_pick_region_highlights_the_object_s_own_pixels_and_stores_it_with_the_follow_up(serve, page, app):
    base = serve("pick", {"task": "pick_region", "image": "original", "question": "Click on the edited object.",
                          "follow_up": {"id": "sure", "text": "Are you sure?", "choices": ["yes", "no"]}})
    _enter(page, base, "pick", "pick1")
    image = page.locator(".qn-pick img").bounding_box()
    scale = image["width"] / SIZE[0]
    assert page.locator(".qn-followup").is_hidden()
    page.mouse.move(2, 2)
    before = _screenshot(page)
    _click_image_px(page, image, scale, 90.5, 60.25)  # inside the rectangle
    assert page.locator(".qn-followup").is_visible() and page.locator(".qn-hint").inner_text() == ""
    assert page.locator(".qn-marker").is_visible()
    assert page.locator("button.qn-next").is_disabled()  # the follow-up is not answered yet
    page.get_by_text("yes", exact=True).click()
    after = _screenshot(page)
    marker = after[int(image["y"] + 60.25 * scale), int(image["x"] + 90.5 * scale)].astype(int)
    assert marker[2] > 180 and marker[:2].max() < 80, marker  # the red dot where the click was
    # What changed on screen is the rectangle's mask pixels, all of them (and the dot).
    assert _highlight_is(_changed_image_px(before, after, image, scale), 2, click=(90.5, 60.25))
    assert _picked(page) == "2"
    page.locator("button.qn-next").click()
    page.wait_for_url("**/debrief*")
    pick, sure = sorted(_responses(app, "pick1"), key=lambda r: r.question == "sure")
    assert (pick.question, pick.choice) == ("pick_region", "2")  # the rectangle's mask id
    assert pick.x == pytest.approx(90.5, abs=1) and pick.y == pytest.approx(60.25, abs=1)
    assert (sure.question, sure.choice) == ("sure", "yes")


def test_where_boxes_overlap_the_object_highlighted_is_the_object_stored(serve, page, app):
    base = serve("overlap", {"task": "pick_region", "image": "original", "question": "Click on the edited object."})
    trial = _enter(page, base, "overlap", "overlap1")
    (disc_box,) = [r["box"] for r in trial["regions"] if r["id"] == 1]
    image = page.locator(".qn-pick img").bounding_box()
    scale = image["width"] / SIZE[0]
    x, y = 46.3, 41.6  # on the square, inside the disc's bounding box
    assert disc_box[0] <= x <= disc_box[2] and disc_box[1] <= y <= disc_box[3]
    page.mouse.move(2, 2)
    before = _screenshot(page)
    _click_image_px(page, image, scale, x, y)
    page.mouse.move(2, 2)
    assert _highlight_is(_changed_image_px(before, _screenshot(page), image, scale), 3, click=(x, y))
    assert not page.locator("button.qn-next").is_disabled()
    assert (_picked(page), _hovered(page)) == ("3", "")
    page.mouse.move(image["x"] + x * scale, image["y"] + y * scale)
    assert _hovered(page) == "3"  # the object under the pointer
    page.mouse.move(image["x"] + 30.5 * scale, image["y"] + 30.5 * scale)
    assert _hovered(page) == "1"
    page.locator("button.qn-next").click()
    page.wait_for_url("**/debrief*")
    (response,) = _responses(app, "overlap1")
    label = _mask()[int(np.floor(response.y)), int(np.floor(response.x))]
    assert response.choice == str(label) == "3"


def test_a_click_on_the_background_inside_a_box_picks_nothing_and_stores_nothing(serve, page, app):
    base = serve("miss", {"task": "pick_region", "image": "original", "question": "Click on the edited object."})
    trial = _enter(page, base, "miss", "miss1")
    image = page.locator(".qn-pick img").bounding_box()
    scale = image["width"] / SIZE[0]
    (cx, cy), r = DISC
    x, y = cx - r + 1.5, cy - r + 1.5  # in the disc's box (and the page's old outline), off the disc
    (disc_box,) = [r["box"] for r in trial["regions"] if r["id"] == 1]
    assert disc_box[0] <= x <= disc_box[2] and disc_box[1] <= y <= disc_box[3] and _mask()[int(y), int(x)] == 0
    page.mouse.move(2, 2)
    before = _screenshot(page)
    _click_image_px(page, image, scale, x, y)
    page.mouse.move(2, 2)
    assert page.locator("button.qn-next").is_disabled()
    assert not _changed_image_px(before, _screenshot(page), image, scale).any()  # nothing highlighted
    assert page.locator(".qn-marker").is_hidden() and page.locator(".qn-hint").inner_text() == PICK_HINT
    assert _picked(page) == ""
    page.mouse.move(image["x"] + x * scale, image["y"] + y * scale)
    assert _hovered(page) == ""
    _click_image_px(page, image, scale, 55, 80)  # outside every box: the same
    assert _picked(page) == "" and page.locator("button.qn-next").is_disabled()
    assert _responses(app, "miss1") == []
    _click_image_px(page, image, scale, cx, cy)  # the disc's centre
    assert _picked(page) == "1"
    page.locator("button.qn-next").click()
    page.wait_for_url("**/debrief*")
    (response,) = _responses(app, "miss1")
    assert response.choice == "1" and response.x == pytest.approx(cx, abs=1) and response.y == pytest.approx(cy, abs=1)


def test_the_follow_up_about_the_original_shows_the_original_beside_the_edited_image(serve, page, app):
    base = serve("again", {"task": "pick_region", "image": "blue", "question": "Click on the most salient object.",
                           "follow_up": {"id": "different", "text": "Is it a different object from the original's?"}})
    _enter(page, base, "again", "again1")
    original = page.locator(".qn-reference")
    assert original.is_hidden()  # the pick itself is made on the edited image alone
    picture = page.locator(".qn-pick img").bounding_box()
    scale = picture["width"] / SIZE[0]
    _click_image_px(page, picture, scale, 85, 60)
    assert original.is_visible() and original.locator("figcaption").inner_text() == "Original"
    assert page.locator(".qn-followup-text").inner_text() == "Is it a different object from the original's?"
    assert page.locator(".qn-pick img").bounding_box() == picture  # the picture did not move
    box = original.locator("img").bounding_box()
    assert (round(box["width"]), round(box["height"])) == (round(picture["width"]), round(picture["height"]))
    assert box["x"] + box["width"] <= picture["x"] and abs(box["y"] - picture["y"]) <= 1  # beside it
    shot = _screenshot(page)
    seen = shot[int(box["y"] + 5), int(box["x"] + 5)].astype(int)
    assert np.abs(seen - INPUT).max() <= 10, seen  # the input image, not the edited one
    edited = shot[int(picture["y"] + 5), int(picture["x"] + 5)].astype(int)
    assert np.abs(edited - METHODS["blue"]).max() <= 10, edited
    page.get_by_text("no", exact=True).click()
    page.locator("button.qn-next").click()
    page.wait_for_url("**/debrief*")
    assert sorted((r.question, r.choice) for r in _responses(app, "again1")) == [("different", "no"),
                                                                               ("pick_region", "2")]


def test_the_page_reads_the_mask_pixel_the_server_reads(serve, page):
    """label_mask.maskCell against tasks.pick_region.mask_cell on points as the page sends them
    (rounded to 0.01 px), pixel borders included, for masks of the image's size and others."""
    from studyweb.tasks.pick_region import mask_cell

    base = serve("rule", {"task": "pick_region", "image": "original", "question": "Click on an object."})
    _enter(page, base, "rule", "rule1")
    rng = np.random.default_rng(5)
    cases = []
    for mask_w, mask_h in [(120, 90), (37, 23), (333, 250)]:
        borders = [(round(k * SIZE[0] / mask_w, 2), round(k * SIZE[1] / mask_h, 2))
                   for k in range(min(mask_w, mask_h) + 1)]
        points = [(round(float(x), 2), round(float(y), 2)) for x, y in rng.uniform(0, 1, (300, 2)) * SIZE]
        cases += [[x, y, mask_w, mask_h] for x, y in borders + points + [(SIZE[0], SIZE[1]), (0, 0)]]
    cells = page.evaluate("""async (cases) => {
        const { maskCell } = await import("/static/label_mask.js");
        return cases.map(([x, y, w, h]) => maskCell({ x, y }, 120, 90, w, h));
    }""", cases)
    expected = [mask_cell(x, y, SIZE, (h, w)) for x, y, w, h in cases]
    assert [(c["row"], c["col"]) for c in cells] == expected


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


# --- helpers -------------------------------------------------------------------------------


def _mask() -> np.ndarray:
    mask = np.zeros((SIZE[1], SIZE[0]), np.uint8)
    cv2.circle(mask, *DISC, color=1, thickness=-1)
    cv2.rectangle(mask, *RECT, color=2, thickness=-1)
    cv2.rectangle(mask, *SQUARE, color=3, thickness=-1)
    return mask


def _picked(page) -> str:
    """The mask id of the object the page shows as picked ("" for none)."""
    return page.locator(".qn-pick").get_attribute("data-picked")


def _hovered(page) -> str:
    return page.locator(".qn-pick").get_attribute("data-hovered")


def _changed_image_px(before, after, image, scale) -> np.ndarray:
    """(h, w) bool per image px: whether the screen changed at its centre between two screenshots."""
    ys, xs = np.mgrid[0:SIZE[1], 0:SIZE[0]]
    rows = (image["y"] + (ys + 0.5) * scale).astype(int)
    cols = (image["x"] + (xs + 0.5) * scale).astype(int)
    return np.abs(after[rows, cols].astype(int) - before[rows, cols].astype(int)).max(axis=2) > 3


def _highlight_is(changed, label, click) -> bool:
    """Whether the image px that changed are exactly the mask pixels of `label`, away from the
    click's dot (within 5 image px of `click`, (x, y))."""
    ys, xs = np.mgrid[0:SIZE[1], 0:SIZE[0]]
    far = np.hypot(xs + 0.5 - click[0], ys + 0.5 - click[1]) > 5
    return bool(np.array_equal(changed[far], (_mask() == label)[far]))


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
    from studyweb.db.schema import Participant

    db = app.extensions["studyweb.sessions"]()
    try:
        (trial,) = db.query(Participant).filter_by(recruit_id=recruit_id).one().trials
        return {c["label"]: c["method"] for c in trial.spec["candidates"]}
    finally:
        db.close()


def _responses(app, recruit_id) -> list:
    from studyweb.db.schema import Participant, Response

    db = app.extensions["studyweb.sessions"]()
    try:
        participant = db.query(Participant).filter_by(recruit_id=recruit_id).one()
        responses = db.query(Response).filter_by(participant_id=participant.id).order_by(Response.id).all()
        db.expunge_all()
        return responses
    finally:
        db.close()
