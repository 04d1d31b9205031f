"""`gazelab doctor`: what this machine can do — Python and packages, Blender and its Cycles devices,
torch and CUDA, pretrained weights, the study database, chromium, a Ray cluster, free disk — one
row per check (check, status ok/missing/warn, detail, the command that fixes it).

bpy, torch and ray are imported only in child Pythons that are killed at a deadline, so a slow
import or a broken driver never hangs the doctor; the children call the project's own lookups
(`select_device`, `resolve_device`, `choose_precision`, `imagenet_weights_file`, `fid_weights_file`,
`lpips_backbone_file`), so the doctor agrees with the commands. `--for NAME` shows the checks NAME
needs and exits 1 when one it cannot run without is missing; alone it exits 1 only when a core
requirement (Python, the base dependencies) is missing.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import click

PURPOSES = ("render", "train", "study", "evaluate")
CORE = "core"  # in Row.required_for: every command needs it, so plain `gazelab doctor` exits 1 without it
# The packages shown by name: label → the distributions that provide it (first one found counts).
KEY_PACKAGES = {
    "numpy": ("numpy",), "scipy": ("scipy",), "pandas": ("pandas",),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless", "opencv-contrib-python"),
    "torch": ("torch",), "torchvision": ("torchvision",), "flask": ("flask",), "sqlalchemy": ("sqlalchemy",),
    "alembic": ("alembic",), "statsmodels": ("statsmodels",), "lpips": ("lpips",), "pytorch-fid": ("pytorch-fid",),
    "bpy": ("bpy",), "ray": ("ray",), "playwright": ("playwright",),
}
_TORCH_USERS = ("train", "evaluate")
# Optional packages: the --for purposes that show them, and those that cannot run without them.
_SHOWN_FOR = {"torch": _TORCH_USERS, "torchvision": _TORCH_USERS, "lpips": ("evaluate",),
              "pytorch-fid": ("evaluate",), "bpy": ("render",), "ray": ("render",), "playwright": ()}
_NEEDED_FOR = {"torch": _TORCH_USERS, "torchvision": _TORCH_USERS, "bpy": ("render",)}
_MARK = "gazelab-doctor-facts: "  # prefixes the child's answer; bpy and ray print their own lines too
_PROJECT_ROOT = Path(__file__).resolve().parents[2]
_DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
_RETRY = "gazelab doctor --timeout 600 (a busy machine imports bpy and torch slowly)"


@dataclass(frozen=True)
class Row:
    """One check's outcome. required_for: the --for purposes (and CORE) that cannot run when it is missing."""

    check: str
    status: str  # "ok" | "missing" | "warn"
    detail: str
    fix: str = ""
    required_for: tuple[str, ...] = ()


@dataclass(frozen=True)
class Options:
    purpose: str | None = None
    device: str = "auto"
    db_url: str | None = None
    ray_address: str | None = None
    out_dir: str = "."
    min_free_gb: float = 10.0
    timeout_s: float = 120.0


@click.command("doctor")
@click.option("--for", "purpose", type=click.Choice(PURPOSES), default=None,
              help="Show the checks this command needs; exit 1 when one it cannot run without is missing.")
@click.option("--device", default="auto", show_default=True,
              help="The --device you will train or evaluate on; cuda or cuda:N makes CUDA required.")
@click.option("--db", "db_url", default=None, metavar="URL",
              help="Study database URL [default: GAZELAB_DATABASE_URL or instance/gazelab.db].")
@click.option("--ray-address", default=None, metavar="ADDRESS",
              help="Also check that this Ray cluster answers ('local' starts a local one); required for render.")
@click.option("--out", "out_dir", default=".", type=click.Path(file_okay=False),
              help="Output folder whose free disk is checked [default: the current folder].")
@click.option("--min-free-gb", default=10.0, show_default=True, type=click.FloatRange(min=0),
              help="Warn when the output folder's filesystem has less free space than this (GiB).")
