"""Every runnable command of the guide runs (README.md and docs/*.md), so a page that drifts from the
code fails here.

The convention (also in docs/contributing.md): a fenced ```bash block is runnable when the line
right before its opening fence is an HTML comment

    <!-- runnable -->                  runs wherever the tests run
    <!-- runnable: blender -->         needs bpy: skipped without it, like the `blender` tests
    <!-- runnable: postgres -->        needs PostgreSQL's server binaries: runs with
                                       GAZELAB_DATABASE_URL naming a fresh database on the tests'
                                       throwaway server (the `postgres_url` fixture), else skipped
    <!-- runnable: ray -->             needs the ray package (the `ray` tests' skip)
    <!-- runnable: browser -->         needs Debian's chromium and playwright (the browser tests' skip)
    <!-- runnable: gpu -->             needs CUDA (the `gpu` tests' skip)

(several requirements separated by spaces: `<!-- runnable: blender ray -->`). Any other block is
shown, never run.

The runnable blocks of one page with the same requirements run in order in one fresh folder, each
under `bash -e -u -o pipefail`, so a page can build on its own earlier commands; each such group
is one test (`docs/models.md`, `docs/datagen.md[blender]`) marked with its requirements' pytest
markers and `slow`. `gazelab`, `python` and `torchrun` are the venv's (its bin folder first on
PATH); no GAZELAB_* variable of the calling environment leaks in. Placeholders in capitals are
fixtures the test makes in the folder before the group's first block, each only if the group
names it:

    DATASET                      a valid dataset as a study leaves it: 160×120 CLEVR-like pairs
                                 (6 train, 2 val, 10 test) with masks, scenes and human maps
    EDITS/<method>               stand-in outputs <pair_id>.png of DATASET's test pairs (tinted
                                 copies of X) for salggan, hag, cyclegan, bicyclegan, gazeshiftnet
    BEFORE_DIR, AFTER_DIR        six photo pairs, 480×360 JPEGs matched by file stem
    PHOTOS_DIR, TARGET_MAPS_DIR  three single photos and a target map (.npy) for each
    FIXATIONS_CSV                eye-tracker fixations (image, participant, x, y, t_ms) on every
                                 image of DATASET

`studyweb/` and `models/` are linked into the folder, so the paths the docs give relative to a clone
(`studyweb/examples/...`, `models/examples/...`) work. A failing block fails its test with the block, its page and line, its
exit code and the end of its output.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
VENV_BIN = Path(sys.executable).parent
REQUIREMENTS = ("blender", "postgres", "ray", "browser", "gpu")
MARKER = re.compile(r"^<!--\s*runnable(?::\s*(?P<needs>[^>]*?))?\s*-->\s*$")
FENCE = re.compile(r"^(?P<ticks>`{3,})(?P<lang>[^`\s]*)\s*$")
BLOCK_TIMEOUT_S = 1800  # a generous bound: one block on a busy 2-core machine
OUTPUT_TAIL = 6000  # characters of a failing block's output shown
# Linked whole (not just their examples/): gunicorn puts the working folder first on sys.path, where a
# folder named like a package without its code would hide the installed package.
LINKED_FOLDERS = ("studyweb", "models")
STOP_WAIT_S = 15.0


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    needs: tuple[str, ...]
    text: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page}:{self.line}"


@dataclass
class Group:
    """The runnable blocks of one page with the same requirements, in page order."""

    page: Path
    needs: tuple[str, ...]
    blocks: list[Block] = field(default_factory=list)

    @property
    def name(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page.name
        return f"{page}[{' '.join(self.needs)}]" if self.needs else str(page)


def runnable_blocks(path: Path, text: str | None = None) -> list[Block]:
    """The runnable ```bash blocks of the Markdown file at `path` (or of `text`), in order. A marker
    inside another fenced block (an example of the convention) is text, not a marker. ValueError
    for a marker that is not right before a ```bash fence, an unknown requirement or an unclosed
    fence."""
    lines = (path.read_text(encoding="utf-8") if text is None else text).splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i].strip())
        if fence:  # an unmarked fenced block: skip to its end
            i = _fence_end(path, lines, i, fence.group("ticks")) + 1
            continue
        marker = MARKER.match(lines[i].strip())
        if marker is None:
            i += 1
            continue
        needs = tuple(sorted(set((marker.group("needs") or "").split())))
        unknown = [n for n in needs if n not in REQUIREMENTS]
        if unknown:
            raise ValueError(f"{path}:{i + 1}: unknown requirement(s) {unknown} in a runnable marker; "
                             f"expected some of {REQUIREMENTS}")
        fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if fence is None or fence.group("ticks") != "```" or fence.group("lang") != "bash":
            raise ValueError(f"{path}:{i + 1}: a runnable marker must be followed on the next line by a ```bash fence")
        end = _fence_end(path, lines, i + 1, "```")
        blocks.append(Block(path, i + 2, needs, "\n".join(lines[i + 2:end]) + "\n"))
        i = end + 1
    return blocks


def _fence_end(path: Path, lines: list[str], start: int, ticks: str) -> int:
    """The index of the line closing the fence opened at `start` with `ticks`."""
    for j in range(start + 1, len(lines)):
        if lines[j].strip() == ticks:
            return j
    raise ValueError(f"{path}:{start + 1}: the {ticks} fence is never closed")


def groups_of(paths: list[Path]) -> list[Group]:
    groups: dict[tuple, Group] = {}
    for path in paths:
        for block in runnable_blocks(path):
            groups.setdefault((path, block.needs), Group(path, block.needs)).blocks.append(block)
    return list(groups.values())


def _param(group: Group):
    marks = [getattr(pytest.mark, need) for need in group.needs] + [pytest.mark.slow]
    return pytest.param(group, id=group.name, marks=marks)


@pytest.mark.parametrize("group", [_param(g) for g in groups_of(PAGES)])
def test_every_runnable_block_of_the_page_runs(group, tmp_path, request, placeholder_fixtures):
    env = block_environment()
    for need in group.needs:
        env.update(_requirement(need, request, tmp_path))
    for linked in LINKED_FOLDERS:
        (tmp_path / linked).symlink_to(ROOT / linked, target_is_directory=True)
    placeholder_fixtures(tmp_path, " ".join(block.text for block in group.blocks))
    failure = run_group(group, tmp_path, env)
    if failure:
        pytest.fail(failure, pytrace=False)


def test_a_failing_block_fails_with_its_text_exit_code_and_output(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Some words.\n\n<!-- runnable -->\n```bash\necho made > made.txt\n```\n\n"
                    "<!-- runnable -->\n```bash\ncat made.txt\necho about to fail >&2\nexit 3\necho never\n```\n",
                    encoding="utf-8")
    [group] = groups_of([page])
    failure = run_group(group, tmp_path / "run", block_environment())
    assert failure is not None
    assert "page.md:9" in failure  # the failing block's fence, not the first block's
    assert "exit code 3" in failure
    assert "cat made.txt" in failure  # the block's text
    assert "made\nabout to fail" in failure  # its output: it ran after the first block, in its folder
    assert "never" not in failure.split("output", 1)[1]


def test_markers_name_known_requirements_before_a_bash_fence(tmp_path):
    page = tmp_path / "page.md"
    text = "<!-- runnable: blender ray -->\n```bash\ngazelab --help\n```\n<!-- not a marker -->\n```bash\nfalse\n```\n"
    [block] = runnable_blocks(page, text)
    assert (block.needs, block.line, block.text) == (("blender", "ray"), 2, "gazelab --help\n")
    with pytest.raises(ValueError, match="unknown requirement"):
        runnable_blocks(page, "<!-- runnable: cuda -->\n```bash\ntrue\n```\n")
    with pytest.raises(ValueError, match="followed on the next line by a ```bash fence"):
        runnable_blocks(page, "<!-- runnable -->\n```python\nprint(1)\n```\n")
    with pytest.raises(ValueError, match="never closed"):
        runnable_blocks(page, "<!-- runnable -->\n```bash\ntrue\n")
    example = "````markdown\n<!-- runnable -->\n```bash\nfalse\n```\n````\n<!-- runnable -->\n```bash\ntrue\n```\n"
    assert [b.text for b in runnable_blocks(page, example)] == ["true\n"]  # a marker inside a fence is text


def test_every_page_of_the_guide_is_reachable_from_the_readme():
    """README → docs/index.md → every other page: a page nobody links to is a page nobody reads."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/index.md" in readme
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    unlinked = [p.name for p in sorted((ROOT / "docs").glob("*.md"))
                if p.name != "index.md" and f"({p.name}" not in index]
    assert unlinked == []


