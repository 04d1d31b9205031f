"""A report built from a small evaluation and a study export, opened in headless Chromium."""
import pytest

from support.browser import chromium_page, require_browser

require_browser()
pytestmark = pytest.mark.browser

from gazelab.evaluation import evaluate, parse_methods  # noqa: E402
from analysis.report import build_report  # noqa: E402
from analysis.report_figures import DPI, FONT_PT  # noqa: E402


def test_the_report_opens_and_shows_the_papers_tables_figures_and_provenance(data, outputs, centre_bias, study_export,
                                                                                tmp_path):
    evaluate(data, parse_methods([f"oracle={outputs['oracle']}", f"dim={outputs['dim']}"]), tmp_path / "eval",
             predictor=centre_bias, fid=False, progress=False)
    study = study_export(tmp_path / "study", "sgit", ["p0", "p1", "p2", "p3"])
    page_path = build_report(tmp_path / "eval", tmp_path / "report", studies=[study])
    with chromium_page(1200, 900) as page:
        page.goto(page_path.as_uri())
        titles = page.locator("h3").all_inner_texts()
        for title in ("SalG-GAN Table 1", "GazeShiftNet Table 1", "SaGIM Table 1", "Gatys et al. effect sizes",
                      "Distance to the ground truth Y", "SalG-GAN Table 2 (user study)", "Qualitative results"):
            assert title in titles
        table = page.locator("#gazeshiftnet_table_1 + p + table")
        assert table.locator("th").all_inner_texts()[:4] == ["Method", "LPIPS Full ↓", "LPIPS BG ↓", "LPIPS FG"]
        assert [row.split("\t")[0] for row in table.locator("tbody tr").all_inner_texts()] == ["input", "oracle", "dim"]
        preference = page.locator("#salg_gan_table_2__user_study + p + table").inner_text()
        assert "oracle" in preference and "66.7%" in preference  # 2 of 3 participants chose it each time
        warnings = " ".join(page.locator(".warning").all_inner_texts())
        assert "dim has no output for 2 pair(s)" in warnings and "beats neither control" in warnings
        not_shown = page.locator("#not-shown").inner_text()
        assert "SalG-GAN Table 3" in not_shown and "rate study" in not_shown and "Table 2 (preferences)" not in not_shown
        assert page.locator("#provenance").count() == 1 and "center_bias" in page.inner_text("body")
        widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
        assert len(widths) == 3 and min(widths) > 100  # grid, box plots, scatter: embedded and decoded
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert (tmp_path / "report/salg_gan_table_1.csv").is_file()


def test_at_1280_px_every_figure_has_a_caption_labels_of_12_px_and_the_grid_colour_bars(data, outputs, centre_bias,
                                                                                       tmp_path):
    methods = [f"oracle={outputs['oracle']}", f"dim={outputs['dim']}"] + [
        f"oracle_{n}={outputs['oracle']}" for n in "bcd"]  # five methods: the grid takes two figures
    evaluate(data, parse_methods(methods), tmp_path / "eval", predictor=centre_bias, fid=False, progress=False)
    page_path = build_report(tmp_path / "eval", tmp_path / "report")
    with chromium_page(1280, 900) as page:
        page.goto(page_path.as_uri())
        page.wait_for_function("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
        shown = page.eval_on_selector_all("img", """imgs => imgs.map(i => ({
            alt: i.alt, width: i.getBoundingClientRect().width, natural: i.naturalWidth,
            parent: i.parentElement.tagName, bars: Number(i.parentElement.dataset.colourBars),
            caption: (i.parentElement.querySelector('figcaption') || {innerText: ''}).innerText.trim()}))""")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert len(shown) == 4  # two grid figures, box plots, scatter
    for image in shown:
        assert image["parent"] == "FIGURE" and image["caption"], image["alt"]
        label_px = FONT_PT * DPI / 72 * image["width"] / image["natural"]
        assert label_px >= 12, f"{image['alt']}: labels {label_px:.1f} px at {image['width']} of {image['natural']} px"
    grids = [image for image in shown if image["alt"].startswith("qualitative grid")]
    assert [image["bars"] for image in grids] == [2, 2]  # one colour bar per pair shown (p0, p3)
    assert all("human fixation map" in image["caption"] and "colour bar" in image["caption"] for image in grids)
    assert "lpips_x" in shown[2]["caption"] or "l1_x" in shown[2]["caption"]
    assert (tmp_path / "report.png").stat().st_size > 10_000
