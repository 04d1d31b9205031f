"""Moved to `datadir` (an alias kept only while the photo import and the render workers move)."""
from datadir.dataset import *  # noqa: F401,F403
from datadir.files import temp_file_beside  # noqa: F401
from datadir.layout import KINDS, SIDES, SUBDIRS, relative_path  # noqa: F401
from datadir.schema import PAIR_ID_PATTERN as _PAIR_ID  # noqa: F401
