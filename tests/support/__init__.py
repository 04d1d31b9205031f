"""Helpers the test modules import (`pythonpath = ["tests"]` in pyproject.toml)."""
