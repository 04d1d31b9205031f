"""Simulated participants: a saliency model to click from, and clients that use the same
HTTP API as the browser (requests), for pilots, load tests and the demo.

Failures (`failing`, for pilots that predict the real study's exclusions): a simulated
participant may fail the catch trials (answers every catch trial wrongly: another candidate
than the original, a score other than the top one), the CodeCharts sentinels (types the code
farthest from each main sentinel's target) or the CodeCharts tutorial (misses its sentinels).
The wrong answers go through the same answer routes as right ones, so what happens next
(screened out, excluded by QC, kept) is the server's decision, never the simulator's. Each
trial is answered by its task (`Task.simulate_trial`, given a `SimulatedParticipant`).

Saliency (`popout_density`): for a CLEVR scene, each object is a Gaussian blob at its
pixel_coords whose weight grows with how rare its colour, shape and material are among the
scene's objects (pop-out) and with its size, plus a centre bias; other images get the centre
bias alone. Densities are float64 (height, width) summing to 1.
"""
from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from datadir import relative_path
from studyweb.config import database_url
from studyweb.db.engine import make_engine, session_factory
from studyweb.db.revisions import migrate
from studyweb.db.schema import Trial
from studyweb.tasks import task_named

log = logging.getLogger(__name__)
SIMULATED_USER_AGENT = "gazelab-simulate/1 (simulated participant)"
FAILURES = ("catch", "sentinel", "tutorial")  # what a simulated participant can fail (module doc)
ACTIVE_STATUSES = ("consent", "instructions", "practice", "trials")
CENTRE_WEIGHT = 0.25  # share of the density in the centre bias when a scene has objects
SIZE_WEIGHT = {"large": 1.5, "small": 1.0}


def popout_density(scene: dict | None, image_size: tuple[int, int]) -> np.ndarray:
    """Saliency density for an image of `image_size` = (width, height) pixels.

    scene: one side of a CLEVR scene ({"objects": [{color, shape, material, size,
    pixel_coords: [x, y, depth]}]}) or None. Rarity of an attribute value = 1 / its count
    among the objects; an object's weight = (sum of its three rarities) × size factor; its
    blob σ = 4% of the image diagonal. Centre bias: an isotropic Gaussian of σ = 25% of the
    diagonal at the image centre."""
    width, height = (int(v) for v in image_size)
    if width <= 0 or height <= 0:
        raise ValueError(f"image_size must be positive (width, height), got {image_size!r}")
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    diagonal = float(np.hypot(width, height))
    centre = _gaussian(xs, ys, width / 2, height / 2, 0.25 * diagonal)
    objects = [o for o in (scene or {}).get("objects", []) if o.get("pixel_coords")]
    if not objects:
        return centre / centre.sum()
    counts = {key: Counter(o.get(key) for o in objects) for key in ("color", "shape", "material")}
    blobs = np.zeros_like(centre)
    for obj in objects:
        rarity = sum(1.0 / counts[key][obj.get(key)] for key in counts)
        weight = rarity * SIZE_WEIGHT.get(obj.get("size"), 1.0)
        x, y = obj["pixel_coords"][:2]
        blob = _gaussian(xs, ys, float(x), float(y), 0.04 * diagonal)
        blobs += weight * blob / max(blob.sum(), 1e-300)
    if blobs.sum() <= 0:  # every object outside the frame
        return centre / centre.sum()
    density = (1 - CENTRE_WEIGHT) * blobs / blobs.sum() + CENTRE_WEIGHT * centre / centre.sum()
    return density / density.sum()


def sample_clicks(density: np.ndarray, n: int, rng: np.random.Generator, duration_ms: float = 10_000.0) -> list[dict]:
    """n clicks {x, y, t_ms} drawn from `density` (uniform within the chosen pixel), at
    increasing times spread over duration_ms."""
    flat = density.ravel() / density.sum()
    index = rng.choice(flat.size, size=n, p=flat)
    rows, cols = np.divmod(index, density.shape[1])
    xs = np.minimum(cols + rng.random(n), density.shape[1] - 1e-6)
    ys = np.minimum(rows + rng.random(n), density.shape[0] - 1e-6)
    times = np.sort(rng.uniform(200.0, duration_ms * 0.95, n))
    return [{"x": float(x), "y": float(y), "t_ms": float(t)} for x, y, t in zip(xs, ys, times)]


