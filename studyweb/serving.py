"""The study app served in this process, for the demo, pilots and tests (werkzeug's threaded
server on a free loopback port); real studies use gunicorn (`studyweb/gunicorn_conf.py`)."""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager


@contextmanager
def serve_in_background(app):
    """The base URL of `app` served on 127.0.0.1 (a free port) by a background thread, until the
    block ends."""
    from werkzeug.serving import make_server

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
    from studyweb import create_app

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = create_app({"DATABASE_URL": database_url, "INSTANCE_DIR": str(instance_dir)})
    try:
        with serve_in_background(app) as url:
            yield url
    finally:
        app.extensions["studyweb.engine"].dispose()