def test_relative_links_between_pages_lead_to_files_and_headings():
    broken = []
    for page in PAGES:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", page.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            linked = page.parent / target if target else page
            if not linked.exists():
                broken.append(f"{page.relative_to(ROOT)} → {target}")
            elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked):
                broken.append(f"{page.relative_to(ROOT)} → {target}#{anchor}")
    assert broken == []


def heading_anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"(?ms)^(`{3,}).*?^\1\s*$", "", page.read_text(encoding="utf-8"))  # no headings in code
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in re.findall(r"(?m)^#{1,6} (.+)$", text)}


# ---------------------------------------------------------------- running blocks


def block_environment() -> dict[str, str]:
    """The environment blocks run in: the venv's bin first on PATH, no GAZELAB_* from outside, one
    BLAS/OpenMP thread (tiny models run several times slower with two on a shared 2-core box)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAZELAB_")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("VIRTUAL_ENV", None)
    return env


def run_group(group: Group, folder: Path, env: dict[str, str]) -> str | None:
    """Run the group's blocks in order in `folder`; None when all pass, else what failed."""
    folder.mkdir(parents=True, exist_ok=True)
    for block in group.blocks:
        code, output = _run_block(block.text, folder, env)
        if code != 0:
            tail = output[-OUTPUT_TAIL:]
            return (f"the runnable block at {block.where} failed with exit code {code} in {folder}\n"
                    f"--- block\n{block.text}--- output (last {len(tail)} characters)\n{tail}")
    return None


