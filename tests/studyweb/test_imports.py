"""studyweb.imports: eye-tracker fixations stored as imported participants, converted from screen
pixels, every dropped row counted, re-imports refused or replaced, and maps built from them."""
import numpy as np
import pytest
from sqlalchemy import func, select

from studyweb import db
from studyweb.experiments import create_experiment
from studyweb.imports import DisplayGeometry, import_fixations
from studyweb.maps import build_maps, current_maps

HEADER = "image,participant,x,y,t_ms,duration_ms"
# 3 participants; images named three ways (stored path, file name, label); 16x12 images.
ROWS = [
    "images/000000_x.png,P1,2.5,3.5,0,200",
    "images/000000_x.png,P1,8,6,250,300",
    "000001_y.png,P1,4,4,0,180",
    "000001_y.png,P1,5,5,200,",
    "000000_x,P2,10,2,0,250",
    "000000_x,P2,11,3,300,250",
    "000002_x,P2,1,1,0,100",
    "000002_x,P2,2,1,150,100",
    "000000_x,P3,3,9,0,220",
    "000000_x,P3,4,10,240,220",
]


@pytest.fixture
def experiment(session, dataset):
    experiment = create_experiment(session, dataset.path, "lab", sigma_px=1.0, allow_both_sides=True)
    session.commit()
    return experiment


def write_csv(path, rows, header=HEADER):
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def imported(session):
    return session.scalars(select(db.Participant).where(db.Participant.source == "imported")
                           .order_by(db.Participant.id)).all()


def test_import_stores_participants_trials_and_clicks_in_image_pixels(session, experiment, tmp_path):
    summary = import_fixations(session, experiment, write_csv(tmp_path / "fix.csv", ROWS))
    session.commit()
    assert (summary["participants"], summary["trials"], summary["fixations"]) == (3, 5, 10)
    assert summary["dropped"] == {"bad_values": 0, "unknown_image": 0, "outside_image": 0}
    assert (summary["images_matched"], summary["stimuli"]) == (3, 6)

    participants = imported(session)
    assert [p.recruit_id for p in participants] == ["import:P1", "import:P2", "import:P3"]
    assert all(p.status == "complete" and p.completed_at is not None and p.recruit_source == "anonymous"
               for p in participants)
    p1 = participants[0]
    assert [(t.stimulus.label, t.position, t.status, t.is_practice) for t in p1.trials] == [
        ("000000_x", 1, "done", False), ("000001_y", 2, "done", False)]
    assert p1.trials[0].duration_ms == 550.0  # last fixation 250 ms + 300 ms
    assert p1.trials[1].duration_ms == 200.0  # its last fixation has no duration: its start
    assert [(c.x, c.y, c.t_ms) for c in p1.trials[0].clicks] == [(2.5, 3.5, 0.0), (8.0, 6.0, 250.0)]

    events = {e.kind: e for e in p1.events if e.trial_id == p1.trials[1].id}
    durations = events["fixation_durations"].payload
    assert durations["click_ids"] == [c.id for c in p1.trials[1].clicks]
    assert durations["duration_ms"] == [180.0, None]
    provenance = [e.payload for e in p1.events if e.kind == "fixation_import"]
    assert provenance[0]["file"] == "fix.csv" and provenance[0]["participant"] == "P1"
    assert len(provenance[0]["sha256"]) == 64


def test_screen_geometry_maps_the_drawn_rectangle_onto_the_image(session, experiment, tmp_path):
    # Each 16x12 image drawn at (100, 50) as 160x120 screen pixels on a 400x300 screen.
    geometry = DisplayGeometry(400, 300, 100, 50, 160, 120)
    rows = ["000000_x,P1,180,110,0,200",   # the rectangle's centre → the image centre (8, 6)
            "000000_x,P1,100,50,200,200",  # its top-left corner → (0, 0)
            "000000_x,P1,90,110,400,200",  # left of the image
            "000000_x,P1,260,110,600,200"]  # on its right edge: x = 16 is outside [0, 16)
    summary = import_fixations(session, experiment, write_csv(tmp_path / "screen.csv", rows), geometry=geometry)
    session.commit()
    assert summary["fixations"] == 2 and summary["dropped"]["outside_image"] == 2
    trial = imported(session)[0].trials[0]
    assert [(c.x, c.y) for c in trial.clicks] == [(8.0, 6.0), (0.0, 0.0)]
    assert (trial.display_w, trial.display_h) == (160, 120)
    assert trial.duration_ms == 800.0  # the dropped fixations still count toward the viewing time
    assert (imported(session)[0].screen_w, imported(session)[0].screen_h) == (400, 300)


