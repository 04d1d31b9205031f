"""The project's own structure check (DESIGN.md §1): which package imports which, whether the
layers hold, which imports hide inside functions, and who spells the dataset directory's paths.

    python scripts/check_structure.py          # the package graph and every breach; exit 1 on a breach

`tests/test_structure.py` runs the same checks.
"""
from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("datadir", "analysis", "datagen", "studyweb", "models", "gazelab")
# Which first-party packages each package may import (DESIGN.md §1); gazelab, the composition
# root, may import everything.
ALLOWED = {
    "datadir": set(),
    "analysis": {"datadir"},
    "datagen": {"datadir"},
    "studyweb": {"datadir", "analysis"},
    "models": {"datadir", "analysis"},
    "gazelab": set(PACKAGES) - {"gazelab"},
}
# Imports inside functions are for optional heavy dependencies only. The CLI's subcommands import
# their package lazily (`gazelab --help` must not load torch or bpy), so gazelab/commands may.
LAZY_FIRST_PARTY_OK = ("gazelab/cli.py", "gazelab/commands/")
# A first-party module that imports one of these at its top may be imported lazily: `import
# studyweb` must not load the web stack (Flask, Werkzeug, SQLAlchemy), `import datagen` not bpy,
# `gazelab --help` not torch.
HEAVY_THIRD_PARTY = ("bpy", "flask", "werkzeug", "sqlalchemy", "torch")
# Code that may spell the dataset directory's layout: the package that owns it.
LAYOUT_OWNER = "datadir/"
LAYOUT_NAMES = ("images", "masks", "maps", "scenes", "fixations")
# A path into a layout folder: "masks/…" naming a file or a pattern, or ".../masks/..." in a path.
_LAYOUT_START = re.compile(r"^(images|masks|maps|scenes|fixations)/($|\{|[^ ]*\.)")
_LAYOUT_INSIDE = re.compile(r"/(images|masks|maps|scenes|fixations)/")
# Folders other than a dataset's that have a sub-folder of one of those names (each with why).
OTHER_LAYOUTS = {
    "analysis/evaluation.py": "the evaluation folder's maps/METHOD/ (the predictor's maps of outputs)",
    "gazelab/evaluation.py": "the evaluation folder's maps/METHOD/ (the predictor's maps of outputs)",
    "analysis/report_figures.py": "the evaluation folder's maps/METHOD/ (the predictor's maps of outputs)",
    "studyweb/pilot.py": "a pilot report folder's maps/ (the pilot's own fixation maps, not a dataset)",
    "datagen/blender/clevr_references.py": "a clevr-dataset-gen checkout's images/ (CLEVR's example images)",
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. "analysis.report"
    path: str  # its file relative to the repository
    target: str  # the imported module, e.g. "datadir.maps"
    line: int
    in_function: bool
    names: tuple[str, ...] = ()  # `from target import names`: each may be a submodule


def python_files(root: Path = ROOT):
    for package in PACKAGES:
        yield from sorted((root / package).rglob("*.py"))


def imports_of(path: Path, root: Path = ROOT) -> list[Import]:
    rel = path.relative_to(root).as_posix()
    module = rel[:-3].replace("/", ".").removesuffix(".__init__")
    tree = ast.parse(path.read_text(encoding="utf-8"), rel)
    found = []

    def visit(node, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # for type checkers only: no import at run time
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend(Import(module, rel, alias.name, child.lineno, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                target = child.module or ""
                if child.level:
                    base = module.split(".")
                    base = base[: len(base) - child.level + (1 if rel.endswith("__init__.py") else 0)]
                    target = ".".join(base + ([child.module] if child.module else []))
                found.append(Import(module, rel, target, child.lineno, in_function,
                                    tuple(alias.name for alias in child.names)))
            visit(child, inside)

    visit(tree, False)
    return found


def first_party(target: str) -> str | None:
    top = target.split(".")[0]
    return top if top in PACKAGES else None


def layer_breaches(root: Path = ROOT) -> list[str]:
    """Imports of a package its layer may not import, anywhere in a module (functions included)."""
    out = []
    for path in python_files(root):
        for imp in imports_of(path, root):
            source, target = imp.module.split(".")[0], first_party(imp.target)
            if target and target != source and target not in ALLOWED[source]:
                out.append(f"{imp.path}:{imp.line}: {source} imports {imp.target} ({source} may import "
                           f"{', '.join(sorted(ALLOWED[source])) or 'no other gazelab package'})")
    return out


def heavy_modules(root: Path = ROOT) -> set[str]:
    """First-party modules that import a heavy optional dependency (HEAVY_THIRD_PARTY) at their top."""
    heavy = set()
    for path in python_files(root):
        for imp in imports_of(path, root):
            if not imp.in_function and imp.target.split(".")[0] in HEAVY_THIRD_PARTY:
                heavy.add(imp.module)
    return heavy


def lazy_first_party(root: Path = ROOT) -> list[str]:
    """First-party imports inside functions (outside the CLI's subcommands), except of modules that
    load a heavy optional dependency: each other one hides a cycle or a layering problem."""
    heavy, out = heavy_modules(root), []
    for path in python_files(root):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(LAZY_FIRST_PARTY_OK):
            continue
        for imp in imports_of(path, root):
            if not imp.in_function or not first_party(imp.target):
                continue
            named = [f"{imp.target}.{name}" for name in imp.names if f"{imp.target}.{name}" in heavy]
            if imp.target in heavy or (named and len(named) == len(imp.names)):
                continue
            out.append(f"{imp.path}:{imp.line}: imports {imp.target} inside a function")
    return out


def package_graph(root: Path = ROOT) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for path in python_files(root):
        for imp in imports_of(path, root):
            source, target = imp.module.split(".")[0], first_party(imp.target)
            if target and target != source:
                edges[source].add(target)
    return edges


def module_cycles(root: Path = ROOT) -> list[list[str]]:
    """Cycles among modules through module-level imports (strongly connected components > 1)."""
    graph: dict[str, set[str]] = defaultdict(set)
    modules = set()
    for path in python_files(root):
        for imp in imports_of(path, root):
            modules.add(imp.module)
            if not imp.in_function and first_party(imp.target):
                graph[imp.module].update([imp.target] + [f"{imp.target}.{name}" for name in imp.names])
    for source, targets in graph.items():  # `from pkg import name` may name a module or an attribute
        graph[source] = {t for t in targets if t in modules} - {source}
    known = modules
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def connect(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for node in sorted(known):
        if node not in index:
            connect(node)
    return cycles


def layout_spellings(root: Path = ROOT, extra=()) -> list[str]:
    """Code outside datadir/ that spells a dataset path: a string (docstrings aside) equal to
    pairs.csv or dataset.json, starting a path with images/ … fixations/, or a `/ "images"` join."""
    out = []
    files = [*python_files(root), *extra]
    for path in files:
        rel = path.relative_to(root).as_posix()
        if rel.startswith(LAYOUT_OWNER):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), rel)
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)
                      and isinstance(node.body[0].value, ast.Constant) and isinstance(node.body[0].value.value, str)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                text = node.value
                if text in ("pairs.csv", "dataset.json") or _LAYOUT_START.match(text) or (
                        " " not in text and _LAYOUT_INSIDE.search(text)):
                    out.append(f"{rel}:{node.lineno}: spells {text!r}")
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
                right = node.right
                if isinstance(right, ast.Constant) and right.value in LAYOUT_NAMES and rel not in OTHER_LAYOUTS:
                    out.append(f"{rel}:{node.lineno}: joins / {right.value!r}")
    return out


def main() -> int:
    graph = package_graph()
    print("package imports (module level and inside functions):")
    for package in PACKAGES:
        print(f"  {package:<9} -> {', '.join(sorted(graph.get(package, ()))) or '(nothing)'}")
    problems = {"layer breaches": layer_breaches(), "first-party imports inside functions": lazy_first_party(),
                "module import cycles": [" -> ".join(c) for c in module_cycles()],
                "dataset paths spelled outside datadir/": layout_spellings(extra=extra_files())}
    for title, lines in problems.items():
        print(f"{title}: {len(lines)}")
        for line in lines:
            print(f"  {line}")
    return 1 if any(problems.values()) else 0


def extra_files(root: Path = ROOT) -> list[Path]:
    """Producers of datasets outside the packages: benchmarks, scripts and the test fixtures."""
    scripts = [path for path in sorted((root / "scripts").glob("*.py")) if path.name != "check_structure.py"]
    return [*sorted((root / "benchmarks").glob("*.py")), *scripts,
            *sorted(root.glob("tests/**/conftest.py")), *sorted((root / "tests" / "support").glob("*.py"))]


if __name__ == "__main__":
    sys.exit(main())
