"""The heap-trimming rule of tiled inference: one block's memory stays, growth is trimmed."""

import pytest

from deepfocus_radio.inference import _memory

MIB = 2**20


class _FakeLibc:
    """glibc stand-in: reports ``free`` bytes, records trims, drops resident memory."""

    def __init__(self, process):
        self.process, self.free, self.trims = process, 200 * MIB, 0

    def mallinfo2(self):
        info = _memory._MallInfo2()
        info.fordblks = self.free
        return info

    def malloc_trim(self, pad):
        self.trims += 1
        self.process.resident = self.process.live


class _Process:
    def __init__(self):
        self.live = self.resident = 100 * MIB


@pytest.fixture
def process(monkeypatch):
    state = _Process()
    libc = _FakeLibc(state)
    monkeypatch.setattr(_memory, "_LIBC", [libc])
    monkeypatch.setattr(_memory, "_STATE", {"floor": None, "working_set": 0, "learn": False})
    monkeypatch.setattr(_memory, "_anonymous_resident", lambda: state.resident)
    return state, libc


def _blocks(state, sizes):
    for size in sizes:
        state.resident = max(state.resident, state.live + size)  # freed pages stay resident
        _memory.release_freed_memory()


def test_steady_blocks_are_not_trimmed(process):
    """Blocks that reuse the same memory: one trim (the first block's growth), then none."""
    state, libc = process
    _memory.release_freed_memory()  # before any block (e.g. after the noise pass)
    _blocks(state, [150 * MIB] * 20)
    assert libc.trims == 1


def test_growth_is_trimmed(process):
    """Freed memory that piles up block after block (fragmentation) is given back once it
    has grown by TRIM_ABOVE_BYTES above one block's working set, so it stays bounded."""
    state, libc = process
    block, creep = 40 * MIB, 5 * MIB
    _memory.release_freed_memory()
    highest = 0
    for _ in range(100):
        state.resident = max(state.resident, state.live + block) + creep
        highest = max(highest, state.resident)
        _memory.release_freed_memory()
    # untrimmed, it would reach live + block + 100 creeps (600 MiB)
    assert libc.trims >= 10
    assert highest <= state.live + block + 2 * creep + _memory.TRIM_ABOVE_BYTES


def test_no_trim_without_free_heap_memory(process):
    """Growth that is live data (glibc holds little free memory) is not trimmed."""
    state, libc = process
    libc.free = MIB
    _memory.release_freed_memory()
    _blocks(state, [500 * MIB])
    assert libc.trims == 0


def test_larger_blocks_of_a_later_run_are_learned(process):
    """A second run with larger blocks in the same process (a worker, a notebook) is
    trimmed once to learn them, not after every block."""
    state, libc = process
    _memory.release_freed_memory()
    _blocks(state, [100 * MIB] * 10)
    first = libc.trims
    _blocks(state, [300 * MIB] * 20)
    assert first == 1 and libc.trims == 2
