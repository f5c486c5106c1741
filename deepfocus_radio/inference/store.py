"""Writing a tiled prediction straight into a zarr store, resumably.

The store is built under ``<out>.partial`` next to ``out``. Each output block is one zarr
chunk, written by the task that computes it, which then sets the block's flag in a small
``_done`` array (one chunk per flag, so concurrent workers never share a chunk). A run that
was killed is resumed by running it again: blocks whose flag is set are not recomputed,
and the result is the same. When every block is written, the flags are removed and the
store is renamed to ``out`` in one step.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits

from deepfocus_radio.exceptions import OutputExistsError
from deepfocus_radio.inference._memory import release_freed_memory
from deepfocus_radio.inference.graph import block_tasks

__all__ = ["predict_to_store", "partial_path", "DONE_ARRAY", "WAVE_BLOCKS_PER_WORKER"]

#: Name of the completion record inside an unfinished store.
DONE_ARRAY = "_done"


def partial_path(out):
    """Where an unfinished store for ``out`` is kept."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def _fingerprint(spec, layout, batch_size, sigma, metadata):
    text = json.dumps(
        {
            "model": spec.key,
            "shape": layout.shape,
            "tile": layout.tile,
            "halo": layout.halo,
            "blend": layout.blend,
            "chunks": layout.chunks,
            "batch_size": batch_size,
            "sigma": hashlib.sha256(np.ascontiguousarray(sigma).tobytes()).hexdigest(),
            "attrs": metadata.get("attrs", {}),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _open_or_create(work, layout, fingerprint, metadata):
    """The unfinished store at ``work``: reopened if it is the same job, else created."""
    import zarr

    from deepfocus_radio.io._compute import remove_path
    from deepfocus_radio.io.zarr_store import VARIABLE, create_store

    if work.exists():
        try:
            group = zarr.open_group(work, mode="r+", use_consolidated=False)
            if group.attrs["deepfocus_radio"].get("fingerprint") == fingerprint:
                return group[VARIABLE], group[DONE_ARRAY]
        except (KeyError, FileNotFoundError, ValueError, TypeError):
            pass
        remove_path(work)  # an unfinished run of a different job: start again
    chunk_shape = tuple(c[0] for c in layout.chunks)
    array = create_store(
        work,
        shape=layout.shape,
        dtype=np.float32,
        chunks=chunk_shape,
        header=metadata.get("header") or fits.Header(),
        unit=metadata.get("unit") or u.dimensionless_unscaled,
        beam=metadata.get("beam"),
        attrs={**metadata.get("attrs", {}), "fingerprint": fingerprint, "complete": False},
    )
    group = zarr.open_group(work, mode="r+", use_consolidated=False)
    done = group.create_array(DONE_ARRAY, shape=layout.grid, dtype=np.uint8, chunks=(1, 1, 1),
                              fill_value=0, dimension_names=["block_chan", "block_y", "block_x"])
    return array, done


def write_block(array_path, done_path, bounds, index, block):
    """Write one block into the store, then flag it as done (a dask task)."""
    import zarr

    target = zarr.open_array(array_path, mode="r+")
    target[tuple(slice(lo, hi) for lo, hi in bounds)] = block
    flags = zarr.open_array(done_path, mode="r+")
    flags[tuple(slice(i, i + 1) for i in index)] = 1
    del block, target
    release_freed_memory()  # the codec's buffers too
    return 1


def _wave_size(client, num_workers):
    """Blocks computed per wave: enough to keep every worker busy, few enough that the
    input chunks held at once stay bounded whatever the cube's size."""
    import os

    from deepfocus_radio.io._compute import active_client

    client = active_client(client)
    if client is not None:
        workers = sum(client.nthreads().values()) or 1
    else:
        workers = num_workers or os.cpu_count() or 1
    return max(8, WAVE_BLOCKS_PER_WORKER * workers)


#: Blocks per worker in each wave of a run into a store.
WAVE_BLOCKS_PER_WORKER = 4


def _wave(source, spec, layout, batch_size, sigma, indices, paths, name):
    """A Delayed writing the blocks ``indices`` (one wave) into the store."""
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph

    spec_key = f"model-spec-{name}"
    dsk = {spec_key: spec}
    keys = []
    for index, task in block_tasks(source, spec_key, layout, batch_size, sigma, indices).items():
        key = (name,) + index
        dsk[key] = (write_block, paths[0], paths[1], layout.plan(index).bounds, index, task)
        keys.append(key)
    dsk[name] = (sum, keys)
    return Delayed(name, HighLevelGraph.from_collections(name, dsk, dependencies=[source]))


def predict_to_store(source, spec, layout, settings, sigma, out, *, overwrite, client, progress,
                     num_workers, metadata):
    """Run the prediction into the zarr store ``out`` (see the module docstring).

    Blocks run in waves (:func:`_wave_size` blocks at a time, in array order), so memory
    stays flat however large the cube: a single graph over the whole cube lets the
    scheduler read input chunks far ahead of the blocks that need them.

    Returns
    -------
    dask.array.Array
        Lazy view of the finished store's data.

    Raises
    ------
    OutputExistsError
        If ``out`` exists and ``overwrite`` is False.
    """
    import dask.array as da
    import zarr
    from tqdm.auto import tqdm

    from deepfocus_radio.io._compute import compute
    from deepfocus_radio.io.zarr_store import VARIABLE

    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    work = partial_path(out)
    fingerprint = _fingerprint(spec, layout, settings.batch_size, sigma, metadata)
    _, done = _open_or_create(work, layout, fingerprint, metadata)
    flags = np.asarray(done[...]).astype(bool)
    pending = [index for index in np.ndindex(*layout.grid) if not flags[index]]
    paths = (str(work / VARIABLE), str(work / DONE_ARRAY))
    size = _wave_size(client, num_workers)
    with tqdm(total=len(pending), desc="predict", unit="block", disable=not progress) as bar:
        for number, start in enumerate(range(0, len(pending), size)):
            wave = _wave(source, spec, layout, settings.batch_size, sigma,
                         pending[start:start + size], paths, f"wave-{fingerprint[:16]}-{number}")
            (count,) = compute(wave, client=client, progress=False, num_workers=num_workers)
            bar.update(count)
    _finish(work, out)
    return da.from_zarr(zarr.open_array(out / VARIABLE, mode="r"))


def _finish(work, out):
    """Drop the completion record, mark the store complete and move it to ``out``."""
    import zarr

    from deepfocus_radio.io._compute import remove_path
    from deepfocus_radio.io.zarr_store import consolidate

    group = zarr.open_group(work, mode="r+", use_consolidated=False)
    del group[DONE_ARRAY]
    attrs = dict(group.attrs["deepfocus_radio"])
    attrs["complete"] = True
    group.attrs["deepfocus_radio"] = attrs
    consolidate(work)
    if out.exists():
        remove_path(out)
    work.rename(out)
