"""Configuration from the environment, with safe defaults for local use.

GAZELAB_ENV              development (default) | production | testing
GAZELAB_INSTANCE_DIR     where the SQLite file and caches live (default ./instance)
GAZELAB_DATABASE_URL     SQLAlchemy URL (default sqlite:///<instance>/gazelab.db)
GAZELAB_SECRET_KEY       Flask's secret key (signs admin sessions). Unset: a random key is made once
                         and kept in <instance>/secret_key (mode 0600), so every worker and restart
                         shares it and no key ever comes from the source. Production refuses a key
                         shorter than 16 characters or a publicly known one (`check_production`)
GAZELAB_MAX_CONTENT_LENGTH  largest request body in bytes (default 256 KiB)
GAZELAB_RATELIMIT_STORAGE_URI  where failed admin logins are counted (default: a file in the instance
                         folder, shared by the workers of one host; redis://HOST:PORT shares them
                         between hosts; memory:// counts per process, see studyweb.security)
GAZELAB_ALLOWED_ORIGINS  space-separated origins besides this server whose pages may POST here
GAZELAB_PROXY_COUNT      reverse proxies in front of the app to trust X-Forwarded-* from (default 0)
GAZELAB_ADMIN_SESSION_IDLE_MIN, GAZELAB_ADMIN_SESSION_MAX_H  an admin session ends after this
                         many idle minutes (default 120) or hours after login (default 12)
"""
from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

SECRET_KEY_FILE = "secret_key"
MIN_SECRET_KEY_LENGTH = 16  # characters; a shorter key is guessable
# Keys anyone can read: this project's old default (public in its history) and the usual
# placeholders, compared in lower case without separators ("Change-Me" is "changeme").
PUBLIC_SECRET_KEYS = frozenset({
    "devnotsecretchangeme", "dev", "development", "test", "testing", "reliabilitytest", "secret", "secretkey",
    "mysecretkey", "yoursecretkey", "supersecret", "supersecretkey", "notsecret", "changeme", "changethis",
    "changeit", "pleasechangeme", "replaceme", "default", "password", "gazelab", "flask",
})
PLACEHOLDER_WORDS = ("changeme", "changethis", "replaceme", "notsecret", "yoursecret")
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
        self.SECRET_KEY = os.environ.get("GAZELAB_SECRET_KEY") or None  # None: the instance key
        self.MAX_CONTENT_LENGTH = int(os.environ.get("GAZELAB_MAX_CONTENT_LENGTH", DEFAULT_MAX_CONTENT_LENGTH))
        self.RATELIMIT_STORAGE_URI = os.environ.get("GAZELAB_RATELIMIT_STORAGE_URI") or None  # None: the instance file
        self.ALLOWED_ORIGINS = tuple(os.environ.get("GAZELAB_ALLOWED_ORIGINS", "").split())
        self.PROXY_COUNT = int(os.environ.get("GAZELAB_PROXY_COUNT", "0"))
        self.ADMIN_SESSION_IDLE_MIN = float(os.environ.get("GAZELAB_ADMIN_SESSION_IDLE_MIN", "120"))
        self.ADMIN_SESSION_MAX_H = float(os.environ.get("GAZELAB_ADMIN_SESSION_MAX_H", "12"))
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
    """Refuse (ValueError), in production, a secret key that is set but not secret: shorter than
    MIN_SECRET_KEY_LENGTH, or publicly known (`is_public_key`). The fallback keys Flask still
    accepts (SECRET_KEY_FALLBACKS) are held to the same rule: a cookie signed with any of them opens
    the admin's session.

    config: a Config or a mapping (e.g. Flask's app.config) with ENV and SECRET_KEY."""
    get = config.get if hasattr(config, "get") else lambda key, default=None: getattr(config, key, default)
    if get("ENV") != "production":
        return
    how = ("production needs a random secret (e.g. python -c 'import secrets; print(secrets.token_hex(32))'),"
           " or leave GAZELAB_SECRET_KEY unset to use a key generated into the instance folder")
    keys = [("GAZELAB_SECRET_KEY", get("SECRET_KEY"))]
    keys += [(f"SECRET_KEY_FALLBACKS[{i}]", k) for i, k in enumerate(get("SECRET_KEY_FALLBACKS") or ())]
    for name, key in keys:
        if key is None:
            continue
        text = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        if len(text) < MIN_SECRET_KEY_LENGTH:
            raise ValueError(f"{name} has {len(text)} characters; {how}, of at least {MIN_SECRET_KEY_LENGTH}")
        if is_public_key(text):
            raise ValueError(f"{name} is a publicly known value (an old default or a placeholder), so anyone could"
                             f" sign admin sessions with it; {how}")


def is_public_key(key: str) -> bool:
    """Whether `key` is one anyone can know: a value in PUBLIC_SECRET_KEYS or a placeholder
    ("change-me-…"), compared in lower case without separators, or one character repeated."""
    letters = "".join(ch for ch in key.lower() if ch.isalnum())
    return (letters in PUBLIC_SECRET_KEYS or any(word in letters for word in PLACEHOLDER_WORDS)
            or len(set(key)) <= 1)


def instance_secret_key(instance_path: str | os.PathLike) -> str:
    """The secret key kept in `instance_path`/secret_key, made (64 random hex digits, file mode
    0600) by the first process that asks. Race-safe: the key is written to a temporary file and
    linked into place, so processes starting at once (gunicorn workers) all read the same
    complete key."""
    folder = Path(instance_path)
    path = folder / SECRET_KEY_FILE
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".secret_key.", dir=folder)  # mkstemp makes it 0600
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(secrets.token_hex(32) + "\n")
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            os.unlink(tmp)
    key = path.read_text(encoding="ascii").strip()
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise ValueError(f"the secret key in {path} has {len(key)} characters, expected at least"
                         f" {MIN_SECRET_KEY_LENGTH}; delete the file to make a new one")
    return key
