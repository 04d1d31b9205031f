"""What a photo import reads: file names as the OS gives them, whole images only, hidden files and
symlinks named. Through the public import (and the console command where a crash is at stake)."""
import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from datadir import Dataset
from datagen.photos import import_pairs, import_singles

REPO = Path(__file__).resolve().parents[2]


def _image(seed=0, size=(160, 120)):
    """A smooth random colour image: JPEG has real entropy-coded data to cut."""
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), (9, 9), 3)


def _encoded(suffix, seed=0, params=()):
    ok, data = cv2.imencode(suffix, _image(seed), list(params))
    assert ok
    return data.tobytes()


def _pair_dirs(tmp_path, stems, suffix=".jpg"):
    x_dir, y_dir = tmp_path / "x", tmp_path / "y"
    x_dir.mkdir(), y_dir.mkdir()
    for i, stem in enumerate(stems):
        (x_dir / f"{stem}{suffix}").write_bytes(_encoded(suffix, seed=i))
        (y_dir / f"{stem}{suffix}").write_bytes(_encoded(suffix, seed=100 + i))
    return x_dir, y_dir


def _console(*args):
    """The real console script in a child process (its crash cannot take pytest down)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", "from gazelab.cli import main; main()", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=600)


def test_a_name_that_is_not_utf8_is_refused_by_name_not_a_crash(tmp_path):
    x_dir, y_dir = _pair_dirs(tmp_path, ["park"])
    for folder in (x_dir, y_dir):
        try:
            fd = os.open(os.fsencode(folder) + b"/caf\xe9.jpg", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError:
            pytest.skip("this file system refuses file names that are not UTF-8")
        with os.fdopen(fd, "wb") as handle:
            handle.write(_encoded(".jpg", seed=7))
    result = _console("datagen", "import-pairs", "--x-dir", x_dir, "--y-dir", y_dir, "--out", tmp_path / "out")
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--x-dir" in result.stderr and "b'caf\\xe9.jpg'" in result.stderr and "not valid UTF-8" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_non_image_whose_name_is_not_utf8_is_only_named(tmp_path, caplog):
    x_dir, y_dir = _pair_dirs(tmp_path, ["park"])
    try:
        fd = os.open(os.fsencode(x_dir) + b"/notes\xff.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError:
        pytest.skip("this file system refuses file names that are not UTF-8")
    os.close(fd)
    with caplog.at_level(logging.WARNING, logger="datagen"):
        assert import_pairs(x_dir, y_dir, tmp_path / "out").imported == 1
    assert any("b'notes\\xff.txt'" in record.getMessage() for record in caplog.records)


def test_a_truncated_jpeg_is_refused_by_name(tmp_path):
    x_dir, y_dir = _pair_dirs(tmp_path, ["park", "street"])
    whole = (x_dir / "street.jpg").read_bytes()
    (x_dir / "street.jpg").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"street\.jpg is damaged: its JPEG data stops before the end-of-image"):
        import_pairs(x_dir, y_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()


PROGRESSIVE = (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)
RESTARTS = (cv2.IMWRITE_JPEG_RST_INTERVAL, 2) if hasattr(cv2, "IMWRITE_JPEG_RST_INTERVAL") else ()


@pytest.mark.parametrize("suffix, params", [(".jpg", ()), (".jpg", PROGRESSIVE), (".jpg", RESTARTS), (".png", ()),
                                            (".bmp", ()), (".tif", ()), (".webp", ())])
def test_every_format_whole_is_read_and_cut_short_is_refused(tmp_path, suffix, params):
    x_dir, y_dir = _pair_dirs(tmp_path, ["park"], suffix=".png")
    whole = _encoded(suffix, seed=3, params=params)
    (x_dir / "park.png").unlink()
    (x_dir / f"park{suffix}").write_bytes(whole + (b"trailer" if suffix == ".jpg" else b""))
    assert import_pairs(x_dir, y_dir, tmp_path / "whole").imported == 1
    stored = cv2.imread(str(tmp_path / "whole/images/park_x.png"))
    assert np.array_equal(stored, cv2.imdecode(np.frombuffer(whole, np.uint8), cv2.IMREAD_COLOR))
    for fraction in (0.3, 0.9, 0.995):
        (x_dir / f"park{suffix}").write_bytes(whole[: int(len(whole) * fraction)])
        with pytest.raises(ValueError, match=rf"park\{suffix} is (damaged|not a readable image)"):
            import_pairs(x_dir, y_dir, tmp_path / "cut")
        assert not (tmp_path / "cut").exists()


def _with_thumbnail(jpeg):
    """`jpeg` with a whole small JPEG inside an APP1 segment, as cameras embed an EXIF thumbnail:
    its end-of-image marker comes before the main image's data."""
    thumbnail = b"Exif\x00\x00" + cv2.imencode(".jpg", _image(9, (16, 12)))[1].tobytes()
    return jpeg[:2] + b"\xff\xe1" + (len(thumbnail) + 2).to_bytes(2, "big") + thumbnail + jpeg[2:]


