"""Simulated participants: a saliency model to click from, and clients that use the same
HTTP API as the browser (requests), for pilots, load tests and the demo.

Saliency (`popout_density`): for a CLEVR scene, each object is a Gaussian blob at its
pixel_coords whose weight grows with how rare its colour, shape and material are among the
scene's objects (pop-out) and with its size, plus a centre bias; other images get the centre
bias alone. Densities are float64 (height, width) summing to 1.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections import Counter

import numpy as np

log = logging.getLogger(__name__)
SIMULATED_USER_AGENT = "gazelab-simulate/1 (simulated participant)"
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
                    clicks_per_trial: tuple[int, int] = (5, 15), timeout_s: float = 10.0) -> dict:
    """One simulated participant through the HTTP flow the browser uses: the study link
    (?gazelab_simulated=1, user agent SIMULATED_USER_AGENT), consent, instructions, every trial
    saved through POST /api/v1/trials/<id>/save with an idempotency key, then the debrief.

    density_of(trial_json) -> density (height, width); default: centre bias at the natural size.
    drop_rate: chance that a save's answer is "lost" — the client then resends the same key,
    as the browser's queue would, which must store it once. Returns {participant_id,
    clicks_sent, saves, resends, status}."""
    import requests

    rng = np.random.default_rng(rng_seed)
    http = requests.Session()
    http.headers["User-Agent"] = SIMULATED_USER_AGENT
    base = base_url.rstrip("/")
    entry = http.get(f"{base}/s/{experiment}", params={"gazelab_simulated": "1"}, timeout=timeout_s)
    entry.raise_for_status()
    token = http.cookies.get("gazelab_participant")
    if not token:
        raise ValueError(f"{base}/s/{experiment} gave no participant token (status {entry.status_code})")
    http.headers["X-Participant-Token"] = token
    _post(http, f"{base}/s/{experiment}/consent", data={"consent": "yes"}, timeout=timeout_s)
    _post(http, f"{base}/s/{experiment}/instructions",
          data={"screen_w": 1920, "screen_h": 1080, "window_w": 1280, "window_h": 800}, timeout=timeout_s)
    state = http.get(f"{base}/api/v1/session", timeout=timeout_s).json()
    sent = saves = resends = 0
    for trial in state["trials"]:
        if trial["status"] == "done":
            continue
        width, height = trial["natural_w"], trial["natural_h"]
        density = density_of(trial) if density_of else popout_density(None, (width, height))
        clicks = sample_clicks(density, int(rng.integers(*clicks_per_trial, endpoint=True)), rng,
                               float(trial.get("time_limit_ms") or 10_000.0))
        body = {"idempotency_key": uuid.UUID(int=int(rng.integers(2**63)) << 64 | int(rng.integers(2**63))).hex,
                "clicks": clicks, "display_w": width * 1.5, "display_h": height * 1.5, "done": True,
                "elapsed_ms": float(trial.get("time_limit_ms") or 10_000.0)}
        attempts = 0
        while True:
            attempts += 1
            answer = _save(http, f"{base}{trial['save_url']}", body, timeout_s)
            if answer is not None and rng.random() >= drop_rate:
                break
            resends += 1
            time.sleep(min(0.05 * 2**attempts, 2.0))
            if attempts > 20:
                raise RuntimeError(f"trial {trial['id']}: save failed {attempts} times")
        sent += len(clicks)
        saves += 1
    _post(http, f"{base}/s/{experiment}/debrief", data={"comments": ""}, timeout=timeout_s)
    final = http.get(f"{base}/api/v1/session", timeout=timeout_s).json()
    return {"participant_id": final["participant_id"], "clicks_sent": sent, "saves": saves, "resends": resends,
            "status": final["status"]}


def _save(http, url: str, body: dict, timeout_s: float):
    import requests

    try:
        response = http.post(url, json=body, timeout=timeout_s)
    except requests.RequestException as exc:
        log.info("save to %s failed (%s); retrying", url, exc)
        return None
    if response.status_code >= 500:
        return None
    if response.status_code >= 400:
        raise ValueError(f"save to {url} refused: {response.status_code} {response.text[:200]}")
    return response.json()


def _post(http, url: str, **kwargs):
    response = http.post(url, **kwargs)
    if response.status_code >= 400:
        raise ValueError(f"POST {url} refused: {response.status_code} {response.text[:200]}")
    return response


def _gaussian(xs, ys, cx: float, cy: float, sigma: float) -> np.ndarray:
    return np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))