def run_participant(base_url: str, experiment: str, rng_seed: int, density_of=None, drop_rate: float = 0.0,
                    clicks_per_trial: tuple[int, int] = (5, 15), timeout_s: float = 10.0, *,
                    retry_for_s: float = 30.0, recruit_id: str | None = None, pause_s: float = 0.0,
                    double_send: bool = False, fail=()) -> dict:
    """One simulated participant through the HTTP flow the browser uses: the study link
    (?gazelab_simulated=1, user agent SIMULATED_USER_AGENT), consent, instructions, every trial
    saved through POST /api/v1/trials/<id>/save with an idempotency key, then the debrief.

    density_of(trial_json) -> density (height, width); default: centre bias at the natural size.
    drop_rate: chance that a save's answer is "lost" — the client then resends the same key,
    as the browser's queue would, which must store it once.
    Like the browser, every request, the first included, is retried with exponential backoff
    (50 ms doubling to 2 s, jittered) on a connection error (refused or reset), a timeout
    (timeout_s seconds), an answer cut off or a 5xx answer, for up to retry_for_s seconds — long
    enough to outlast a server restart; a save is retried with the same idempotency key. A 4xx
    answer is not retried (ValueError); still failing after retry_for_s: RuntimeError.
    recruit_id: sent as PROLIFIC_PID, so that a retried entry resumes the same participant
    instead of creating a second one. pause_s: seconds spent on each trial before saving it.
    double_send: every answer (CodeCharts, questionnaires) also goes out at the same moment under
    a second key, as a double-clicked Next sends it: the server must store one and refuse the
    other with 409 (RuntimeError when it does not).
    fail: some of FAILURES, answered wrongly on purpose (module doc). The participant stops when
    an answer ends their trials (a failed tutorial, a screen-out), goes through the debrief when
    the server sends them there, and is refused (status 'refused', nothing done) when the consent
    gets 409 (the study is full).
    Returns {participant_id, clicks_sent, saves, resends (answers dropped on purpose),
    retries (requests repeated after a failure above), twins_refused (double_send's second
    answers refused with 409), status, fail}."""
    import requests  # the HTTP client: only simulated participants need it

    rng = np.random.default_rng(rng_seed)
    base = base_url.rstrip("/")
    params = {"gazelab_simulated": "1"}
    if recruit_id is not None:
        params["PROLIFIC_PID"] = recruit_id
    with requests.Session() as session:
        session.headers["User-Agent"] = SIMULATED_USER_AGENT
        http = _RetryingClient(session, timeout_s, retry_for_s, jitter_seed=rng_seed)
        http.call("GET", f"{base}/s/{experiment}", params=params)
        token = session.cookies.get("gazelab_participant")
        if not token:
            raise ValueError(f"{base}/s/{experiment} gave no participant token")
        session.headers["X-Participant-Token"] = token
        if http.call("POST", f"{base}/s/{experiment}/consent", data={"consent": "yes"},
                     accept=(409,)).status_code == 409:  # the study is full: a polite refusal page
            return {"participant_id": None, "clicks_sent": 0, "saves": 0, "resends": 0, "retries": http.retries,
                    "twins_refused": 0, "status": "refused", "fail": sorted(fail)}
        http.call("POST", f"{base}/s/{experiment}/instructions",
                  data={"screen_w": 1920, "screen_h": 1080, "window_w": 1280, "window_h": 800})
        state = http.call("GET", f"{base}/api/v1/session").json()
        sent = saves = resends = twins_refused = 0
        me = SimulatedParticipant(http, base, rng, set(fail), density_of, clicks_per_trial)
        for trial in state["trials"]:
            if trial["status"] == "done":
                continue
            url, body, points = task_named(trial["task"]).simulate_trial(trial, me)
            if pause_s:
                time.sleep(pause_s)
            if double_send and url.endswith("/answer"):
                twins_refused += _send_twice(session, http, f"{base}{url}", body, _key(rng))
                sent += points
                saves += 1
                continue
            for attempt in range(1, 22):
                answer = http.call("POST", f"{base}{url}", json=body, accept=(409,))
                if rng.random() >= drop_rate:
                    break
                resends += 1  # the answer is "lost": resend the same key, as the browser's queue does
                time.sleep(min(0.05 * 2**attempt, 2.0))
            else:
                raise RuntimeError(f"trial {trial['id']}: all {attempt} answers dropped (drop_rate {drop_rate})")
            if answer.status_code == 409 and _status(http, base) in ACTIVE_STATUSES:
                raise ValueError(f"POST {base}{url} refused: 409 {answer.text[:200]}")
            sent += points
            saves += int(answer.status_code != 409)
            if answer.status_code == 409 or answer.json().get("status") not in ACTIVE_STATUSES:
                break  # the server ended the trials: a failed tutorial, a screen-out, or the last answer
        if _status(http, base) == "debrief":
            http.call("POST", f"{base}/s/{experiment}/debrief", data={"comments": ""})
        final = http.call("GET", f"{base}/api/v1/session").json()
    return {"participant_id": final["participant_id"], "clicks_sent": sent, "saves": saves, "resends": resends,
            "retries": http.retries, "twins_refused": twins_refused, "status": final["status"], "fail": sorted(fail)}