def test_a_jpeg_cut_after_its_thumbnail_is_refused(tmp_path):
    x_dir, y_dir = _pair_dirs(tmp_path, ["park"])
    whole = _with_thumbnail(_encoded(".jpg", seed=4))
    (x_dir / "park.jpg").write_bytes(whole)
    assert import_pairs(x_dir, y_dir, tmp_path / "whole").imported == 1
    (x_dir / "park.jpg").write_bytes(whole[: len(whole) * 3 // 4])
    with pytest.raises(ValueError, match=r"park\.jpg is damaged"):
        import_pairs(x_dir, y_dir, tmp_path / "cut")


@pytest.mark.parametrize("kind", ["grey", "16-bit", "alpha", "16-bit alpha"])
def test_grey_16_bit_and_alpha_images_are_read_as_opencv_reads_them(tmp_path, kind):
    x_dir, y_dir = _pair_dirs(tmp_path, ["park"], suffix=".png")
    base = _image(5)
    wide = base.astype(np.uint16) * 256 + 77  # 16-bit, with a low byte that reading as 8-bit drops
    image = {"grey": base[:, :, 0], "16-bit": wide, "alpha": np.dstack([base, base[:, :, :1]]),
             "16-bit alpha": np.dstack([wide, wide[:, :, :1]])}[kind]
    assert cv2.imwrite(str(x_dir / "park.png"), image)
    import_pairs(x_dir, y_dir, tmp_path / "out")
    stored = cv2.imread(str(tmp_path / "out/images/park_x.png"), cv2.IMREAD_UNCHANGED)
    assert stored.dtype == np.uint8 and stored.shape == (120, 160, 3)
    assert np.array_equal(stored, cv2.imread(str(x_dir / "park.png"), cv2.IMREAD_COLOR))


def test_a_png_chunk_failing_its_crc_is_refused(tmp_path):
    x_dir, y_dir = _pair_dirs(tmp_path, ["park"], suffix=".png")
    data = bytearray((y_dir / "park.png").read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in the image data
    (y_dir / "park.png").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"park\.png is damaged: its PNG chunk 'IDAT' at byte \d+ fails its CRC"):
        import_pairs(x_dir, y_dir, tmp_path / "out")


def test_an_empty_file_and_a_truncated_target_map_are_refused(tmp_path):
    images, maps = tmp_path / "images", tmp_path / "maps"
    images.mkdir(), maps.mkdir()
    (images / "a.png").write_bytes(_encoded(".png"))
    np.save(maps / "a.npy", np.ones((120, 160), np.float32))
    whole = (maps / "a.npy").read_bytes()
    (maps / "a.npy").write_bytes(whole[:-100])
    with pytest.raises(ValueError, match=r"map file .*a\.npy is not a readable \.npy array"):
        import_singles(images, tmp_path / "out", target_maps=maps)
    (maps / "a.npy").unlink()
    (maps / "a.png").write_bytes(_encoded(".png")[:-20])
    with pytest.raises(ValueError, match=r"a\.png is damaged"):
        import_singles(images, tmp_path / "out", target_maps=maps)
    (images / "a.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"a\.png is not a readable image: the file is empty"):
        import_singles(images, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_names_that_differ_only_in_case_are_refused(tmp_path):
    x_dir, y_dir = _pair_dirs(tmp_path, ["Cat", "cat", "CAT", "dog"])
    with pytest.raises(ValueError, match=r"--x-dir .* differ only in case .*: CAT\.jpg / Cat\.jpg / cat\.jpg;"):
        import_pairs(x_dir, y_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_names_that_differ_only_in_unicode_form_are_refused(tmp_path):
    x_dir, y_dir = _pair_dirs(tmp_path, ["caf\u00e9", "cafe\u0301"])  # é composed, and e + combining accent
    with pytest.raises(ValueError, match="differ only in case"):
        import_pairs(x_dir, y_dir, tmp_path / "out")


def test_hidden_files_are_left_out_and_named(tmp_path, caplog, run_cli):
    x_dir, y_dir = _pair_dirs(tmp_path, ["park", ".secret"])
    with caplog.at_level(logging.WARNING, logger="datagen"):
        summary = import_pairs(x_dir, y_dir, tmp_path / "out")
    assert (summary.imported, summary.hidden) == (1, [f"{x_dir}/.secret.jpg", f"{y_dir}/.secret.jpg"])
    assert [r.getMessage() for r in caplog.records if ".secret" in r.getMessage()] == [
        f"leaving out {x_dir}/.secret.jpg: a hidden file", f"leaving out {y_dir}/.secret.jpg: a hidden file"]
    code, out, _ = run_cli("datagen", "import-pairs", "--x-dir", x_dir, "--y-dir", y_dir, "--out", tmp_path / "out")
    assert code == 0
    assert out.splitlines() == [f"imported 0 pairs (1 already there) into {tmp_path / 'out'}",
                                f"left out 2 hidden file(s): {x_dir}/.secret.jpg, {y_dir}/.secret.jpg"]


def test_symlinks_leading_out_are_named_and_read_only_when_asked(tmp_path, caplog):
    x_dir, y_dir = _pair_dirs(tmp_path, ["park"])
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "originals").mkdir(parents=True)
    for folder, seed in ((x_dir, 50), (y_dir, 60)):
        (elsewhere / f"{folder.name}_beach.jpg").write_bytes(_encoded(".jpg", seed=seed))
        (folder / "beach.jpg").symlink_to(elsewhere / f"{folder.name}_beach.jpg")
        (folder / "originals").mkdir()
        (folder / "originals" / "pier.jpg").write_bytes(_encoded(".jpg", seed=seed + 1))
        (folder / "pier.jpg").symlink_to(folder / "originals" / "pier.jpg")  # inside the folder: read
    with caplog.at_level(logging.WARNING, logger="datagen"):
        summary = import_pairs(x_dir, y_dir, tmp_path / "out")
    links = [str(x_dir / "beach.jpg"), str(y_dir / "beach.jpg")]
    assert (summary.imported, summary.outside_links, summary.followed_links) == (2, links, False)
    assert sorted(Dataset.open(tmp_path / "out").pairs["pair_id"]) == ["park", "pier"]
    for link in links:
        assert any(r.getMessage().startswith(f"leaving out {link}: a symlink to") for r in caplog.records)
    assert "left out (--follow-symlinks reads them) 2 symlink(s)" in summary.lines()[1]
    followed = import_pairs(x_dir, y_dir, tmp_path / "followed", follow_symlinks=True)
    assert (followed.imported, followed.outside_links, followed.followed_links) == (3, links, True)
    beach = cv2.imread(str(tmp_path / "followed/images/beach_y.png"))
    assert np.array_equal(beach, cv2.imdecode(np.frombuffer(_encoded(".jpg", seed=60), np.uint8), cv2.IMREAD_COLOR))


TRICKY = ["a b", "a,b", 'quo"te', "it's", "new\nline", "tab\there", "日本語", "emoji 😀", "über", "#hash", "-dash",
          "semi;colon", "back\\slash", "percent%20", "x" * 150, "trailing ", "=SUM(A1)", "[brackets]", "star*?",
          "a_b", "a b-h0123456789", "ÅNGSTRÖM", "\u00e9t\u00e9", "ﬁ ligature", "tilde~", "plus+", "at@", "dollar$",
          "amp&", "paren(1)", "brace{2}", "pipe|", "colon:", "dots..", "I"]


def test_tricky_names_are_imported_exactly_and_once(tmp_path):
    x_dir, y_dir = _pair_dirs(tmp_path, TRICKY, suffix=".png")
    summary = import_pairs(x_dir, y_dir, tmp_path / "out")
    assert (summary.imported, summary.skipped) == (len(TRICKY), 0)
    dataset = Dataset.open(tmp_path / "out")
    assert sorted(dataset.pairs["x_source_file"]) == sorted(f"{stem}.png" for stem in TRICKY)
    for row in dataset.pairs.to_dict("records"):  # each pair holds the pixels of the file it names
        stored = cv2.imread(str(dataset.path / row["y_image"]))
        assert np.array_equal(stored, cv2.imread(str(y_dir / row["y_source_file"])))
    assert dataset.validate() == []
    again = import_pairs(x_dir, y_dir, tmp_path / "out")
    assert (again.imported, again.skipped) == (0, len(TRICKY))
