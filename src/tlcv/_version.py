"""The package version (a module of its own: modules read it without importing tlcv's root)."""

__version__ = "0.1.0"  # keep equal to pyproject.toml (tests/test_startup.py checks)