def failing(index: int, rates: dict[str, float], seed: int = 0) -> set[str]:
    """What simulated participant number `index` (0, 1, ...) of a run with `seed` fails: each
    of FAILURES with its rate (share of participants), spread evenly, so any `n` consecutive
    participants hold rate × n of them give or take one (a pilot's share is the rate, not a
    binomial draw around it), starting at a random phase per seed and failure."""
    out = set()
    for k, kind in enumerate(FAILURES):
        rate = float(rates.get(kind, 0.0))
        phase = np.random.default_rng([seed, k]).random()
        if rate > 0 and math.floor(rate * (index + 1) + phase) > math.floor(rate * index + phase):
            out.add(kind)
    return out


def _status(http, base: str) -> str:
    return http.call("GET", f"{base}/api/v1/session").json()["status"]


def _send_twice(session, http, url: str, body: dict, twin_key: str) -> int:
    """POST `body` and a copy under `twin_key` at once (each on its own connection, retried as
    the browser retries): 1, the twin refused, when exactly one was stored (a retry of a save
    that went in before its answer was lost comes back as a duplicate, which counts as stored)
    and the other refused with 409; RuntimeError otherwise."""
    import requests  # the HTTP client: only simulated participants need it

    twin_session = requests.Session()
    twin_session.headers.update(session.headers)
    twin_session.cookies.update(session.cookies)
    twin_http = _RetryingClient(twin_session, http.timeout_s, http.retry_for_s, jitter_seed=hash(twin_key) & 0xFFFF)
    outcomes: dict[str, str] = {}

    def send(name: str, client, payload: dict) -> None:
        try:
            answer = client.call("POST", url, json=payload).json()
            outcomes[name] = "duplicate" if answer.get("duplicate") else "stored"
        except ValueError as exc:
            outcomes[name] = "refused" if " 409 " in str(exc) else f"error: {exc}"
        except Exception as exc:  # noqa: BLE001 — reported below with the other outcome
            outcomes[name] = f"error: {type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=send, args=("first", http, body)),
               threading.Thread(target=send, args=("twin", twin_http, {**body, "idempotency_key": twin_key}))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    twin_session.close()
    http.retries += twin_http.retries
    stored = {"stored": "stored", "duplicate": "stored"}
    if sorted(stored.get(o, o) for o in outcomes.values()) != ["refused", "stored"]:
        raise RuntimeError(f"{url}: an answer sent twice at once should be stored once and refused once"
                           f" (409), got {outcomes}")
    return 1


def simulate_participants(base_url: str, experiment: str, n_participants: int, *, concurrency: int = 4,
                          drop_rate: float = 0.0, seed: int = 0, model: str = "popout", db_url: str | None = None,
                          retry_for_s: float = 30.0, failure_rates: dict[str, float] | None = None,
                          first: int = 0) -> dict:
    """`n_participants` simulated participants (`run_participant`, numbered first, first+1, ...,
    seeds seed + number) on the study server at `base_url`, `concurrency` at a time; failure_rates
    ({catch, sentinel, tutorial: share of participants}) decide which fail what (`failing`).

    model: "popout" clicks from each stimulus' CLEVR pop-out saliency (`scene_densities`, needs
    the study database at `db_url` to know which stimulus a trial shows); "centre" from the
    centre bias. ValueError when the server cannot be reached at all (checked once first, so a
    wrong URL fails at once rather than after every client's retries).
    Returns {"results": per participant dicts, "failures": ["Type: message", ...], "complete",
    "refused", "statuses" ({status: participants}), "clicks_sent", "saves", "resends"}."""
    import requests  # the HTTP client: only simulated participants need it

    if model not in ("popout", "centre"):
        raise ValueError(f"model must be 'popout' or 'centre', got {model!r}")
    try:
        requests.get(f"{base_url.rstrip('/')}/api/v1/session", timeout=10)
    except requests.RequestException as exc:
        raise ValueError(f"no study server answers at {base_url}: {type(exc).__name__}") from None
    density_of = scene_densities(db_url) if model == "popout" else None
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(run_participant, base_url, experiment, seed + i, density_of=density_of,
                               drop_rate=drop_rate, retry_for_s=retry_for_s,
                               fail=failing(i, failure_rates or {}, seed))
                   for i in range(first, first + n_participants)]
        results, failures = [], []
        for future in futures:
            try:
                results.append(future.result())
            except Exception as exc:  # noqa: BLE001 — report every participant, the caller decides
                failures.append(f"{type(exc).__name__}: {exc}")
    statuses = Counter(r["status"] for r in results)
    return {"results": results, "failures": failures, "complete": statuses["complete"], "refused": statuses["refused"],
            "statuses": dict(statuses), "clicks_sent": sum(r["clicks_sent"] for r in results),
            "saves": sum(r["saves"] for r in results), "resends": sum(r["resends"] for r in results)}


