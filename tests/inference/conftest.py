"""Fixtures of the inference tests (defined in engine_helpers.py, a uniquely named module the tests import)."""

from engine_helpers import *  # noqa: F401,F403