def test_bad_rows_are_dropped_and_counted_never_silently(session, experiment, tmp_path):
    rows = ROWS[:2] + [
        "000000_x,P1,16,3,500,100",          # x = width: outside
        "000000_x,P1,-0.5,3,600,100",        # outside
        "elsewhere/999_x.png,P1,1,1,0,100",  # unknown image
        "000009_y,P2,1,1,0,100",             # unknown image
        "000000_x,P1,abc,3,700,100",         # bad value
        "000000_x,P1,3,3,-5,100",            # t_ms < 0
        "000000_x,P1,3,3,800,-1",            # negative duration
        "000000_x,,3,3,900,100",             # no participant
    ]
    summary = import_fixations(session, experiment, write_csv(tmp_path / "bad.csv", rows))
    assert summary["dropped"] == {"bad_values": 4, "unknown_image": 2, "outside_image": 2}
    assert summary["unknown_images"] == ["elsewhere/999_x.png", "000009_y"]
    assert summary["bad_value_lines"] == [8, 9, 10, 11]
    assert (summary["rows"], summary["fixations"], summary["participants"]) == (10, 2, 1)


def test_full_paths_and_converted_file_names_match_but_ambiguous_names_do_not(session, experiment, tmp_path):
    # A second stimulus with the file name 000000_x.png: that name alone no longer says which.
    session.add(db.Stimulus(experiment_id=experiment.id, image_path="other/000000_x.png", pair_id="other",
                            side="x", width=16, height=12))
    session.commit()
    rows = [r"C:\stimuli\000001_x.png,P1,1,1,0,100", "export/000001_x.bmp,P1,2,2,100,100",
            "000001,P1,3,3,0,100",  # a pair id alone names no stimulus
            "000000_x.png,P1,3,3,0,100", "images/000000_x.png,P1,4,4,0,100", "other_x,P1,5,5,0,100"]
    summary = import_fixations(session, experiment, write_csv(tmp_path / "paths.csv", rows))
    assert summary["fixations"] == 4 and summary["unknown_images"] == ["000001", "000000_x.png"]
    trials = imported(session)[0].trials
    assert [(t.stimulus.image_path, len(t.clicks)) for t in trials] == [
        ("images/000001_x.png", 2), ("images/000000_x.png", 1), ("other/000000_x.png", 1)]


def test_missing_columns_are_refused_with_their_names(session, experiment, tmp_path):
    path = write_csv(tmp_path / "cols.csv", ["000000_x,P1,1"], header="image,participant,x")
    with pytest.raises(ValueError, match=r"cols.csv lacks column\(s\) y, t_ms"):
        import_fixations(session, experiment, path)
    assert imported(session) == []


def test_files_with_nothing_to_store_are_refused(session, experiment, tmp_path):
    with pytest.raises(ValueError, match="no row of .* has an image, a participant and numeric"):
        import_fixations(session, experiment, write_csv(tmp_path / "a.csv", ["000000_x,P1,x,y,0,1"]))
    with pytest.raises(ValueError, match="no image in .* is a stimulus of experiment 'lab'"):
        import_fixations(session, experiment, write_csv(tmp_path / "b.csv", ["nope.png,P1,1,1,0,1"]))
    with pytest.raises(ValueError, match="lie outside the images; if they are screen pixels"):
        import_fixations(session, experiment, write_csv(tmp_path / "c.csv", ["000000_x,P1,900,500,0,1"]))
    assert imported(session) == []


def test_reimport_is_refused_and_replace_swaps_the_participants(session, experiment, tmp_path):
    path = write_csv(tmp_path / "fix.csv", ROWS)
    import_fixations(session, experiment, path)
    session.commit()
    first_ids = [p.id for p in imported(session)]
    with pytest.raises(ValueError, match=r"3 participant\(s\) in fix.csv were already imported.*replace=True"):
        import_fixations(session, experiment, path)
    assert [p.id for p in imported(session)] == first_ids  # the refusal stored nothing

    summary = import_fixations(session, experiment, write_csv(path, ROWS[:4]), replace=True)
    session.commit()
    assert summary["replaced_participants"] == 1 and summary["participants"] == 1
    assert sorted(p.recruit_id for p in imported(session)) == ["import:P1", "import:P2", "import:P3"]
    assert session.scalar(select(func.count()).select_from(db.Click)) == 10  # P1's 4 clicks replaced, not added
    assert first_ids[0] not in [p.id for p in imported(session)]


