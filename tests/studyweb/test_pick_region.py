"""pick_region decided one way (`studyweb.tasks.pick_region`, `tasks.pick_mask`): the object
stored is the mask label under the point by one rule (`mask_cell`: floor of the image-px point
scaled to the mask, clamped), the page gets that very mask, the follow-up on a method's output
shows the original, and answers of any shape give a 422 (AnswerError), never a 500.

The pair's mask (40x30, the images' size) holds an L (mask id 2) whose bounding box holds
background and all of a square (mask id 7): a box-based page would highlight the L where the
server finds the square, or a background pixel."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from studyweb.db.schema import Participant, Response
from studyweb.tasks import AnswerError
from studyweb.tasks.pick_region import mask_cell
from studyweb.tasks.questions import record_answers

H = "X-Participant-Token"
SIZE = (40, 30)  # (w, h) px of the images and the mask
L_ID, SQUARE_ID = 2, 7
IN_L_BOX_ON_BACKGROUND = (20.5, 14.5)  # inside the L's box, on no object
IN_L_BOX_ON_SQUARE = (18.5, 8.5)  # inside the L's box, on the square


def _mask() -> np.ndarray:
    mask = np.zeros((SIZE[1], SIZE[0]), np.uint8)
    mask[2:26, 2:8] = L_ID  # the L's upright
    mask[20:26, 2:31] = L_ID  # its foot: the box is x 2-30, y 2-25
    mask[5:13, 15:23] = SQUARE_ID  # wholly inside the L's box
    return mask


@pytest.fixture
def mask_path(tmp_path):
    return tmp_path / "mask.png"


@pytest.fixture
def picks(app, tmp_path, write_pair, enrol_in):
    """enter(recruit_id) -> (test client, token, {block name: trial JSON}) of a participant of
    experiment 'picks': a pick on the original, a pick on method m1's output with a follow-up
    about the original, and a choose_best between m1 and m2, one trial each."""
    from datadir import Dataset
    from studyweb.designs import create_from_design

    ds = Dataset.create(tmp_path / "picks", "picks", seed=1)
    ds.add_pairs([write_pair(ds.path, "p0", size=SIZE)])
    for side in ("x", "y"):
        cv2.imwrite(str(ds.path / f"masks/p0_{side}.png"), _mask())
    methods = {}
    for k, method in enumerate(("m1", "m2")):
        folder = tmp_path / "edits" / method
        folder.mkdir(parents=True)
        cv2.imwrite(str(folder / "p0.png"), np.full((SIZE[1], SIZE[0], 3), 80 * (k + 1), np.uint8))
        methods[method] = str(folder)
    design = {"title": "Picks", "per_participant": 1, "observers": 100, "completion_code": "P1", "methods": methods,
              "blocks": [{"name": "pick", "task": "pick_region", "image": "original"},
                         {"name": "again", "task": "pick_region", "image": "m1",
                          "follow_up": {"id": "different", "text": "A different object from the original's?"}},
                         {"name": "best", "task": "choose_best", "question": "Which is best?",
                          "reference": {"input": False, "target_map": False}}]}
    db = app.extensions["studyweb.sessions"]()
    create_from_design(db, design, ds.path, "picks")
    db.commit()
    db.close()

    def enter(recruit_id: str):
        c, token = enrol_in("picks", PROLIFIC_PID=recruit_id)
        trials = c.get("/api/v1/session", headers={H: token}).get_json()["trials"]
        return c, token, {t["block"]: t for t in trials}

    return enter


def _answer(c, token, trial, answers, key="k1"):
    return c.post(trial["answer_url"], headers={H: token}, json={"idempotency_key": key, "answers": answers,
                                                                  "rt_ms": 1500})


def _stored(dbs, recruit_id) -> list:
    dbs.expire_all()
    return dbs.query(Response).join(Participant).filter(Participant.recruit_id == recruit_id).all()


# --- the rule ----------------------------------------------------------------------------------


@pytest.mark.parametrize("x, y, expected", [
    (0.0, 0.0, (0, 0)),
    (14.999, 7.0, (7, 14)),  # floor, not round
    (15.0, 7.0, (7, 15)),
    (40.0, 30.0, (29, 39)),  # the far edge belongs to the last pixel
    (40.01, 3.0, None), (-0.01, 3.0, None),  # off the image
    (1.7e308, 3.0, None), (3.0, -1.7e308, None),  # no overflow: compared before any arithmetic
])
def test_mask_cell_is_the_floor_of_the_point_clamped_into_the_mask(x, y, expected):
    assert mask_cell(x, y, SIZE, (30, 40)) == expected


def test_mask_cell_scales_image_pixels_to_a_mask_of_another_size():
    # An 80x60 image over a 40x30 mask: two image px a mask px.
    assert mask_cell(37.99, 16.0, (80, 60), (30, 40)) == (8, 18)
    assert mask_cell(38.0, 16.0, (80, 60), (30, 40)) == (8, 19)
    assert mask_cell(80.0, 60.0, (80, 60), (30, 40)) == (29, 39)


# --- answers through the API --------------------------------------------------------------------


@pytest.mark.parametrize("x, y", [IN_L_BOX_ON_SQUARE, (3.5, 3.5), (30.9, 25.9), (15.0, 5.0), (22.99, 12.99)])
def test_the_stored_object_is_the_mask_label_at_the_floor_of_the_point(picks, dbs, x, y):
    c, token, trials = picks(f"on-{x}-{y}")
    trial = trials["pick"]
    r = _answer(c, token, trial, [{"question": trial["questions"][0]["id"], "x": x, "y": y}])
    assert r.status_code == 200, r.get_json()
    (response,) = _stored(dbs, f"on-{x}-{y}")
    assert response.choice == str(_mask()[int(np.floor(y)), int(np.floor(x))]) != "0"
    assert (response.x, response.y) == (x, y)


def test_the_square_inside_the_l_box_is_stored_as_the_square(picks, dbs):
    c, token, trials = picks("square")
    trial = trials["pick"]
    (l_box,) = [r["box"] for r in trial["regions"] if r["id"] == L_ID]
    x, y = IN_L_BOX_ON_SQUARE
    assert l_box[0] <= x <= l_box[2] and l_box[1] <= y <= l_box[3]  # what made the page say "the L"
    r = _answer(c, token, trial, [{"question": trial["questions"][0]["id"], "x": x, "y": y, "choice": "7"}])
    assert r.status_code == 200, r.get_json()
    assert [r.choice for r in _stored(dbs, "square")] == [str(SQUARE_ID)]


@pytest.mark.parametrize("x, y", [IN_L_BOX_ON_BACKGROUND, (14.999, 8.0), (31.0, 22.0)])
def test_background_inside_a_box_is_refused_and_nothing_is_stored(picks, dbs, x, y):
    c, token, trials = picks(f"bg-{x}")
    trial = trials["pick"]
    (l_box,) = [r["box"] for r in trial["regions"] if r["id"] == L_ID]
    assert l_box[0] <= x <= l_box[2] and l_box[1] <= y <= l_box[3]
    r = _answer(c, token, trial, [{"question": trial["questions"][0]["id"], "x": x, "y": y}])
    assert r.status_code == 422 and "on no object" in r.get_json()["message"]
    assert _stored(dbs, f"bg-{x}") == []


def test_an_object_the_page_highlighted_that_is_not_under_the_point_is_refused(picks, dbs):
    c, token, trials = picks("mismatch")
    trial = trials["pick"]
    x, y = IN_L_BOX_ON_SQUARE
    r = _answer(c, token, trial, [{"question": trial["questions"][0]["id"], "x": x, "y": y, "choice": str(L_ID)}])
    assert r.status_code == 422 and "highlighted object '2'" in r.get_json()["message"]
    assert _stored(dbs, "mismatch") == []


def test_each_region_point_lies_on_its_object(picks):
    _, _, trials = picks("points")
    mask = _mask()
    for region in trials["pick"]["regions"]:
        row, col = mask_cell(*region["point"], SIZE, mask.shape)
        assert mask[row, col] == region["id"], region


@pytest.mark.parametrize("block, bad", [
    ("best", {"choice": ["A"]}), ("best", {"choice": {"A": 1}}), ("best", {"choice": None}),
    ("pick", {"x": 1.7e308, "y": 3.0}), ("pick", {"x": -1.7e308, "y": 3.0}), ("pick", {"x": 10**400, "y": 3.0}),
    ("pick", {"x": "3", "y": 3.0}), ("pick", {"x": [3], "y": 3.0}), ("pick", {"x": True, "y": 3.0}),
    ("pick", {"x": 18.5, "y": 8.5, "choice": [7]}), ("again", {"choice": {"yes": 1}}),
])
def test_answers_of_the_wrong_type_or_size_get_422_and_nothing_is_stored(picks, dbs, block, bad):
    c, token, trials = picks("bad")
    trial = trials[block]
    answers = [{"question": trial["questions"][0]["id"], **bad}]
    if block == "again":
        answers = [{"question": trial["questions"][0]["id"], "x": 18.5, "y": 8.5}, {"question": "different", **bad}]
    r = _answer(c, token, trial, answers)
    assert r.status_code == 422, (r.status_code, r.get_data(as_text=True)[:300])
    assert _stored(dbs, "bad") == []


@pytest.mark.parametrize("body", [
    {"answers": [{"question": ["unhashable"], "x": 1.0, "y": 1.0}]},
    {"answers": {"most_salient": {"x": 1.0}}},
    {"answers": ["most_salient"]},
    {"answers": [{"question": "most_salient", "x": 18.5, "y": 8.5}], "rt_ms": "soon"},
    {"answers": [{"question": "most_salient", "x": 18.5, "y": float("nan")}]},
    {"answers": [{"question": "most_salient", "x": 18.5, "y": float("inf")}]},
])
def test_record_answers_raises_only_answer_error_on_a_bad_body(picks, dbs, body):
    """The question tasks themselves, whatever the API's checks before them let through."""
    _, token, _ = picks("direct")
    participant = dbs.query(Participant).filter_by(token=token).one()
    trial = next(t for t in participant.trials if t.spec["block"] == "pick")
    with pytest.raises(AnswerError):
        record_answers(dbs, participant, trial, {"rt_ms": 1.0, "shown_order": [["x"]], **body}, "k")
    dbs.rollback()


