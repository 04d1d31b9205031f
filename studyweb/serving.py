"""The study app served in this process, for the demo, pilots and tests (werkzeug's threaded
server on a free loopback port); real studies use gunicorn (`studyweb/gunicorn_conf.py`).

Server logs never hold a query string: study links carry participant tokens (`t=`) and recruit
ids (PROLIFIC_PID, workerId, ...) there. `hide_query_strings` (installed by `create_app` and by
the gunicorn config) cuts every "?..." from the lines of werkzeug's request log (`gazelab study
serve`, `flask run`, the servers here) and of gunicorn's logs, so they show paths alone.
"""
from __future__ import annotations

import logging
import re
import threading
from contextlib import contextmanager

from werkzeug.serving import make_server

from studyweb import create_app

REQUEST_LOGGERS = ("werkzeug", "gunicorn.error", "gunicorn.access")
_QUERY = re.compile(r"\?[^\s\"']*")  # from "?" to the end of the URL (a space or quote)


class QueryStringFilter(logging.Filter):
    """Cuts query strings out of each record's message (the record is rewritten, never dropped)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg, record.args = _QUERY.sub("", message), None
        return True


def hide_query_strings() -> None:
    """Install `QueryStringFilter` on werkzeug's and gunicorn's loggers, once per process."""
    for name in REQUEST_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QueryStringFilter) for f in logger.filters):
            logger.addFilter(QueryStringFilter())


@contextmanager
def serve_in_background(app):
    """The base URL of `app` served on 127.0.0.1 (a free port) by a background thread, until the
    block ends."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


@contextmanager
def local_study_server(database_url: str, instance_dir):
    """The study app on `database_url` (instance folder `instance_dir`) served in the background
    without a line per request; yields its base URL, disposes the app's engine afterwards."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = create_app({"DATABASE_URL": database_url, "INSTANCE_DIR": str(instance_dir)})
    try:
        with serve_in_background(app) as url:
            yield url
    finally:
        app.extensions["studyweb.engine"].dispose()
