"""Name → class registries for saliency predictors and editors (detectron2 style).

    from models.registry import EDITORS

    @EDITORS.register("gazeshiftnet")
    class GazeShiftNet(nn.Module): ...

    EDITORS.get("gazeshiftnet")  # -> the class

A registry holds classes (or factories) only; building a model from a config is the class's own
business (`from_config`), so this module imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Registry", "PREDICTORS", "EDITORS"]


class Registry:
    """A named table of objects of one `kind` ("predictor", "editor").

    Names are unique: registering a second object under a taken name raises ValueError, so two
    files cannot silently shadow each other.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._objects: dict[str, Any] = {}

    def register(self, name: str) -> Callable[[Any], Any]:
        """Decorator: `@REGISTRY.register("name")` stores the decorated object under `name`."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def decorate(obj: Any) -> Any:
            if name in self._objects and self._objects[name] is not obj:
                raise ValueError(
                    f"{self.kind} {name!r} is already registered to {self._objects[name]!r}; "
                    f"cannot register {obj!r} under the same name"
                )
            self._objects[name] = obj
            return obj

        return decorate

    def get(self, name: str) -> Any:
        """The object registered under `name`; ValueError listing the known names otherwise."""
        try:
            return self._objects[name]
        except (KeyError, TypeError):
            known = ", ".join(self.names()) or "none registered"
            raise ValueError(f"unknown {self.kind} {name!r}; known {self.kind}s: {known}") from None

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._objects)

    def __contains__(self, name: object) -> bool:
        return name in self._objects

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"


PREDICTORS = Registry("predictor")
EDITORS = Registry("editor")
