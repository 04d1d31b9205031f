"""The Flask experiment server (flaskr style): `create_app(test_config=None)`.

Blueprints: `participant` (entry link, consent, instructions, debrief, completion), `tasks`
(`studyweb.tasks.pages`: the task pages and their images), `api` (JSON under /api/v1) and
`admin`. The tasks themselves are plug-ins (`studyweb.tasks`).
Importing this package stays cheap: Flask is imported only when an app is created.
"""
from __future__ import annotations

import gc
import logging
import os
from pathlib import Path

from studyweb.config import check_production, instance_secret_key, load_config

log = logging.getLogger(__name__)


def create_app(test_config: dict | None = None):
    """The app, configured from the environment (`studyweb.config`) unless `test_config` is
    given (a mapping merged over the environment's settings; DATABASE_URL picks the database,
    INSTANCE_DIR the instance folder). Without a SECRET_KEY the key kept in the instance folder
    is used (`studyweb.config.instance_secret_key`): a key in the source never signs anything.

    Raises ValueError in production mode with a secret key that is not secret: too short, or
    publicly known (`studyweb.config.check_production`)."""
    # Flask, SQLAlchemy and the blueprints are imported here, not by `import studyweb`.
    from flask import Flask

    from studyweb.db.engine import make_engine, session_factory
    from studyweb.db.request import close_db
    from studyweb.serving import hide_query_strings

    config = load_config().as_dict()
    config["PARTICIPANT_COOKIE"] = "gazelab_participant"
    config.update(test_config or {})
    if test_config and "INSTANCE_DIR" in test_config and "DATABASE_URL" not in test_config \
            and not os.environ.get("GAZELAB_DATABASE_URL"):  # the default database lives in the instance given
        config["DATABASE_URL"] = f"sqlite:///{Path(config['INSTANCE_DIR']).expanduser().resolve() / 'gazelab.db'}"
    instance = Path(config["INSTANCE_DIR"]).expanduser().resolve()
    config["INSTANCE_DIR"] = str(instance)
    app = Flask(__name__, instance_path=str(instance))
    app.config.from_mapping(config)
    check_production(app.config)
    hide_query_strings()  # whatever serves the app: request logs show paths, never tokens or recruit ids
    instance.mkdir(parents=True, exist_ok=True)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = instance_secret_key(instance)
    app.session_interface = _session_interface()

    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["studyweb.engine"] = engine
    app.extensions["studyweb.sessions"] = session_factory(engine)
    app.teardown_appcontext(close_db)

    from studyweb import admin, api, participant, security
    from studyweb.tasks import pages

    app.register_blueprint(participant.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(admin.bp)
    api.register_error_handlers(app)
    security.init_app(app)
    _freeze_startup_objects()
    return app


_frozen = False


def _freeze_startup_objects() -> None:
    """Once per process, move the objects that exist after the first app is built (modules,
    models, compiled statements) out of the cyclic garbage collector's sight: they live as long
    as the process, and a full collection would otherwise walk all of them (tens of ms in a
    gunicorn worker, while every request queued on that worker waits)."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def _session_interface():
    """Flask's signed-cookie sessions, with the signing serializer built once per secret key
    (Flask builds it on every request, session cookie or not), and none at all on the JSON API,
    which never reads or writes one."""
    from flask.sessions import SecureCookieSessionInterface

    class CachedSerializerSessionInterface(SecureCookieSessionInterface):
        def __init__(self):
            self._serializers = {}

        def open_session(self, app, request):
            if request.path.startswith("/api/"):  # the API authenticates by participant token alone
                return self.null_session_class()
            return super().open_session(app, request)

        def get_signing_serializer(self, app):
            if not app.secret_key:
                return None
            key = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
            serializer = self._serializers.get(key)
            if serializer is None:
                serializer = self._serializers[key] = super().get_signing_serializer(app)
            return serializer

    return CachedSerializerSessionInterface()
