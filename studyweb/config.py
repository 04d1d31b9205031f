"""Configuration from the environment, with safe defaults for local use.

GAZELAB_ENV              development (default) | production | testing
GAZELAB_INSTANCE_DIR     where the SQLite file and caches live (default ./instance)
GAZELAB_DATABASE_URL     SQLAlchemy URL (default sqlite:///<instance>/gazelab.db)
GAZELAB_SECRET_KEY       Flask's secret key; production refuses the default
GAZELAB_MAX_CONTENT_LENGTH  largest request body in bytes (default 256 KiB)
"""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_SECRET_KEY = "dev-not-secret-change-me"
DEFAULT_MAX_CONTENT_LENGTH = 256 * 1024  # bytes


def instance_dir() -> Path:
    """The instance directory (absolute; not created here)."""
    return Path(os.environ.get("GAZELAB_INSTANCE_DIR", "instance")).expanduser().resolve()


def database_url() -> str:
    """GAZELAB_DATABASE_URL, or a SQLite file in the instance directory."""
    return os.environ.get("GAZELAB_DATABASE_URL") or f"sqlite:///{instance_dir() / 'gazelab.db'}"


class Config:
    """Settings read from the environment when the class is instantiated (not at import)."""

    def __init__(self) -> None:
        self.ENV = os.environ.get("GAZELAB_ENV", "development")
        self.INSTANCE_DIR = str(instance_dir())
        self.DATABASE_URL = database_url()
        self.SECRET_KEY = os.environ.get("GAZELAB_SECRET_KEY", DEFAULT_SECRET_KEY)
        self.MAX_CONTENT_LENGTH = int(os.environ.get("GAZELAB_MAX_CONTENT_LENGTH", DEFAULT_MAX_CONTENT_LENGTH))
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_COOKIE_SECURE = self.ENV == "production"
        self.TESTING = self.ENV == "testing"

    def as_dict(self) -> dict:
        """The settings as a dict for `app.config.from_mapping`."""
        return {k: v for k, v in vars(self).items() if k.isupper()}


class ProductionConfig(Config):
    def __init__(self) -> None:
        super().__init__()
        self.ENV = "production"
        self.SESSION_COOKIE_SECURE = True


class TestingConfig(Config):
    def __init__(self) -> None:
        super().__init__()
        self.ENV = "testing"
        self.TESTING = True


def load_config() -> Config:
    """The config class for GAZELAB_ENV, instantiated."""
    env = os.environ.get("GAZELAB_ENV", "development")
    return {"production": ProductionConfig, "testing": TestingConfig}.get(env, Config)()


def check_production(config) -> None:
    """Refuse to run in production mode with the default secret key (ValueError).

    config: a Config or a mapping (e.g. Flask's app.config) with ENV and SECRET_KEY."""
    get = config.get if hasattr(config, "get") else lambda key, default=None: getattr(config, key, default)
    if get("ENV") == "production" and get("SECRET_KEY") in (None, "", DEFAULT_SECRET_KEY):
        raise ValueError("GAZELAB_ENV=production needs GAZELAB_SECRET_KEY set to a random secret, not the default")
