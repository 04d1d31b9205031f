"""gunicorn settings for the study server (the README's production command):

    gunicorn -c python:studyweb.gunicorn_conf 'studyweb:create_app()'

Each value can be changed by the environment variable named beside it, or by gunicorn's own
command-line flags, which win over this file.

- Workers leave with their master: a worker asks the kernel for SIGTERM when the master dies
  (Linux prctl PR_SET_PDEATHSIG), so a crashed or SIGKILLed master never leaves orphans serving
  requests and holding the port (they did for 20-25 s, so a restart could not bind).
- Graceful timeout: on shutdown, requests in flight get GAZELAB_GRACEFUL_TIMEOUT s to finish.
- The access log never holds a query string: study links carry participant tokens and recruit
  ids there. It logs the path, status, size, duration in ms and the worker's pid; and every line
  of gunicorn's logs passes `studyweb.serving.QueryStringFilter`, which cuts any "?..." left
  (an error line names the request's URI with its query).
- Start-up refusals (`on_starting`, before any worker): production with a secret key that is
  not secret (`studyweb.config.check_production`), and more than one worker with failed logins
  counted per process (GAZELAB_RATELIMIT_STORAGE_URI=memory://), which would let each worker
  allow its own 5 failures.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal

from studyweb.config import check_production, load_config
from studyweb.serving import hide_query_strings

hide_query_strings()

bind = os.environ.get("GAZELAB_BIND", "127.0.0.1:8000")
# SQLite takes one writer at a time: a few processes with threads overlap the waits on it;
# PostgreSQL scales with more workers (GAZELAB_WORKERS).
workers = int(os.environ.get("GAZELAB_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GAZELAB_THREADS", "8"))
timeout = int(os.environ.get("GAZELAB_WORKER_TIMEOUT", "30"))  # s a worker may go silent before it is replaced
graceful_timeout = int(os.environ.get("GAZELAB_GRACEFUL_TIMEOUT", "10"))  # s for requests in flight at shutdown
keepalive = 5  # s; participants save every ~3 s, so a connection often carries the next save
accesslog = os.environ.get("GAZELAB_ACCESS_LOG", "-") or None  # a path, "-" (stderr), or empty: none
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms pid=%(p)s'
errorlog = "-"
loglevel = os.environ.get("GAZELAB_LOG_LEVEL", "info")
# Behind a reverse proxy on another host, list its address so X-Forwarded-Proto is believed.
forwarded_allow_ips = os.environ.get("GAZELAB_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
control_socket_disable = True  # nothing here uses gunicorn's control socket


def on_starting(server) -> None:
    """Refuse to start (RuntimeError: gunicorn prints "Error: ..." and exits 1) with a secret key
    that is not secret in production, or with per-process login counts and several workers."""
    config = load_config()
    try:
        check_production(config)
    except ValueError as exc:
        raise RuntimeError(str(exc)) from None
    storage = config.RATELIMIT_STORAGE_URI or ""
    if server.cfg.workers > 1 and storage.startswith("memory://"):
        raise RuntimeError(f"GAZELAB_RATELIMIT_STORAGE_URI={storage} counts failed logins per process, so"
                           f" {server.cfg.workers} workers would allow {server.cfg.workers} x the limit; unset it"
                           " (a file in the instance folder, shared by the workers) or use redis://HOST:PORT")


def post_fork(server, worker) -> None:
    """In the new worker: be sent SIGTERM when the master dies, and leave at once if it already
    has (it could die between the fork and the prctl call)."""
    _exit_with_parent(signal.SIGTERM)
    if os.getppid() != server.pid:
        os._exit(0)


def _exit_with_parent(sig: int) -> None:
    """prctl(PR_SET_PDEATHSIG, sig) on Linux; elsewhere gunicorn's own parent check remains."""
    library = ctypes.util.find_library("c")
    if library is None:
        return
    try:
        prctl = ctypes.CDLL(library, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return
    pr_set_pdeathsig = 1
    prctl(pr_set_pdeathsig, int(sig), 0, 0, 0)