def test_a_good_body_with_an_odd_shown_order_is_stored(picks, dbs):
    _, token, _ = picks("order")
    participant = dbs.query(Participant).filter_by(token=token).one()
    trial = next(t for t in participant.trials if t.spec["block"] == "best")
    question = trial.spec["questions"][0]["id"]
    record_answers(dbs, participant, trial, {"answers": [{"question": question, "choice": "A"}], "rt_ms": 1.0,
                                             "shown_order": [["B"], {"A": 1}, "B", "A"]}, "k")
    (response,) = [r for r in dbs.new if isinstance(r, Response)]
    labels = {c["label"]: c["method"] for c in trial.spec["candidates"]}
    assert response.shown_methods == [labels["B"], labels["A"]]
    dbs.rollback()


# --- the mask the page gets, and the follow-up's original --------------------------------------


def test_the_page_gets_the_very_mask_the_server_decides_by(picks):
    c, token, trials = picks("mask")
    status, body = _get(c, trials["pick"]["mask_url"])
    assert status == 200
    served = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_UNCHANGED)
    assert served.dtype == np.uint8 and served.shape == (SIZE[1], SIZE[0])
    assert np.array_equal(served, _mask())


def test_the_mask_is_only_for_the_participant_holding_the_pick_trial(picks, app):
    c, token, trials = picks("owner")
    other, other_token, other_trials = picks("other")
    path = trials["pick"]["mask_url"].split("?")[0]
    assert _get(c, path)[0] == 200  # the owner's cookie
    assert _get(other, f"{path}?t={other_token}")[0] == 404  # another participant's token
    assert _get(other, path)[0] == 404  # or cookie
    assert _get(app.test_client(), path)[0] == 404  # no token at all
    assert _get(c, f"/t/trials/{trials['best']['id']}/mask.png?t={token}")[0] == 404  # no objects to pick
    assert _get(other, other_trials["pick"]["mask_url"])[0] == 200


def test_the_follow_up_about_the_original_shows_the_original(picks):
    c, token, trials = picks("follow")
    again, pick = trials["again"], trials["pick"]
    assert again["follow_up"]["id"] == "different"
    assert again["reference"]["input_url"] is not None
    status, original = _get(c, again["reference"]["input_url"])
    assert status == 200 and original == _get(c, pick["image_url"])[1]  # the pair's input image
    assert original != _get(c, again["image_url"])[1]
    assert pick["reference"]["input_url"] is None  # a pick on the original has nothing to compare


def _get(c, url) -> tuple[int, bytes]:
    with c.get(url) as r:
        return r.status_code, r.data