def scene_densities(db_url: str | None):
    """density_of(trial json) for `run_participant`: the pop-out model of the trial's scene side.

    Looks the trial's stimulus up in the study database at `db_url` (default the configured
    one; the simulated client never sees which pair it is shown); an image without a scene file
    gets the centre bias. Densities are cached per stimulus and size; thread-safe."""
    url = db_url or database_url()
    migrate(url)
    sessions = session_factory(make_engine(url))
    cache: dict[tuple, np.ndarray] = {}
    lock = threading.Lock()

    def density_of(trial: dict) -> np.ndarray:
        with sessions() as session:
            stimulus = session.get(Trial, trial["id"]).stimulus
            key = (stimulus.id if stimulus else None, trial["natural_w"], trial["natural_h"])
            with lock:
                if key not in cache:
                    cache[key] = popout_density(_scene_side(stimulus), key[1:])
        return cache[key]

    return density_of


def _scene_side(stimulus) -> dict | None:
    """The stimulus' side of its pair's scene file, or None (no pair, no scene file)."""
    if stimulus is None or not stimulus.pair_id:
        return None
    path = Path(stimulus.experiment.dataset_path) / relative_path(stimulus.pair_id, "scene")
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8")).get(stimulus.side)


def _key(rng: np.random.Generator) -> str:
    """A UUID-shaped idempotency key from the participant's random stream."""
    return uuid.UUID(int=int(rng.integers(2**63)) << 64 | int(rng.integers(2**63))).hex


class SimulatedParticipant:
    """What a task's `simulate_trial` gets of the participant answering: `rng` (every random
    choice, in order), `fail` (FAILURES they fail on purpose), `clicks_per_trial` (the range of
    BubbleView clicks), `key()` (a new idempotency key), `get(path)` (a GET on the study server,
    retried as the browser does), `density(trial)` (the saliency they click from, at the trial's
    natural size) and `sample_clicks`."""

    def __init__(self, http, base: str, rng: np.random.Generator, fail: set[str], density_of,
                 clicks_per_trial: tuple[int, int]):
        self.http, self.base, self.rng, self.fail = http, base, rng, fail
        self.density_of, self.clicks_per_trial = density_of, clicks_per_trial

    def key(self) -> str:
        return _key(self.rng)

    def get(self, path: str):
        return self.http.call("GET", f"{self.base}{path}")

    def density(self, trial: dict) -> np.ndarray:
        """density_of(trial), or the centre bias at the trial's natural size without a model."""
        if self.density_of:
            return self.density_of(trial)
        return popout_density(None, (trial["natural_w"], trial["natural_h"]))

    def sample_clicks(self, density: np.ndarray, n: int, duration_ms: float = 10_000.0) -> list[dict]:
        return sample_clicks(density, n, self.rng, duration_ms)


class _RetryingClient:
    """requests with the browser's persistence: retry connection errors, timeouts, answers cut
    off and 5xx answers with jittered exponential backoff until `retry_for_s` seconds have passed."""

    FIRST_DELAY_S = 0.05
    MAX_DELAY_S = 2.0

    def __init__(self, session, timeout_s: float, retry_for_s: float, jitter_seed: int):
        self.session, self.timeout_s, self.retry_for_s = session, timeout_s, retry_for_s
        self.retries = 0
        self._jitter = random.Random(jitter_seed)  # apart from the click RNG: network luck never changes clicks

    def call(self, method: str, url: str, accept: tuple[int, ...] = (), **kwargs):
        """The response (redirects followed) once it is < 500; ValueError on a 4xx not in
        `accept` (those are returned); RuntimeError when it still fails after retry_for_s seconds."""
        import requests  # the HTTP client: only simulated participants need it

        deadline = time.monotonic() + self.retry_for_s
        delay = self.FIRST_DELAY_S
        while True:
            try:
                response = self.session.request(method, url, timeout=self.timeout_s, **kwargs)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                # refused, reset, timed out, or the answer cut off mid-body (the server died)
                failure = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400 or response.status_code in accept:
                    return response
                if response.status_code < 500:
                    raise ValueError(f"{method} {url} refused: {response.status_code} {response.text[:200]}")
                failure = f"HTTP {response.status_code} {response.text[:200]}"
            wait = delay * (0.5 + self._jitter.random())
            if time.monotonic() + wait > deadline:
                raise RuntimeError(f"{method} {url} still failing after {self.retry_for_s:g} s: {failure}")
            log.debug("%s %s failed (%s); retrying in %.2f s", method, url, failure, wait)
            self.retries += 1
            time.sleep(wait)
            delay = min(delay * 2, self.MAX_DELAY_S)


def _gaussian(xs, ys, cx: float, cy: float, sigma: float) -> np.ndarray:
    return np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))