@click.option("--timeout", "timeout_s", default=120.0, show_default=True, type=click.FloatRange(min=1),
              help="Seconds each check may take (bpy and torch imports are slow on a busy machine).")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON for scripts.")
@click.pass_context
def command(ctx, purpose, device, db_url, ray_address, out_dir, min_free_gb, timeout_s, as_json) -> None:
    """Check what this machine can do (packages, Blender, GPUs, weights, database, disk) and how to fix what is not."""
    if not _DEVICE_PATTERN.fullmatch(device):
        raise click.BadParameter(f"{device!r}; expected auto, cpu, cuda or cuda:N", param_hint="'--device'")
    rows = run_checks(Options(purpose, device, db_url, ray_address, out_dir, min_free_gb, timeout_s))
    blocking = [row for row in rows if row.status == "missing" and (purpose or CORE) in row.required_for]
    warnings = [row for row in rows if row.status != "ok" and row not in blocking]
    if as_json:
        click.echo(json.dumps({"for": purpose, "ready": not blocking, "blocking": [r.check for r in blocking],
                               "warnings": [r.check for r in warnings], "rows": [asdict(r) for r in rows]}, indent=2))
    else:
        click.echo(format_table(rows))
        click.echo()
        click.echo(verdict(purpose, blocking, warnings))
    if blocking:
        ctx.exit(1)


def run_checks(options: Options) -> list[Row]:
    """Every check `options.purpose` needs (all of them for None), in table order."""
    def wanted(*purposes: str) -> bool:
        return options.purpose is None or options.purpose in purposes

    # The slow probes start first and run side by side while the quick checks run here.
    blender = probe_blender(options.timeout_s) if wanted("render") else None
    torch = probe_torch(options.device, options.timeout_s) if wanted(*_TORCH_USERS) else None
    ray = None
    if options.ray_address and wanted("render"):
        unreachable = _unreachable(options.ray_address, options.timeout_s)
        ray = Known({"error": unreachable}) if unreachable else probe_ray(options.ray_address, options.timeout_s)
    rows = [python_row(), *package_rows(options)]
    database = database_row(options.db_url, options.timeout_s) if wanted("study") else None
    chromium = chromium_row(options.timeout_s) if options.purpose is None else None
    disk = disk_row(options.out_dir, options.min_free_gb, options.timeout_s)
    if blender:
        rows += blender_rows(blender.result())
    if torch:
        rows += torch_rows(torch.result(), options)
    rows += [row for row in (database, chromium) if row]
    if ray:
        rows.append(ray_row(ray.result(), options.ray_address))
    rows.append(disk)
    return rows


def format_table(rows: list[Row]) -> str:
    """The rows as plain text in aligned columns: check, status, detail, fix."""
    cells = [("check", "status", "detail", "fix")] + [(r.check, r.status, r.detail, r.fix) for r in rows]
    widths = [max(len(cell[i]) for cell in cells) for i in range(3)]
    return "\n".join("  ".join([*(cell[i].ljust(widths[i]) for i in range(3)), cell[3]]).rstrip() for cell in cells)


def verdict(purpose: str | None, blocking: list[Row], warnings: list[Row]) -> str:
    """The one-line summary under the table."""
    def names(rows: list[Row]) -> str:
        return ", ".join(f"{row.check} ({row.status})" for row in rows)

    if blocking:
        return f"not ready for {purpose}: {names(blocking)}" if purpose else \
            f"core requirements missing: {names(blocking)}"
    head = f"ready for {purpose}" if purpose else "core requirements met"
    return f"{head}; not ok: {names(warnings)}" if warnings else f"{head}; every check ok"


# ---------------------------------------------------------------- Python and packages