def test_an_error_while_storing_leaves_the_earlier_import_in_place(session, experiment, tmp_path, monkeypatch):
    import studyweb.imports

    path = write_csv(tmp_path / "fix.csv", ROWS)
    import_fixations(session, experiment, path)
    session.commit()
    store = studyweb.imports._store

    def store_then_fail(*args, **kwargs):
        store(*args, **kwargs)
        session.flush()
        raise RuntimeError("disk full")

    monkeypatch.setattr(studyweb.imports, "_store", store_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        import_fixations(session, experiment, path, replace=True)
    session.commit()
    assert len(imported(session)) == 3
    assert session.scalar(select(func.count()).select_from(db.Click)) == 10


def test_maps_are_built_from_the_imported_fixations(session, experiment, tmp_path):
    summary = import_fixations(session, experiment, write_csv(tmp_path / "fix.csv", ROWS))
    assert summary["trials_below_min_clicks"] == 0 and summary["mean_fixations_per_trial"] == 2.0
    session.commit()
    build = build_maps(session, experiment)
    session.commit()
    assert build["built"] == 3 and build["kept_participants"] == 3
    maps = {m.stimulus.label: m for m in current_maps(session, experiment).values()}
    assert sorted(maps) == ["000000_x", "000001_y", "000002_x"]
    assert maps["000000_x"].n_participants == 3 and maps["000000_x"].n_points == 6
    p1 = imported(session)[0].id
    assert maps["000001_y"].points_array().tolist() == [[p1, 4.0, 4.0, 0.0], [p1, 5.0, 5.0, 200.0]]
    assert np.isclose(maps["000001_y"].density_array().sum(), 1.0)


def test_trials_below_min_clicks_are_counted(session, experiment, tmp_path):
    summary = import_fixations(session, experiment, write_csv(tmp_path / "few.csv", ROWS[:3]))
    assert summary["min_clicks"] == 2 and summary["trials_below_min_clicks"] == 1


@pytest.mark.parametrize("geometry, message", [
    ((400, 300, 100, 50, 0, 120), "image_w must be > 0"),
    ((400, 300, 300, 50, 160, 120), "does not fit on the 400x300 screen"),
])
def test_bad_geometry_is_refused(geometry, message):
    with pytest.raises(ValueError, match=message):
        DisplayGeometry(*geometry)


def test_cli_imports_and_reports_every_drop(run_cli, url, dataset, tmp_path):
    code, _, _ = run_cli("study", "create-experiment", "--dataset", dataset.path, "--name", "lab",
                         "--allow-both-sides", "--db", url)
    assert code == 0
    rows = ["000000_x,P1,180,110,0,200,a", "000000_x,P1,170,100,250,200,a", "000000_x,P1,10,10,500,200,a",
            "nope.png,P2,180,110,0,200,b", "000001_x,P2,abc,110,0,200,b"]
    path = write_csv(tmp_path / "lab.csv", rows, header="Image, Participant ,x,y,t_ms,duration_ms,Trial")
    geometry = ("--screen", "400x300", "--image-rect", "100,50,160,120")
    code, out, err = run_cli("study", "import-fixations", "lab", "--csv", path, *geometry, "--db", url)
    assert code == 0, err
    assert "imported 2 fixations: 1 participants, 1 trials on 1 of 6 images" in out
    assert "dropped 3 of 5 rows: 1 bad values, 1 unknown image, 1 outside the image" in out
    assert "bad values on lines 6" in out and "unknown images: nope.png" in out and "ignored columns: trial" in out
    assert "0 trial(s) with fewer than 2" in out and "next: gazelab study build-maps lab" in out

    code, _, err = run_cli("study", "import-fixations", "lab", "--csv", path, *geometry, "--db", url)
    assert code == 2 and err.count("\n") == 1 and "already imported" in err and "--replace" in err
    code, out, _ = run_cli("study", "import-fixations", "lab", "--csv", path, *geometry, "--replace", "--db", url)
    assert code == 0 and "replaced 1 participants imported before" in out
    code, out, _ = run_cli("study", "status", "lab", "--db", url)
    assert "sources: imported 1" in out


@pytest.mark.parametrize("options, message", [
    (("--screen", "400x300", "--image-rect", "1,2,3"), "Invalid value for '--image-rect': expected X,Y,W,H"),
    (("--screen", "400x300", "--image-rect", "1,2,3,x"), "Invalid value for '--image-rect': expected X,Y,W,H"),
    (("--screen", "400x300", "--image-rect", "1,2,3,inf"), "Invalid value for '--image-rect': expected X,Y,W,H"),
    (("--screen", "400by300", "--image-rect", "1,2,3,4"), "Invalid value for '--screen': expected the screen size"),
    (("--screen", "0x300", "--image-rect", "1,2,3,4"), "Invalid value for '--screen': expected the screen size"),
    (("--screen", "400x300"), "--screen and --image-rect go together"),
    (("--image-rect", "1,2,3,4"), "--screen and --image-rect go together"),
    (("--screen", "400x300", "--image-rect", "300,50,160,120"), "does not fit on the 400x300 screen"),
])
def test_cli_bad_geometry_is_one_line_exit_2(run_cli, url, tmp_path, options, message):
    path = write_csv(tmp_path / "lab.csv", ROWS)
    code, out, err = run_cli("study", "import-fixations", "lab", "--csv", path, *options, "--db", url)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err
