"""Training/validation/test data sets on disk, in the layout of DESIGN.md.

::

    <root>/simulation.json            kind, seed, settings (checked when resuming)
    <root>/Train/dirty_cube_<ID>.fits clean_cube_<ID>.fits psf_cube_<ID>.fits sky_cube_<ID>.fits
                 [pb_cube_<ID>.fits] train_params.csv truth.ecsv [sdc2_truth.csv]
    <root>/Validation/ ... valid_params.csv
    <root>/Test/       ... test_params.csv

Every file is written to a temporary name and renamed. A cube counts as done once its
truth rows are saved (``<split>/.rows/<ID>_*.ecsv``); an interrupted run started again with
the same arguments makes only the missing cubes, then rewrites the tables of each split.
"""

import json
import os
import pathlib

import numpy as np
from astropy.table import Table, vstack
from tqdm.auto import tqdm

from deepfocus_radio._atomic import atomic_write
from deepfocus_radio.exceptions import ConfigError, OutputExistsError
from deepfocus_radio.simulation.alma import as_config, simulate_alma_cube
from deepfocus_radio.simulation.config import AlmaConfig, SkaConfig
from deepfocus_radio.simulation.cube import PRODUCTS, empty_catalog

__all__ = ["simulate_dataset", "cube_seed", "SPLITS"]

#: (directory, params file prefix, seed key) of each split.
SPLITS = (("Train", "train", 0), ("Validation", "valid", 1), ("Test", "test", 2))

_MANIFEST = "simulation.json"


def cube_seed(seed, split_key, index):
    """Seed of one cube, derived from the data-set seed, the split and the cube index.

    Parameters
    ----------
    seed : int
        Data-set seed (non-negative).
    split_key : int
        0 (train), 1 (validation) or 2 (test).
    index : int
        Cube index within the split.

    Returns
    -------
    int
        A 64-bit seed from ``numpy.random.SeedSequence(seed, spawn_key=(split_key, index))``.
    """
    sequence = np.random.SeedSequence(seed, spawn_key=(split_key, index))
    return int(sequence.generate_state(1, dtype=np.uint64)[0])


def _simulators(kind):
    if kind == "alma":
        return simulate_alma_cube, AlmaConfig
    if kind == "ska":
        from deepfocus_radio.simulation.ska import simulate_ska_cube

        return simulate_ska_cube, SkaConfig
    raise ConfigError(f"kind must be 'alma' or 'ska', got {kind!r}")


def _write_table_atomic(table, path, fmt):
    atomic_write(path, lambda tmp: table.write(tmp, format=fmt))


def _remove_products(root):
    """Delete the files a previous simulation wrote in ``root`` (and nothing else), so that
    no stale cube of a larger earlier data set stays next to the new ones."""
    for directory, prefix, _ in SPLITS:
        split_dir = root / directory
        if not split_dir.is_dir():
            continue
        stale = [p for name in PRODUCTS.values() for p in split_dir.glob(f"{name}_*.fits")]
        stale += [split_dir / f"{prefix}_params.csv", split_dir / "truth.ecsv", split_dir / "sdc2_truth.csv"]
        stale += list((split_dir / ".rows").glob("*.ecsv"))
        for path in stale:
            if path.is_file():
                path.unlink()


