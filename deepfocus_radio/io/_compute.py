"""Running dask graphs with a tqdm progress bar, on threads or on a dask.distributed client."""

import sys

import dask
from dask.callbacks import Callback

__all__ = ["active_client", "compute", "TqdmCallback", "atomic_directory"]


def active_client(client=None):
    """The client to use: ``client`` itself, else the active distributed client, else None."""
    if client is not None:
        return client
    if "distributed" not in sys.modules:  # no client can be active; importing costs ~0.5 s
        return None
    from distributed import get_client

    try:
        return get_client()
    except ValueError:
        return None


class TqdmCallback(Callback):
    """Dask local-scheduler callback updating a tqdm bar once per finished task."""

    def __init__(self, *, desc, disable):
        super().__init__()
        self._desc = desc
        self._disable = disable
        self._bar = None

    def _start_state(self, dsk, state):
        from tqdm.auto import tqdm

        total = sum(len(state[k]) for k in ("ready", "waiting", "running", "finished"))
        self._bar = tqdm(total=total, desc=self._desc, disable=self._disable, unit="task")

    def _posttask(self, key, result, dsk, state, worker_id):
        self._bar.update(1)

    def _finish(self, dsk, state, errored):
        if self._bar is not None:
            self._bar.close()


def compute(*collections, client=None, desc="compute", progress=True, num_workers=None):
    """Compute dask collections with a progress bar; returns their results.

    Parameters
    ----------
    *collections : dask collections or Delayed
        What to compute.
    client : `distributed.Client`, optional
        Run on this cluster; by default the active client if any, else local threads.
    desc : str, optional
        Label of the progress bar.
    progress : bool, optional
        Show the progress bar.
    num_workers : int, optional
        Threads of the local scheduler (default: dask's, the number of cores). With 1, the
        graph runs in the calling thread (dask's synchronous scheduler): a fresh worker
        thread would make torch start a new OpenMP team on every call (measured: 0.50 s
        instead of 0.37 s for four 32x96x96 U-Net tiles).

    Returns
    -------
    tuple
        One result per collection.
    """
    client = active_client(client)
    if client is not None:
        return _compute_distributed(collections, client, desc, progress)
    with TqdmCallback(desc=desc, disable=not progress):
        if num_workers == 1:
            return dask.compute(*collections, scheduler="sync")
        return dask.compute(*collections, scheduler="threads", num_workers=num_workers)


def _compute_distributed(collections, client, desc, progress):
    from distributed import as_completed
    from tqdm.auto import tqdm

    futures = client.compute(list(collections))
    with tqdm(total=len(futures), desc=desc, disable=not progress, unit="part") as bar:
        for _ in as_completed(futures):
            bar.update(1)
    return tuple(client.gather(futures))


class atomic_directory:
    """Context manager: build a directory under a temporary name, rename it into place.

    Parameters
    ----------
    destination : pathlib.Path
        Final directory; replaced only when the ``with`` block succeeds.
    overwrite : bool
        Remove an existing ``destination`` at the end (otherwise the caller has checked
        that it does not exist).
    """

    def __init__(self, destination, *, overwrite):
        self.destination = destination
        self.overwrite = overwrite
        self.tmp = None

    def __enter__(self):
        import tempfile
        from pathlib import Path

        parent = self.destination.parent
        parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{self.destination.name}."))
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        import os
        import shutil

        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        if self.destination.exists() and self.overwrite:
            remove_path(self.destination)
        os.replace(self.tmp, self.destination)
        return False


def remove_path(path):
    """Delete a file or a directory tree."""
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
