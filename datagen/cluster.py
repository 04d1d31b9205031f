"""Ray, the cluster backend: the one place that starts and stops it for gazelab's commands."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def ray_session(address: str) -> Iterator[Any]:
    """The `ray` module, connected to `address` ("local": a new local instance; "auto" or an
    address: a running cluster) unless this process is connected already; disconnected on exit
    when connected here. ValueError when Ray is not installed."""
    try:
        import ray  # optional: the cluster extra
    except ImportError as exc:
        raise ValueError("--ray-address needs Ray: pip install 'gazelab[cluster]'") from exc
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=None if address == "local" else address, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        if started_here:
            ray.shutdown()