def python_row() -> Row:
    from packaging.specifiers import SpecifierSet

    version = ".".join(map(str, sys.version_info[:3]))
    try:
        wanted = metadata.metadata("gazelab")["Requires-Python"] or ""
    except metadata.PackageNotFoundError:
        return Row("python", "warn", f"{version}; gazelab is not installed, so its requirements are unknown",
                   "pip install -e . (in the project folder)")
    if SpecifierSet(wanted).contains(version, prereleases=True):
        return Row("python", "ok", f"{version} at {sys.executable} (gazelab needs {wanted})",
                   required_for=(CORE, *PURPOSES))
    return Row("python", "missing", f"{version} at {sys.executable}; gazelab needs {wanted}",
               "python3.11 -m venv .venv && .venv/bin/pip install -e .", (CORE, *PURPOSES))


def package_rows(options: Options) -> list[Row]:
    """The KEY_PACKAGES rows and one row for the remaining base dependencies."""
    requirements = _requirements()
    rows = []
    for label, dists in KEY_PACKAGES.items():
        requirement, extra = requirements.get(_canonical(dists[0]), (None, None))
        core = requirement is not None and extra is None
        shown_for = PURPOSES if core else _SHOWN_FOR.get(label, ())
        if label == "ray" and not options.ray_address:
            shown_for = ()
        if options.purpose is not None and options.purpose not in shown_for:
            continue
        needed_for = (CORE, *PURPOSES) if core else _NEEDED_FOR.get(label, ())
        if label == "ray" and options.ray_address:
            needed_for = ("render",)
        rows.append(_package_row(label, dists, requirement, extra, needed_for))
    named = {_canonical(dist) for dists in KEY_PACKAGES.values() for dist in dists}
    others = [req for name, (req, extra) in requirements.items() if extra is None and name not in named]
    missing = [req for req in others if not _satisfied(req)]
    if missing:
        wanted = " ".join(shlex.quote(_requirement_text(req)) for req in missing)
        rows.append(Row("dependencies", "missing", f"{len(missing)} of {len(others)} more base dependencies missing "
                        f"or too old: {', '.join(req.name for req in missing)}", f"pip install {wanted}",
                        (CORE, *PURPOSES)))
    elif others:
        rows.append(Row("dependencies", "ok", f"the {len(others)} other base dependencies are installed",
                        required_for=(CORE, *PURPOSES)))
    return rows


def _package_row(label, dists, requirement, extra, needed_for) -> Row:
    found = next(((dist, version) for dist in dists if (version := _version(dist))), None)
    if found is None:
        if extra:
            return Row(label, "missing", f"not installed (optional, the {extra} extra)",
                       f"pip install 'gazelab[{extra}]'", needed_for)
        wanted = _requirement_text(requirement) if requirement else dists[0]
        return Row(label, "missing", "not installed", f"pip install {shlex.quote(wanted)}", needed_for)
    dist, version = found
    name = "" if dist == label else f"{dist} "
    if requirement is not None and not requirement.specifier.contains(version, prereleases=True):
        return Row(label, "warn", f"{name}{version}; gazelab wants {requirement.specifier}",
                   f"pip install {shlex.quote(_requirement_text(requirement))}", needed_for)
    return Row(label, "ok", f"{name}{version}", required_for=needed_for)


def _requirements() -> dict:
    """canonical name → (Requirement, extra or None) from gazelab's installed metadata (pyproject.toml);
    a package in several extras gets the first one listed."""
    from packaging.requirements import Requirement

    try:
        dist = metadata.distribution("gazelab")
    except metadata.PackageNotFoundError:
        return {}
    extras = dist.metadata.get_all("Provides-Extra") or []
    found: dict = {}
    for text in dist.requires or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            extra = None
        else:
            extra = next((e for e in extras if requirement.marker.evaluate({"extra": e})), None)
            if extra is None:
                continue  # a marker for another platform or Python
        found.setdefault(_canonical(requirement.name), (requirement, extra))
    return found


