"""Lazy training data sets over the DESIGN.md layout (Train/Validation/Test folders).

Cubes are opened with astropy's memory map and only the crop or cutout a sample needs is
read, so data sets larger than memory work. Normalization follows the contract shared
with the inference engine: by default (``channel_noise``) the dirty input and the clean
target are both divided by the per-channel robust noise of the *dirty* cube
(:func:`deepfocus_radio.noise.channel_noise`), never per tile; a network output times
that noise is a clean cube in Jy/beam.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from astropy.io import fits
from astropy.table import Table

from deepfocus_radio.exceptions import ConfigError, InputDataError
from deepfocus_radio.noise import channel_noise
from deepfocus_radio.training.augment import draw_transform, transform_array, transform_parameters
from deepfocus_radio.training.config import COLUMN_ALIASES

__all__ = [
    "SPLITS",
    "CubeRecord",
    "find_cubes",
    "read_params",
    "open_cube_array",
    "NoiseCache",
    "DeconvolverDataset",
    "SourceDataset",
]

#: Folder names of the three splits.
SPLITS = ("Train", "Validation", "Test")
_CUBE_NAME = re.compile(r"^(?P<kind>dirty|clean|tclean|psf)_cube_(?P<id>.+)\.fits$")


@dataclass
class CubeRecord:
    """Files of one cube ID in a split folder.

    Attributes
    ----------
    cube_id : str
        The trailing ``<ID>`` of the file names.
    dirty, clean, tclean, psf : `~pathlib.Path` or None
        Paths of ``dirty_cube_<ID>.fits`` and its companions, when present.
    """

    cube_id: str
    dirty: Path | None = None
    clean: Path | None = None
    tclean: Path | None = None
    psf: Path | None = None
    shape: tuple = field(default=())


def _sort_key(cube_id):
    return (0, int(cube_id), cube_id) if cube_id.isdigit() else (1, 0, cube_id)


def find_cubes(split_dir, *, require_clean=True):
    """List the dirty/clean cube pairs of a split folder, paired by their trailing ID.

    Parameters
    ----------
    split_dir : str or `~pathlib.Path`
        Folder such as ``<root>/Train``.
    require_clean : bool, optional
        Keep only IDs with both a dirty and a clean cube.

    Returns
    -------
    list of CubeRecord
        Sorted by ID (numerically when IDs are integers); ``shape`` holds the dirty cube's
        (chan, y, x) shape read from its header.
    """
    records = {}
    for path in Path(split_dir).iterdir():
        match = _CUBE_NAME.match(path.name)
        if match:
            record = records.setdefault(match["id"], CubeRecord(match["id"]))
            setattr(record, match["kind"], path)
    kept = [r for r in records.values() if r.dirty and (r.clean or not require_clean)]
    for record in kept:
        record.shape = _cube_shape(record.dirty)
    return sorted(kept, key=lambda r: _sort_key(r.cube_id))


def _cube_shape(path):
    header = fits.getheader(path)
    shape = tuple(header[f"NAXIS{i}"] for i in range(header["NAXIS"], 0, -1))
    return _squeeze_shape(shape, path)


def _squeeze_shape(shape, path):
    shape = tuple(shape)
    while len(shape) > 3 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) == 2:
        shape = (1,) + shape
    if len(shape) != 3:
        raise InputDataError(f"{path}: expected a 2D, 3D or 4D cube with one Stokes plane, "
                             f"got shape {shape}")
    return shape


def open_cube_array(path):
    """Open a FITS cube as a lazily read (chan, y, x) array.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        FITS file with the data in the primary HDU; a degenerate Stokes axis is dropped.

    Returns
    -------
    ndarray
        Memory-mapped array (read on access), shape (chan, y, x).
    """
    data = fits.getdata(path, memmap=True)
    return data.reshape(_squeeze_shape(data.shape, path))


def read_params(split_dir, *, required=()):
    """Read the ``*_params.csv`` of a split, with ``fwhm_x``/``fwhm_y`` renamed.

    Parameters
    ----------
    split_dir : str or `~pathlib.Path`
        Split folder.
    required : sequence of str, optional
        Columns that must be present (``ID``, ``x``, ``y``, ``z`` always are).

    Returns
    -------
    `~astropy.table.Table`
        One row per source; ``ID`` as strings.

    Raises
    ------
    InputDataError
        No params file, several of them, or a required column missing.
    """
    split_dir = Path(split_dir)
    candidates = sorted(split_dir.glob("*_params.csv"))
    if len(candidates) != 1:
        raise InputDataError(f"{split_dir}: expected one '*_params.csv' file, found "
                             f"{len(candidates)}; the data layout is described in DESIGN.md")
    table = Table.read(candidates[0], format="ascii.csv")
    for alias, name in COLUMN_ALIASES.items():
        if alias in table.colnames and name not in table.colnames:
            table.rename_column(alias, name)
    missing = [c for c in ("ID", "x", "y", "z", *required) if c not in table.colnames]
    if missing:
        raise InputDataError(f"{candidates[0]} lacks the column(s) {', '.join(missing)} "
                             f"(columns present: {', '.join(table.colnames)})")
    table["ID"] = [str(v) for v in table["ID"]]
    return table


class NoiseCache:
    """Per-cube normalization factors, computed once per dirty cube.

    With ``channel_noise``, channels whose noise is zero or undefined (blank or constant)
    get 1, as in the inference engine (:func:`deepfocus_radio.inference.predict_tiled`).

    Parameters
    ----------
    normalization : {'channel_noise', 'cube_noise', 'fixed', 'none'}
        See the module docstring; ``fixed`` divides by ``scale``.
    scale : float, optional
        Jy/beam, used by ``fixed``.
    """

    def __init__(self, normalization, *, scale=1.0):
        self.normalization = normalization
        self.scale = float(scale)
        self._cache = {}

    def factors(self, record):
        """Per-channel divisor of a cube (Jy/beam), shape (nchan,)."""
        if record.cube_id not in self._cache:
            self._cache[record.cube_id] = self._compute(record)
        return self._cache[record.cube_id]

    def _compute(self, record):
        nchan = record.shape[0]
        if self.normalization == "none":
            return np.ones(nchan, dtype=np.float32)
        if self.normalization == "fixed":
            return np.full(nchan, self.scale, dtype=np.float32)
        noise = channel_noise(open_cube_array(record.dirty))
        good = np.isfinite(noise) & (noise > 0)
        if not good.any():
            raise InputDataError(f"{record.dirty}: the noise is zero or undefined in every "
                                 "channel; use data.normalization 'fixed' or 'none'")
        if self.normalization == "cube_noise":
            return np.full(nchan, np.median(noise[good]), dtype=np.float32)
        # Same rule as the inference engine: blank or constant channels are divided by 1.
        noise = np.where(good, noise, 1.0)
        return noise.astype(np.float32)


def _read_box(array, start, size):
    """Read array[start:start+size] as float32, with zeros outside the array and for NaNs."""
    out = np.zeros(size, dtype=np.float32)
    src, dst = [], []
    for s, n, dim in zip(start, size, array.shape):
        lo, hi = max(s, 0), min(s + n, dim)
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - s, hi - s))
    out[tuple(dst)] = array[tuple(src)]
    # Blanked (NaN) pixels are fed as 0, as the inference engine does.
    return np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)


class _BaseDataset(torch.utils.data.Dataset):
    def __init__(self, records, *, noise, augment, flip_spectral, seed):
        if not records:
            raise ConfigError("data set is empty: no dirty/clean cube pairs were found")
        self.records = list(records)
        self.noise = noise
        self.augment = augment
        self.flip_spectral = flip_spectral
        self.seed = int(seed)
        self.epoch = 0
        self._arrays = {}

    def set_epoch(self, epoch):
        """Select the epoch whose random crops and transforms are drawn (reproducible)."""
        self.epoch = int(epoch)

    def _rng(self, index):
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def _array(self, path):
        key = str(path)
        if key not in self._arrays:
            self._arrays[key] = open_cube_array(path)
        return self._arrays[key]

    def _transform(self, rng, square):
        if not self.augment:
            return draw_transform(rng, flips=False, rotations=False)
        return draw_transform(rng, rotations=square, flip_spectral=self.flip_spectral)

    def __getstate__(self):
        # Memory maps are reopened in each DataLoader worker rather than pickled.
        state = dict(self.__dict__)
        state["_arrays"] = {}
        return state


class DeconvolverDataset(_BaseDataset):
    """Random (dirty, clean) crops of noise-normalized cube pairs.

    Parameters
    ----------
    records : list of CubeRecord
        Cube pairs (from :func:`find_cubes`).
    crop_size : sequence of int
        ``(chan, y, x)`` for 3D networks or ``(y, x)`` for 2D ones (one channel per sample).
    samples_per_cube : int, optional
        Crops drawn from each cube per epoch (the data set length is
        ``len(records) * samples_per_cube``).
    noise : NoiseCache
        Normalization factors.
    augment : bool, optional
        Random flips (and 90-degree rotations for square crops).
    flip_spectral : bool, optional
        Also reverse the channel axis at random.
    seed : int, optional
        Seed of the crops and transforms; sample ``i`` of epoch ``e`` is drawn from
        ``numpy.random.default_rng([seed, e, i])``, so resuming training is exact.

    Notes
    -----
    Items are ``(dirty, clean)`` float32 tensors of shape ``(1, *crop_size)``.
    """

    def __init__(self, records, *, crop_size, noise, samples_per_cube=1, augment=False,
                 flip_spectral=False, seed=0):
        super().__init__(records, noise=noise, augment=augment, flip_spectral=flip_spectral,
                         seed=seed)
        self.crop_size = tuple(int(n) for n in crop_size)
        self.samples_per_cube = int(samples_per_cube)
        for record in self.records:
            if any(c > s for c, s in zip(self.crop_size[::-1], record.shape[::-1])):
                raise ConfigError(f"data.crop_size {list(self.crop_size)} is larger than cube "
                                  f"{record.dirty.name} of shape {list(record.shape)}")

    def __len__(self):
        return len(self.records) * self.samples_per_cube

    def __getitem__(self, index):
        record = self.records[index // self.samples_per_cube]
        rng = self._rng(index)
        box = self.crop_size if len(self.crop_size) == 3 else (1,) + self.crop_size
        start = [int(rng.integers(0, dim - size + 1)) for dim, size in zip(record.shape, box)]
        scale = self.noise.factors(record)[start[0]:start[0] + box[0], None, None]
        dirty = _read_box(self._array(record.dirty), start, box) / scale
        clean = _read_box(self._array(record.clean), start, box) / scale
        if len(self.crop_size) == 2:
            dirty, clean = dirty[0], clean[0]
        transform = self._transform(rng, square=box[-1] == box[-2])
        dirty, clean = transform_array(dirty, transform), transform_array(clean, transform)
        return torch.from_numpy(dirty[None]), torch.from_numpy(clean[None])


class SourceDataset(_BaseDataset):
    """Cutouts around the sources of a params CSV, for regressors and classifiers.

    Parameters
    ----------
    records : list of CubeRecord
        Cubes of the split.
    table : `~astropy.table.Table`
        Params table (from :func:`read_params`); rows whose ``ID`` has no cube raise.
    cutout_size : sequence of int
        ``(y, x)``: 2D stamps summed over the line channels ``z - w .. z + w`` (moment 0 in
        units of the channel noise); ``(chan, y, x)``: 3D cutouts centred on the source.
    noise : NoiseCache
        Normalization factors.
    targets : sequence of str, optional
        Regressor targets (params columns). Positions ``x``, ``y``, ``z`` are given in the
        cutout's pixel frame; ``pa`` follows flips and rotations.
    class_column : str, optional
        Classifier label column; used when ``classes`` is given.
    classes : sequence of str, optional
        Class names in output order (classifier).
    line_width : int or 'auto', optional
        ``w`` above; ``auto`` uses ``ceil(fwhm_z)`` when that column exists, else 2.
    input_kind : {'dirty', 'clean'}, optional
        Cube used as the network input.
    augment, flip_spectral, seed
        As for :class:`DeconvolverDataset`.

    Notes
    -----
    Items are ``(cutout, target)``: a float32 tensor ``(1, *cutout_size)`` and either the
    raw target values (float32, shape ``(len(targets),)``; scale them with a
    :class:`~deepfocus_radio.training.scaling.TargetScaler` via ``target_transform``) or a
    class index (int64 scalar).
    """

    def __init__(self, records, table, *, cutout_size, noise, targets=(), class_column="class",
                 classes=None, line_width="auto", input_kind="dirty", augment=False,
                 flip_spectral=False, seed=0, target_transform=None):
        super().__init__(records, noise=noise, augment=augment, flip_spectral=flip_spectral,
                         seed=seed)
        self.by_id = {r.cube_id: r for r in self.records}
        unknown = sorted(set(table["ID"]) - set(self.by_id))
        if unknown:
            raise InputDataError(f"params rows refer to cube IDs without a cube file: "
                                 f"{', '.join(unknown[:5])}")
        self.table = table[[i for i, v in enumerate(table["ID"]) if v in self.by_id]]
        if len(self.table) == 0:
            raise ConfigError("data set is empty: the params CSV lists no source")
        self.cutout_size = tuple(int(n) for n in cutout_size)
        self.targets = list(targets)
        self.class_column = class_column
        self.classes = None if classes is None else [str(c) for c in classes]
        self.line_width = line_width
        self.input_kind = input_kind
        self.target_transform = target_transform

    def __len__(self):
        return len(self.table)

    def cutout_origin(self, index):
        """(chan, y, x) pixel of the cube at the cutout's (0, 0, 0); chan is the first channel
        summed for 2D stamps."""
        row = self.table[index]
        centre = [int(np.round(row[c])) for c in ("z", "y", "x")]
        box = self._box(row)
        return tuple(c - n // 2 for c, n in zip(centre, box))

    def _box(self, row):
        if len(self.cutout_size) == 3:
            return self.cutout_size
        width = self.line_width
        if width == "auto":
            width = int(np.ceil(row["fwhm_z"])) if "fwhm_z" in row.colnames else 2
        return (2 * int(width) + 1,) + self.cutout_size

    def raw_parameters(self, index):
        """Source parameters of row ``index`` with positions in the cutout frame."""
        row = self.table[index]
        origin = self.cutout_origin(index)
        params = {c: float(row[c]) for c in self.targets if c not in ("x", "y", "z")}
        params.update({c: float(row[c]) - o for c, o in zip(("z", "y", "x"), origin)})
        if len(self.cutout_size) == 2:
            params.pop("z")
        return params

    def __getitem__(self, index):
        row = self.table[index]
        record = self.by_id[row["ID"]]
        path = record.dirty if self.input_kind == "dirty" else record.clean
        origin, box = self.cutout_origin(index), self._box(row)
        factors = self.noise.factors(record)
        lo, hi = max(origin[0], 0), min(origin[0] + box[0], record.shape[0])
        scale = np.ones(box[0], dtype=np.float32)
        scale[lo - origin[0]:hi - origin[0]] = factors[lo:hi]
        cutout = _read_box(self._array(path), origin, box) / scale[:, None, None]
        if len(self.cutout_size) == 2:
            cutout = cutout.sum(axis=0)
        rng = self._rng(index)
        transform = self._transform(rng, square=box[-1] == box[-2])
        cutout = transform_array(cutout, transform)
        item = torch.from_numpy(cutout[None])
        if self.classes is not None:
            label = self.classes.index(str(row[self.class_column]))
            return item, torch.tensor(label, dtype=torch.int64)
        params = transform_parameters(self.raw_parameters(index), transform, cutout.shape)
        values = np.array([params[c] for c in self.targets], dtype=np.float32)
        if self.target_transform is not None:
            values = self.target_transform(values).astype(np.float32)
        return item, torch.from_numpy(values)
