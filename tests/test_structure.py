"""The structure of DESIGN.md §1, checked on the tree by the project's own check
(scripts/check_structure.py): layers, imports inside functions, import cycles, and who spells the
dataset directory's paths."""
import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_structure", ROOT / "scripts" / "check_structure.py")
structure = importlib.util.module_from_spec(_spec)
sys.modules["check_structure"] = structure
_spec.loader.exec_module(structure)


def test_every_package_imports_only_the_layers_below_it():
    assert structure.layer_breaches() == []


def test_no_gazelab_module_is_imported_inside_a_function_to_dodge_a_cycle():
    assert structure.lazy_first_party() == []


def test_no_import_cycle_between_modules():
    assert structure.module_cycles() == []


def test_only_datadir_spells_the_dataset_directory():
    assert structure.layout_spellings(extra=structure.extra_files()) == []


def test_the_check_finds_each_kind_of_breach(tmp_path):
    """The checks on a planted tree: each rule catches its breach and passes the allowed forms."""
    for package in structure.PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "analysis" / "bad.py").write_text(
        '"""Reads pairs.csv (a docstring may say so)."""\nimport models.runs\n\n\ndef f():\n'
        '    from analysis import good\n    return good\n\n\nPAIRS = "pairs.csv"\nMASK = "masks/" + "x"\n')
    (tmp_path / "analysis" / "good.py").write_text("import datadir\n\nfrom analysis import bad\n")
    (tmp_path / "models" / "one.py").write_text("from models import two\n")
    (tmp_path / "models" / "two.py").write_text("import models.one\n")
    (tmp_path / "datagen" / "blender.py").write_text("import bpy\n")
    (tmp_path / "datagen" / "lazy.py").write_text("def f(root):\n    from datagen import blender\n"
                                                  "    return root / 'images'\n")
    assert [line.split(": ", 1)[1] for line in structure.layer_breaches(tmp_path)] == [
        "analysis imports models.runs (analysis may import datadir)"]
    assert structure.lazy_first_party(tmp_path) == ["analysis/bad.py:6: imports analysis inside a function"]
    # bad imports good only inside a function: no module-level cycle there
    assert structure.module_cycles(tmp_path) == [["models.one", "models.two"]]
    assert structure.layout_spellings(tmp_path) == [
        "analysis/bad.py:10: spells 'pairs.csv'", "analysis/bad.py:11: spells 'masks/'",
        "datagen/lazy.py:3: joins / 'images'"]


def test_the_script_draws_the_package_graph():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_structure.py")],
                            capture_output=True, text=True, cwd=ROOT)
    assert "datadir   -> (nothing)" in result.stdout
    assert result.returncode == (0 if "breaches: 0" in result.stdout and "cycles: 0" in result.stdout
                                 and "inside functions: 0" in result.stdout and "outside datadir/: 0"
                                 in result.stdout else 1)
