import os

import pytest

from deepfocus_radio._atomic import atomic_write


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    def failing(tmp):
        tmp.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(tmp_path / "out.json", failing)
    assert os.listdir(tmp_path) == []


def test_atomic_write_replaces_the_destination_in_one_step(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    seen = []

    def writer(tmp):
        seen.append(tmp.exists())  # writers such as FITS streaming need a fresh name
        tmp.write_text("new")

    assert atomic_write(target, writer) == target
    target.write_text("old")
    atomic_write(target, writer)
    assert target.read_text() == "new" and seen == [False, False]
    assert os.listdir(target.parent) == ["out.txt"]
