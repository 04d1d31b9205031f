"""Heat-map overlays for the admin dashboard (PNG bytes, rendered on the fly)."""
from __future__ import annotations

import cv2
import numpy as np

from studyweb.db.schema import Stimulus
from studyweb.experiments import stimulus_image_path


def overlay_png(stimulus: Stimulus, density: np.ndarray | None, alpha: float = 0.5) -> bytes:
    """The stimulus at its natural size with `density` (any map of its aspect, max-normalised,
    JET colours) blended in at `alpha`; the plain image when there is no map (None)."""
    image = cv2.imread(str(stimulus_image_path(stimulus)), cv2.IMREAD_COLOR)
    if image is None:
        image = np.zeros((stimulus.height, stimulus.width, 3), np.uint8)
    if density is not None:
        if density.shape != image.shape[:2]:
            density = cv2.resize(density, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
        peak = float(density.max())
        scaled = np.zeros(density.shape, np.uint8) if peak <= 0 else (density / peak * 255).astype(np.uint8)
        heat = cv2.applyColorMap(scaled, cv2.COLORMAP_JET)
        image = cv2.addWeighted(image, 1 - alpha, heat, alpha, 0)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"could not encode the overlay of stimulus {stimulus.id}")
    return encoded.tobytes()
