"""docs/overview.md names every module of the six packages, by its path from the repository root,
and no module that is gone (issue 25: the page had fallen 13 files behind the tree)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OVERVIEW = ROOT / "docs" / "overview.md"
PACKAGES = ("datadir", "datagen", "studyweb", "models", "analysis", "gazelab")
NAMED = re.compile(r"`((?:%s)/[\w/]*\.py)`" % "|".join(PACKAGES))


def modules_in_tree(root: Path = ROOT) -> set[str]:
    """Every .py file under the packages, as 'package/sub/module.py'."""
    return {path.relative_to(root).as_posix() for package in PACKAGES for path in (root / package).rglob("*.py")
            if "__pycache__" not in path.parts}


def modules_named(text: str) -> set[str]:
    """The module paths the page names in backticks."""
    return set(NAMED.findall(text))


def test_overview_names_every_module_in_the_tree():
    missing = sorted(modules_in_tree() - modules_named(OVERVIEW.read_text(encoding="utf-8")))
    assert missing == [], "docs/overview.md lacks these modules; add a row for each:\n" + "\n".join(
        f"| `{path}` | {_first_line(ROOT / path)} |" for path in missing)


def test_overview_names_no_module_that_is_gone():
    gone = sorted(modules_named(OVERVIEW.read_text(encoding="utf-8")) - modules_in_tree())
    assert gone == []


def test_the_check_reads_paths_not_names(tmp_path):
    """The check on a planted tree: a module named only by its file name, or in another package's
    words, does not count."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "models" / "editors").mkdir()
    (tmp_path / "models" / "editors" / "hag.py").write_text("")
    (tmp_path / "datadir" / "maps.py").write_text("")
    (tmp_path / "datadir" / "__pycache__").mkdir()
    (tmp_path / "datadir" / "__pycache__" / "maps.py").write_text("")
    assert modules_in_tree(tmp_path) == {"models/editors/hag.py", "datadir/maps.py"}
    page = "| `hag.py` | HAG |\n| `datadir/maps.py` | maps |\n`scripts/check_structure.py` and `models/editors/gone.py`"
    assert modules_named(page) == {"datadir/maps.py", "models/editors/gone.py"}


def _first_line(path: Path) -> str:
    """The first line of a module's docstring: a start for its row."""
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    except SyntaxError:
        doc = ""
    return doc.strip().splitlines()[0] if doc.strip() else "WHAT IT OWNS"
