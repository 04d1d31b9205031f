"""The composition root: the `gazelab` CLI and the end-to-end demo."""

__version__ = "0.1.0"