def _run_block(text: str, folder: Path, env: dict[str, str]) -> tuple[int, str]:
    """(exit code, stdout and stderr) of `text` under bash -euo pipefail; whatever it left running
    in the background (a server) is stopped with its process group afterwards."""
    log = folder / f".block-{os.getpid()}.log"
    with open(log, "w+b") as out:
        process = subprocess.Popen(["bash", "-e", "-u", "-o", "pipefail", "-c", text], cwd=folder, env=env,
                                   stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
        try:
            code = process.wait(timeout=BLOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            code = 124
        finally:
            _stop_group(process.pid)
        out.seek(0)
        output = out.read().decode("utf-8", "replace")
    log.unlink()
    if code == 124:
        output += f"\n[timed out after {BLOCK_TIMEOUT_S} s]"
    return code, output


def _stop_group(pgid: int) -> None:
    """SIGTERM to the process group this test started for one block (a server it left running),
    SIGKILL to what is left of it after STOP_WAIT_S."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_WAIT_S
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _requirement(need: str, request, tmp_path: Path) -> dict[str, str]:
    """Skip as the project's tests do when `need` is missing; the environment it adds."""
    if need == "blender":
        pytest.importorskip("bpy", reason="blender blocks need bpy (pip install 'gazelab[render]')")
    elif need == "ray":
        pytest.importorskip("ray", reason="ray blocks need ray (pip install 'gazelab[cluster]')")
    elif need == "browser":
        if shutil.which("chromium") is None:
            pytest.skip("browser blocks need Debian's chromium (`which chromium` found nothing)")
        pytest.importorskip("playwright.sync_api", reason="browser blocks need the playwright package")
    elif need == "gpu":
        torch = pytest.importorskip("torch")
        if not torch.cuda.is_available():
            pytest.skip("needs a CUDA GPU (torch.cuda.is_available() is False)")
    elif need == "postgres":
        return {"GAZELAB_DATABASE_URL": _fresh_database(request.getfixturevalue("postgres_url"), tmp_path.name)}
    return {}


def _fresh_database(server_url: str, name: str) -> str:
    """A new, empty database on the tests' PostgreSQL server, so pages never share study data."""
    import psycopg

    database = "docs_" + re.sub(r"[^a-z0-9_]", "_", name.lower())[-40:]
    with psycopg.connect(server_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{database}"')
    return server_url.rsplit("/", 1)[0] + f"/{database}"
