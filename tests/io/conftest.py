"""Fixtures of the io tests (defined in io_helpers.py, a uniquely named module the tests import)."""

from io_helpers import *  # noqa: F401,F403