def _check_manifest(root, manifest, overwrite):
    """Write the manifest, or check that an existing data set used the same settings."""
    path = root / _MANIFEST
    if path.exists() and not overwrite:
        previous = json.loads(path.read_text())
        if previous != manifest:
            raise OutputExistsError(
                f"{root} holds a data set made with other settings (see {path}); "
                "use another directory or overwrite=True (--overwrite)"
            )
        return
    if not path.exists() and root.is_dir() and any(root.iterdir()) and not overwrite:
        raise OutputExistsError(f"{root} exists and is not a deepfocus data set; use an empty directory "
                                "or overwrite=True (--overwrite)")
    if overwrite:
        _remove_products(root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _cube_rows(cube, index, kind):
    """Per-cube tables (params, truth[, sdc2]) with the cube ``ID`` added."""
    params = cube.sources.copy()
    params.add_column(np.full(len(params), index, dtype=int), name="ID", index=0)
    truth = cube.truth_catalog()
    truth.add_column(np.full(len(truth), index, dtype=int), name="ID", index=0)
    tables = {"params": params, "truth": truth}
    if kind == "ska":
        sdc2 = cube.sdc2_catalog()
        sdc2.add_column(np.full(len(sdc2), index, dtype=int), name="ID", index=0)
        tables["sdc2"] = sdc2
    return tables


def _make_cube(simulate, config, split_dir, index, seed, kind, overwrite, workers):
    rows_dir = split_dir / ".rows"
    marker = rows_dir / f"{index}_truth.ecsv"
    products = [split_dir / f"{PRODUCTS[name]}_{index}.fits" for name in ("dirty", "clean", "psf", "sky")]
    if marker.exists() and all(path.exists() for path in products) and not overwrite:
        return
    cube = simulate(config, seed=seed, workers=workers)
    cube.write(split_dir, index, overwrite=True)
    rows_dir.mkdir(exist_ok=True)
    tables = _cube_rows(cube, index, kind)
    for name in sorted(tables, key=lambda key: key == "truth"):  # truth last: it marks completion
        _write_table_atomic(tables[name], rows_dir / f"{index}_{name}.ecsv", "ascii.ecsv")


def _empty_table(name, kind):
    """Table with the columns of a split's table and no rows (for a split of 0 cubes)."""
    if name == "truth":
        table = empty_catalog()
    elif name == "sdc2":
        from deepfocus_radio.simulation.ska import SDC2_COLUMNS

        table = Table(names=SDC2_COLUMNS, dtype=[int] + [float] * (len(SDC2_COLUMNS) - 1))
    else:
        from deepfocus_radio.simulation import alma, ska

        columns = (ska if kind == "ska" else alma).SOURCE_COLUMNS
        table = Table(names=columns, dtype=alma.column_dtypes(columns))
    table.add_column(np.zeros(0, dtype=int), name="ID", index=0)
    return table


def _finish_split(split_dir, prefix, count, kind):
    """Concatenate the per-cube rows into the split's tables."""
    rows_dir = split_dir / ".rows"
    names = ["params", "truth"] + (["sdc2"] if kind == "ska" else [])
    for name in names:
        parts = [Table.read(rows_dir / f"{index}_{name}.ecsv", format="ascii.ecsv") for index in range(count)]
        table = vstack(parts, metadata_conflicts="silent") if parts else _empty_table(name, kind)
        table.meta.clear()
        table.meta["origin"] = f"deepfocus_radio simulate ({kind})"
        if name == "truth":
            table["id"] = np.arange(1, len(table) + 1)
            _write_table_atomic(table, split_dir / "truth.ecsv", "ascii.ecsv")
        elif name == "sdc2":
            table["id"] = np.arange(1, len(table) + 1)
            _write_table_atomic(table, split_dir / "sdc2_truth.csv", "ascii.csv")
        else:
            _write_table_atomic(table, split_dir / f"{prefix}_params.csv", "ascii.csv")


def simulate_dataset(root, *, n_train, n_valid, n_test, kind="alma", config=None, seed=0, overwrite=False,
                     progress=True, workers=None):
    """Simulate a Train/Validation/Test data set of cubes with their truth tables.

    Parameters
    ----------
    root : str or path-like
        Output directory (created).
    n_train, n_valid, n_test : int
        Number of cubes in each split (0 allowed).
    kind : {"alma", "ska"}
        Simulator.
    config : AlmaConfig, SkaConfig or mapping, optional
        Settings of the simulator (defaults if None).
    seed : int, optional
        Data-set seed; cube ``i`` of a split gets :func:`cube_seed` ``(seed, split, i)``.
    overwrite : bool, optional
        Re-make every cube and replace existing files; otherwise finished cubes of a data
        set made with the same settings are kept (resume).
    progress : bool, optional
        Show a progress bar.
    workers : int, optional
        FFT threads per cube.

    Returns
    -------
    pathlib.Path
        ``root``.

    Raises
    ------
    ConfigError
        For an unknown ``kind``, invalid settings or negative counts.
    OutputExistsError
        When ``root`` holds other files or a data set made with other settings and
        ``overwrite`` is False.
    """
    simulate, config_class = _simulators(kind)
    config = as_config(config, config_class)
    counts = {"n_train": n_train, "n_valid": n_valid, "n_test": n_test}
    for name, value in counts.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    root = pathlib.Path(root)
    manifest = {"kind": kind, "seed": int(seed), "config": config.to_dict(),
                **{name: int(value) for name, value in counts.items()}}
    _check_manifest(root, manifest, overwrite)
    total = sum(counts.values())
    with tqdm(total=total, desc=f"simulate {kind}", unit="cube", disable=not progress) as bar:
        for (directory, prefix, key), count in zip(SPLITS, counts.values()):
            split_dir = root / directory
            split_dir.mkdir(exist_ok=True)
            for index in range(count):
                _make_cube(simulate, config, split_dir, index, cube_seed(seed, key, index), kind, overwrite,
                           workers)
                bar.update(1)
            _finish_split(split_dir, prefix, count, kind)
    return root
