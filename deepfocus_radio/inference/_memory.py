"""Returning freed heap memory to the system between blocks (glibc only)."""

import ctypes
import os

__all__ = ["release_freed_memory", "TRIM_ABOVE_BYTES"]

#: Growth of resident memory above one block's working set tolerated before a trim (bytes).
TRIM_ABOVE_BYTES = 32 * 2**20


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def release_freed_memory():
    """Give freed heap memory back to the system when it piles up (call after each block).

    Tiles, activations and regions are large, short-lived and allocated from several
    threads: glibc keeps the freed blocks in its arenas, and a long run's resident memory
    grows to several times its working set (measured: 260 MiB instead of 60 MiB on a
    64 MiB cube). ``malloc_trim`` keeps memory flat, but the next block then faults its
    pages in again: 10-15% of the throughput when trimming after every block. So one
    block's memory stays resident for the next block to reuse, and only growth beyond it
    is given back:

    - the floor is the anonymous resident memory right after the last trim (live data);
    - one block's working set is learned at the end of each block that follows a trim (the
      latest, not the largest: a high-water mark would ratchet up on a long run, trimming
      ever less, so memory and time per voxel would drift with the cube's size);
    - the heap is trimmed when resident memory exceeds floor + working set +
      :data:`TRIM_ABOVE_BYTES` and glibc holds at least that much free.

    glibc's count of free bytes alone is no guide: it still counts the pages a trim gave
    back. Does nothing without glibc.
    """
    libc = _libc()
    if not libc:
        return
    resident = _anonymous_resident()
    state = _STATE
    if state["floor"] is None or resident < state["floor"]:
        state["floor"] = resident
    if state["learn"]:
        state["working_set"] = resident - state["floor"]
        state["learn"] = False
        return
    if (resident > state["floor"] + state["working_set"] + TRIM_ABOVE_BYTES
            and libc.mallinfo2().fordblks > TRIM_ABOVE_BYTES):
        libc.malloc_trim(0)
        state["floor"], state["learn"] = _anonymous_resident(), True


def _libc():
    libc = _LIBC[0]
    if libc is None:
        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallinfo2.restype = _MallInfo2
        except (OSError, AttributeError):
            libc = False
        _LIBC[0] = libc
    return libc


def _anonymous_resident():
    """Resident memory not backed by files (bytes), from ``/proc/self/statm``."""
    with open("/proc/self/statm", "rb") as statm:
        fields = statm.read().split()
    return (int(fields[1]) - int(fields[2])) * _PAGE


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_LIBC = [None]
#: floor: anonymous resident bytes after the last trim; working_set: learned block memory
_STATE = {"floor": None, "working_set": 0, "learn": False}