def _satisfied(requirement) -> bool:
    version = _version(requirement.name)
    return version is not None and requirement.specifier.contains(version, prereleases=True)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _requirement_text(requirement) -> str:
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    return f"{requirement.name}{extras}{requirement.specifier}"


def _canonical(name: str) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(name)


# ---------------------------------------------------------------- Blender, torch, weights, Ray (child Pythons)


class Probe:
    """A child process, started now and killed at its deadline, that answers with one line of
    JSON after _MARK on stdout (the facts functions below run in one through `child_probe`)."""

    def __init__(self, argv: list[str], timeout_s: float):
        path = os.pathsep.join(filter(None, [str(_PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
        self.timeout_s = timeout_s
        self._deadline = time.monotonic() + timeout_s
        # Its own session, so that a timeout kills the child and whatever it started (by process group).
        self._process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True, env={**os.environ, "PYTHONPATH": path}, start_new_session=True)

    def result(self) -> dict:
        """The child's facts, or {"error": why there are none}."""
        try:
            out, err = self._process.communicate(timeout=max(0.0, self._deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.communicate()
            return {"error": f"no answer within {self.timeout_s:g} s", "timed_out": True}
        for line in reversed(out.splitlines()):
            if line.startswith(_MARK):
                return json.loads(line[len(_MARK):])
        last = (err.strip().splitlines() or ["no output"])[-1]
        return {"error": f"the check's Python exited with code {self._process.returncode}: {last}"}


class Known:
    """Facts already at hand, with a Probe's `result()`."""

    def __init__(self, facts: dict):
        self._facts = facts

    def result(self) -> dict:
        return self._facts


def child_probe(name: str, *args: str, timeout_s: float) -> Probe:
    """`child_facts(name, args)` in a child Python."""
    code = ("import json, sys\nfrom gazelab.commands import doctor\n"
            "print(doctor._MARK + json.dumps(doctor.child_facts(sys.argv[1], sys.argv[2:])), flush=True)\n")
    return Probe([sys.executable, "-c", code, name, *args], timeout_s)


def probe_blender(timeout_s: float) -> Probe:
    return child_probe("blender", timeout_s=timeout_s)


def probe_torch(device: str, timeout_s: float) -> Probe:
    return child_probe("torch", device, timeout_s=timeout_s)


def probe_ray(address: str, timeout_s: float) -> Probe:
    return child_probe("ray", address, timeout_s=timeout_s)


def child_facts(name: str, args: list[str]) -> dict:
    """In the child Python: what `name` finds out, or {"error": ...}."""
    facts = {"blender": _blender_facts, "torch": _torch_facts, "ray": _ray_facts}[name]
    try:
        return facts(*args)
    except Exception as exc:  # noqa: BLE001 — whatever fails is the finding
        return {"error": _first_line(f"{type(exc).__name__}: {exc}")}


def _blender_facts() -> dict:
    from datagen.blender.renderer import device_facts  # imports bpy: only in the child

    return device_facts()


def _torch_facts(device: str) -> dict:
    import torch

    from models.amp import choose_precision
    from models.trainer import resolve_device

    gpus = []
    if torch.cuda.is_available():
        gpus = [{"name": torch.cuda.get_device_name(i), "precision": choose_precision("auto", torch.device("cuda", i))}
                for i in range(torch.cuda.device_count())]
    try:
        resolved, device_error = resolve_device(device), None
        if resolved.type == "cuda" and resolved.index >= len(gpus):
            device_error = f"device {device!r} was asked for but {len(gpus)} CUDA devices are visible"
    except ValueError as exc:
        device_error = str(exc)
    return {"version": torch.__version__, "cuda_build": torch.version.cuda, "gpus": gpus,
            "mps": bool(torch.backends.mps.is_available()), "device_error": device_error, "weights": _weights_facts()}


def _weights_facts() -> dict:
    """name → {"files": {role: path}, "urls": {role: url}}, or {"error": ...}: where the commands look."""
    import importlib.util

    def guarded(lookup) -> dict:
        try:
            return lookup()
        except Exception as exc:  # noqa: BLE001 — e.g. pytorch-fid not installed
            return {"error": _first_line(f"{type(exc).__name__}: {exc}")}

    def vgg16() -> dict:
        from models.backbones import ARCHS, imagenet_weights_file

        return {"files": {"ImageNet": str(imagenet_weights_file("vgg16"))}, "urls": {"ImageNet": ARCHS["vgg16"][1].url}}

    def lpips(net: str) -> dict:
        from analysis.image_metrics import _backbone_url, lpips_backbone_file  # the URL the metric's message names

        spec = importlib.util.find_spec("lpips")  # not imported: only where its linear layers lie
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError("No module named 'lpips'")
        linear = Path(spec.submodule_search_locations[0]) / "weights" / "v0.1" / f"{net}.pth"
        return {"files": {"linear": str(linear), "backbone": str(lpips_backbone_file(net))},
                "urls": {"backbone": _backbone_url(net)}}

    def inception() -> dict:
        from pytorch_fid.inception import FID_WEIGHTS_URL

        from analysis.image_metrics import fid_weights_file

        return {"files": {"Inception": str(fid_weights_file())}, "urls": {"Inception": FID_WEIGHTS_URL}}

    return {"vgg16": guarded(vgg16), "lpips-alex": guarded(lambda: lpips("alex")),
            "lpips-vgg": guarded(lambda: lpips("vgg")), "fid-inception": guarded(inception)}


def _ray_facts(address: str) -> dict:
    import ray

    ray.init(address=None if address == "local" else address, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        resources = ray.cluster_resources()
        nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
        return {"version": ray.__version__, "nodes": nodes, "cpus": resources.get("CPU", 0),
                "gpus": resources.get("GPU", 0)}
    finally:
        ray.shutdown()


def blender_rows(facts: dict) -> list[Row]:
    if "error" in facts:
        fix = _RETRY if facts.get("timed_out") else "pip install 'gazelab[render]'" if "No module named 'bpy'" in \
            facts["error"] else "pip install --force-reinstall 'gazelab[render]' (bpy needs Python 3.11)"
        return [Row("bpy import", "missing", facts["error"], fix, ("render",))]
    devices = [f"{kind} ({name})" for kind, name in facts["devices"]]
    gpu = facts["auto"] != "cpu"
    detail = f"auto renders on {facts['auto']}; Cycles sees {', '.join(devices) or 'no device'}"
    fix = "" if gpu else "for GPU renders: the NVIDIA driver (CUDA/OptiX) or ROCm (HIP); Cycles finds them at start"
    return [Row("bpy import", "ok", f"Blender {facts['version']}", required_for=("render",)),
            Row("cycles devices", "ok" if gpu else "warn", detail, fix)]


def torch_rows(facts: dict, options: Options) -> list[Row]:
    install = _RETRY if facts.get("timed_out") else "pip install 'gazelab[models]'"
    cuda_needed = _TORCH_USERS if options.device.startswith("cuda") else ()
    if "error" in facts:
        return [Row("torch import", "missing", facts["error"], install, _TORCH_USERS)] + [
            Row(f"weights {name}", "missing", "needs torch, which does not import", install)
            for name in _weight_names(options)]
    mps = "MPS available, unused: gazelab runs on cpu or cuda" if facts["mps"] else "no MPS"
    build = f"CUDA build {facts['cuda_build']}" if facts["cuda_build"] else "CPU-only build"
    rows = [Row("torch import", "ok", f"{facts['version']} ({build}; {mps})", required_for=_TORCH_USERS)]
    gpus = facts["gpus"]
    fix = ("the NVIDIA driver (nvidia-smi lists the GPU) and CUDA_VISIBLE_DEVICES" if facts["cuda_build"] else
           f"a CUDA build of torch {facts['version'].split('+')[0]} from https://download.pytorch.org/whl/")
    if facts["device_error"]:
        rows.append(Row("cuda", "missing", facts["device_error"], f"{fix}; or --device cpu", cuda_needed))
    elif gpus:
        rows.append(Row("cuda", "ok", f"{len(gpus)} device(s): {', '.join(gpu['name'] for gpu in gpus)}",
                        required_for=cuda_needed))
    else:
        rows.append(Row("cuda", "missing",
                        f"torch.cuda.is_available() is False ({build}); --device auto runs on the CPU", fix))
    if gpus:
        slow = [gpu["name"] for gpu in gpus if gpu["precision"] != "bf16"]
        rows.append(Row("bf16", "warn", f"no native bf16 on {', '.join(slow)}: mixed precision runs fp16 with "
                        "loss scaling", "a GPU of compute capability 8.0+ for bf16") if slow else
                    Row("bf16", "ok", "native bf16 on every GPU: mixed precision runs bf16"))
    for name in _weight_names(options):
        rows.append(_weights_row(name, facts["weights"][name]))
    return rows


def _weight_names(options: Options) -> tuple[str, ...]:
    return ("vgg16",) if options.purpose == "train" else ("vgg16", "lpips-alex", "lpips-vgg", "fid-inception")


def _weights_row(name: str, facts: dict) -> Row:
    check = f"weights {name}"
    if "error" in facts:
        return Row(check, "missing", facts["error"], "pip install 'gazelab[models]'")
    files = {role: Path(path) for role, path in facts["files"].items()}
    absent = {role: path for role, path in files.items() if not path.is_file() or path.stat().st_size == 0}
    if not absent:
        return Row(check, "ok", "; ".join(f"{path} ({path.stat().st_size / 2**20:.0f} MiB)" for path in files.values()))
    detail = "; ".join(f"{role} {path.name} not in {path.parent}" for role, path in absent.items())
    fixes = [f"mkdir -p {shlex.quote(str(path.parent))} && curl -L -o {shlex.quote(str(path))} {facts['urls'][role]}"
             if role in facts["urls"] else "pip install --force-reinstall lpips" for role, path in absent.items()]
    return Row(check, "missing", detail, " && ".join(fixes) + " (where there is network; or set TORCH_HOME)")


def _unreachable(address: str, timeout_s: float) -> str | None:
    """Why nothing answers at a Ray address HOST:PORT or ray://HOST:PORT (None if it accepts a TCP
    connection, or for 'local'/'auto'): ray.init itself retries for a minute before it gives up."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if address in ("local", "auto") or not host or not port.isdigit():
        return None
    _, error = _within(timeout_s, lambda: socket.create_connection((host, int(port)), timeout=timeout_s).close())
    return None if error is None else f"nothing answers there ({_first_line(str(error))})"


def ray_row(facts: dict, address: str) -> Row:
    if "error" in facts:
        fix = (_RETRY if facts.get("timed_out") else "pip install 'gazelab[cluster]'" if "No module named 'ray'" in
               facts["error"] else "`ray start --head` on the head node, then --ray-address HEAD_IP:6379")
        return Row("ray cluster", "missing", f"{address}: {facts['error']}", fix, ("render",))
    return Row("ray cluster", "ok", f"{address}: {facts['nodes']} node(s), {facts['cpus']:g} CPUs, "
               f"{facts['gpus']:g} GPUs (ray {facts['version']})", required_for=("render",))


# ---------------------------------------------------------------- database, chromium, disk (here, with a deadline)


def database_row(db_url: str | None, timeout_s: float) -> Row:
    """Whether the study database answers and is at the migrations' head revision (never creates it)."""
    needed = ("study",)
    try:
        from sqlalchemy.engine import make_url

        from studyweb.config import database_url
        from studyweb.db import safe_url
        from studyweb.db.revisions import current_revision, head_revision
    except ImportError as exc:
        return Row("database", "missing", f"cannot load the study code: {exc}", "pip install -e .", needed)
    url = db_url or database_url()
    migrate = "gazelab study init-db" + (f" --db {shlex.quote(safe_url(url))}" if db_url else "")
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001 — SQLAlchemy raises ArgumentError or ValueError
        return Row("database", "missing", f"{url!r} is not a database URL: {exc}", "pass --db sqlite:///PATH or "
                   "postgresql+psycopg://USER@HOST/DB", needed)
    name = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and name not in ("", ":memory:") and not name.startswith("file:") \
            and not Path(name).expanduser().is_file():
        return Row("database", "missing", f"no SQLite file at {Path(name).expanduser().resolve()}", migrate, needed)
    revisions, error = _within(timeout_s, lambda: (current_revision(url), head_revision()))
    if error is not None:
        fix = "pip install 'gazelab[serve]'" if isinstance(error, ImportError) else \
            "start the database server or correct --db / GAZELAB_DATABASE_URL"
        return Row("database", "missing", f"{safe_url(url)} does not answer: {_first_line(str(error))}", fix, needed)
    current, head = revisions
    if current == head:
        return Row("database", "ok", f"{safe_url(url)} at head revision {head}", required_for=needed)
    state = "not migrated (no revision)" if current is None else f"at revision {current}"
    return Row("database", "missing", f"{safe_url(url)} {state}; head is {head}", migrate, needed)


def chromium_row(timeout_s: float) -> Row:
    """Debian's chromium, which the browser tests drive through Playwright."""
    fix = "apt-get install chromium (or `make system-deps`)"
    path = shutil.which("chromium")
    fallback = None if path else shutil.which("chromium-browser")
    if not path and not fallback:
        return Row("chromium", "missing", "no `chromium` on PATH: browser tests are skipped", fix)
    version, error = _within(timeout_s, lambda: subprocess.run(
        [path or fallback, "--version"], capture_output=True, text=True, timeout=timeout_s, check=True).stdout.strip())
    if error is not None:
        return Row("chromium", "warn", f"{path or fallback} --version failed: {_first_line(str(error))}", fix)
    if fallback:
        return Row("chromium", "warn", f"{version} at {fallback}, but the browser tests look for `chromium`",
                   f"ln -s {fallback} /usr/local/bin/chromium")
    return Row("chromium", "ok", f"{version} at {path}")


def disk_row(out_dir: str, min_free_gb: float, timeout_s: float) -> Row:
    target = Path(out_dir).expanduser().resolve()

    def measure():
        existing = next(path for path in (target, *target.parents) if path.exists())
        return existing, shutil.disk_usage(existing)

    measured, error = _within(timeout_s, measure)
    if error is not None:
        return Row("disk", "warn", f"cannot measure free space at {target}: {_first_line(str(error))}",
                   "check that the filesystem is mounted and answers")
    existing, usage = measured
    where = str(target) if existing == target else f"{target} (not created yet; measured at {existing})"
    detail = f"{usage.free / 2**30:.1f} GiB free of {usage.total / 2**30:.1f} GiB at {where}"
    if usage.free / 2**30 < min_free_gb:
        return Row("disk", "warn", f"{detail}; under --min-free-gb {min_free_gb:g}",
                   "free space there, or pass --out on a larger disk")
    return Row("disk", "ok", detail)


def _within(timeout_s: float, function):
    """(function(), None) from a daemon thread, or (None, the exception) when it raised or ran past timeout_s."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append((function(), None))
        except Exception as exc:  # noqa: BLE001 — handed to the caller as the finding
            outcome.append((None, exc))

    thread = threading.Thread(target=run, daemon=True, name="gazelab-doctor-check")
    thread.start()
    thread.join(timeout_s)
    return outcome[0] if outcome else (None, TimeoutError(f"no answer within {timeout_s:g} s"))


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text.strip())
