"""Fixtures of the sources tests (defined in source_helpers.py, a uniquely named module the tests import)."""

from source_helpers import *  # noqa: F401,F403
