"""Atomic file output: write next to the destination, then rename over it.

One mechanism for every single-file writer of the package (catalogues, FITS products,
checkpoints, logs, plots), so that a killed job never leaves half a file behind and two
concurrent writers never share a temporary name.
"""

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(path, writer):
    """Call ``writer(tmp_path)`` on a temporary file next to ``path``, then rename it.

    Parameters
    ----------
    path : str or os.PathLike
        Final path; its folder is created if needed.
    writer : callable
        Writes the whole file at the `~pathlib.Path` it is given. The temporary file does
        not exist when ``writer`` is called (some writers, e.g. FITS streaming, refuse an
        existing file).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    os.remove(tmp)
    try:
        writer(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
