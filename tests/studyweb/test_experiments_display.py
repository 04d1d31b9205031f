"""BubbleView's blur σ and bubble radius as fractions of the image width, the display-size
settings, their validation, the pre-blur cache and what the task page receives."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from sqlalchemy import select

from datadir import Dataset
from studyweb import db
from studyweb.experiments import blurred_image, create_experiment
from studyweb.settings import blur_sigma_image_px, bubble_radius_image_px, validate_settings

SIZE = (160, 120)  # width, height of the small stimulus of issue 10
BACKGROUND = (128, 128, 128)
# (BGR colour, centre x, centre y) of 30x30 px squares, far enough apart that σ = 4.8 px keeps them apart.
OBJECTS = [((40, 40, 220), 35, 35), ((220, 60, 40), 120, 35), ((40, 200, 40), 35, 88), ((30, 220, 230), 120, 88)]


def objects_image(size=SIZE):
    """A grey image with the OBJECTS drawn on it (BGR, uint8)."""
    width, height = size
    image = np.full((height, width, 3), BACKGROUND, np.uint8)
    for colour, cx, cy in OBJECTS:
        image[cy - 15:cy + 15, cx - 15:cx + 15] = colour
    return image


def object_contrast(image) -> float:
    """The smallest colour distance (0-255 units) between an object's centre (11x11 px mean)
    and the background grey, over the OBJECTS."""
    return min(float(np.linalg.norm(image[cy - 5:cy + 6, cx - 5:cx + 6].reshape(-1, 3).mean(0) - BACKGROUND))
               for _, cx, cy in OBJECTS)


@pytest.fixture
def objects_dataset(tmp_path, write_pair):
    """A one-pair dataset whose x image is the 160x120 objects_image."""
    ds = Dataset.create(tmp_path / "objects", "objects", seed=1)
    ds.add_pairs([write_pair(ds.path, "p0", size=SIZE)])
    cv2.imwrite(str(ds.path / "images" / "p0_x.png"), objects_image())
    return ds


@pytest.fixture
def session(tmp_path):
    url = f"sqlite:///{tmp_path / 'instance' / 'gazelab.db'}"
    db.init_db(url)
    engine = db.make_engine(url)
    with db.session_factory(engine)() as session:
        yield session
    engine.dispose()


def test_defaults_are_fractions_of_the_width_with_a_display_size():
    settings = validate_settings({})
    assert settings["blur_sigma_frac"] == settings["bubble_radius_frac"] == 0.03
    assert settings["blur_sigma_px"] is None and settings["bubble_radius_px"] is None
    assert settings["display_width_px"] == 1000 and settings["max_upscale"] == 2
    # BubbleView's ~30 px on a 1000 px wide image; proportionally less on a small one.
    assert blur_sigma_image_px(settings, 1000) == pytest.approx(30)
    assert bubble_radius_image_px(settings, 160) == pytest.approx(4.8)


def test_pixel_settings_override_the_fractions():
    settings = validate_settings({"blur_sigma_px": 12, "bubble_radius_frac": 0.1})
    assert blur_sigma_image_px(settings, 160) == 12 and bubble_radius_image_px(settings, 160) == pytest.approx(16)
    # An experiment stored before the fractions existed keeps its pixel values (the old defaults).
    old = {"blur_sigma_px": 30.0, "bubble_radius_px": 30.0, "time_limit_s": 10.0}
    assert blur_sigma_image_px(old, 160) == 30 and bubble_radius_image_px(old, 160) == 30


@pytest.mark.parametrize("key, value, message", [
    ("blur_sigma_frac", 0, "blur_sigma_frac must be a finite number > 0, got 0"),
    ("blur_sigma_frac", float("nan"), "blur_sigma_frac must be a finite number > 0, got nan"),
    ("bubble_radius_frac", 1.5, "bubble_radius_frac is a fraction of the image width and must be in (0, 1], got 1.5"),
    ("bubble_radius_frac", "0.1", "bubble_radius_frac must be a finite number > 0, got '0.1'"),
    ("display_width_px", -800, "display_width_px must be a finite number > 0, got -800"),
    ("display_width_px", float("inf"), "display_width_px must be a finite number > 0, got inf"),
    ("max_upscale", 0.5, "max_upscale must be a number >= 1 (1 = never enlarge), got 0.5"),
    ("max_upscale", True, "max_upscale must be a finite number > 0, got True"),
    ("blur_sigma_px", -3, "blur_sigma_px must be a finite number > 0, got -3"),
    ("bubble_radius_px", 0.0, "bubble_radius_px must be a finite number > 0, got 0.0"),
])
def test_bad_display_settings_name_the_key_and_value(key, value, message):
    with pytest.raises(ValueError) as error:
        validate_settings({key: value})
    assert str(error.value) == message


def test_blur_sigma_is_the_fraction_of_the_natural_width_and_keeps_objects_visible(session, objects_dataset, tmp_path):
    experiment = create_experiment(session, objects_dataset.path, "exp", sides="x")
    stimulus = experiment.stimuli[0]
    path = blurred_image(stimulus, instance_dir=tmp_path / "inst")
    assert path.name == f"{stimulus.id}_s4.8.png" and stimulus.blurred_path == str(path)
    blurred = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert blurred.shape == (120, 160, 3)
    np.testing.assert_array_equal(blurred, cv2.GaussianBlur(objects_image(), (0, 0), 4.8, borderType=cv2.BORDER_REFLECT))
    sharp = object_contrast(objects_image())
    assert object_contrast(blurred) > 0.9 * sharp
    # What issue 10 saw: the old σ = 30 px all but erased every object of a 160 px wide image.
    old = cv2.imread(str(blurred_image(stimulus, sigma=30, instance_dir=tmp_path / "inst")), cv2.IMREAD_COLOR)
    assert object_contrast(old) < 0.2 * sharp


def test_a_changed_blur_setting_never_serves_the_cached_blur(session, objects_dataset, tmp_path):
    experiment = create_experiment(session, objects_dataset.path, "exp", sides="x")
    stimulus = experiment.stimuli[0]
    first = blurred_image(stimulus, instance_dir=tmp_path)
    experiment.settings = {**experiment.settings, "blur_sigma_frac": 0.1}
    second = blurred_image(stimulus, instance_dir=tmp_path)
    assert first.is_file() and second.name == f"{stimulus.id}_s16.png"
    assert object_contrast(cv2.imread(str(second))) < object_contrast(cv2.imread(str(first)))
    experiment.settings = {**experiment.settings, "blur_sigma_px": 3.0}
    assert blurred_image(stimulus, instance_dir=tmp_path).name == f"{stimulus.id}_s3.png"


def test_the_task_page_gets_image_pixel_sizes_and_the_display_limits(enrol, dbs):
    client, token = enrol(PROLIFIC_PID="display")
    practice, first, _ = client.get("/api/v1/session", headers={"X-Participant-Token": token}).get_json()["trials"]
    assert first["natural_w"] == 16  # the pilot's 16x12 images, default fractions
    assert first["bubble_radius"] == pytest.approx(0.48) and first["blur_sigma"] == pytest.approx(0.48)
    assert first["display_width_px"] == 1000 and first["max_upscale"] == 2
    assert practice["bubble_radius"] == pytest.approx(0.03 * practice["natural_w"])
    # An experiment stored with the old keys only: its pixel sizes, and the display defaults.
    experiment = dbs.scalars(select(db.Experiment).where(db.Experiment.name == "pilot")).one()
    experiment.settings = {k: v for k, v in experiment.settings.items()
                           if k not in ("blur_sigma_frac", "bubble_radius_frac", "display_width_px", "max_upscale")}
    experiment.settings = {**experiment.settings, "blur_sigma_px": 30.0, "bubble_radius_px": 30.0}
    dbs.commit()
    first = client.get("/api/v1/session", headers={"X-Participant-Token": token}).get_json()["trials"][1]
    assert (first["bubble_radius"], first["blur_sigma"]) == (30, 30)
    assert (first["display_width_px"], first["max_upscale"]) == (1000, 2)


def test_create_experiment_cli_takes_the_display_options(run_cli, dataset, tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    code, out, err = run_cli("study", "create-experiment", "--dataset", dataset.path, "--name", "shown",
                             "--blur-sigma-frac", 0.04, "--bubble-radius", 5, "--display-width", 800,
                             "--max-upscale", 1.5, "--db", url)
    assert code == 0, err
    engine = db.make_engine(url)
    with db.session_factory(engine)() as session:
        settings = session.scalars(select(db.Experiment)).one().settings
    engine.dispose()
    assert (settings["blur_sigma_frac"], settings["bubble_radius_frac"]) == (0.04, 0.03)
    assert (settings["blur_sigma_px"], settings["bubble_radius_px"]) == (None, 5)
    assert (settings["display_width_px"], settings["max_upscale"]) == (800, 1.5)
    code, _, err = run_cli("study", "create-experiment", "--dataset", dataset.path, "--name", "bad",
                           "--max-upscale", 0.5, "--db", url)
    assert code == 2 and err.count("\n") == 1 and "max_upscale must be a number >= 1" in err
