"""A report built from a small evaluation and a study export, opened in headless Chromium."""
import pytest

from support.browser import chromium_page, require_browser

require_browser()
pytestmark = pytest.mark.browser

from analysis.evaluation import evaluate, parse_methods  # noqa: E402
from analysis.report import build_report  # noqa: E402


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
