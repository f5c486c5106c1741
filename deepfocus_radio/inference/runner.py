"""Running a network on batches of tiles, with the model built once per process.

A :class:`ModelSpec` is the small picklable description of a network that travels in the
dask graph (a single graph key, so dask.distributed ships it once per worker, never once
per task): its digest, and either its configuration + weights (models of ``build_model``)
or the pickled module (any other ``nn.Module``). Each process keeps the networks it has
built in a cache keyed by (digest, device), so a worker builds each model once.
"""

import copy
import hashlib
import io
import threading

import numpy as np

from deepfocus_radio.exceptions import ConfigError, ModelMismatchError

__all__ = ["ModelSpec", "resolve_device", "model_geometry", "run_tiles", "clear_model_cache",
           "build_count"]

_CACHE = {}
_CACHE_LOCK = threading.Lock()
_BUILD_COUNT = [0]  # networks built in this process (read by tests through build_count)


def resolve_device(device=None):
    """A torch device: ``device`` checked, else CUDA when available, else CPU.

    Raises
    ------
    ConfigError
        If ``device`` is not a valid torch device, or CUDA is asked for and absent.
    """
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device={device!r} is not a torch device; use 'cpu' or 'cuda'") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' was asked for but CUDA is not available; use 'cpu'")
    return device


def _state_digest(module):
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        array = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{array.dtype}|{tuple(array.shape)}|".encode())
        digest.update(array.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def model_geometry(module):
    """``(spatial_dims, in_channels, out_channels)`` of a network.

    Read from ``module.config`` (models of ``build_model``), else from its first and
    last convolution layers.

    Raises
    ------
    ModelMismatchError
        If neither a config nor a convolution layer tells the geometry.
    """
    import torch

    config = getattr(module, "config", None)
    if isinstance(config, dict) and "spatial_dims" in config:
        if config.get("dmode", "deconvolver") != "deconvolver":
            raise ModelMismatchError(
                f"model has dmode={config['dmode']!r}; tiled inference needs a deconvolver "
                "(an image-to-image network)"
            )
        return int(config["spatial_dims"]), int(config["in_channels"]), int(config["out_channels"])
    convs = [m for m in module.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d,
                                                          torch.nn.ConvTranspose2d,
                                                          torch.nn.ConvTranspose3d))]
    if not convs:
        raise ModelMismatchError(
            f"cannot tell the dimensionality of {type(module).__name__}: it has no 'config' "
            "and no Conv2d/Conv3d layer; build it with deepfocus_radio.build_model"
        )
    dims = 3 if isinstance(convs[0], (torch.nn.Conv3d, torch.nn.ConvTranspose3d)) else 2
    return dims, convs[0].in_channels, convs[-1].out_channels


class ModelSpec:
    """Picklable description of a network for the workers (see the module docstring).

    Parameters
    ----------
    module : torch.nn.Module
        The network (not modified: workers and this process use copies).
    device : torch.device
        Where the workers run it.
    spatial_dims : int
        2 (tiles are fed plane by plane) or 3.
    threads : int, optional
        torch intra-op threads to set in each process when the model is built.
    amp : bool, optional
        Run under CUDA autocast (bfloat16); ignored on CPU.
    """

    def __init__(self, module, *, device, spatial_dims, threads=None, amp=False):
        self.spatial_dims = int(spatial_dims)
        self.name = str(getattr(module, "name", None) or type(module).__name__)
        self.key = getattr(module, "sha256", None) or _state_digest(module)
        self.device = str(device)
        self.threads = threads
        self.amp = bool(amp)
        self._module = module  # only in this process; dropped when pickled
        self._payload = None

    def _make_payload(self):
        config = getattr(self._module, "config", None)
        state = {k: v.detach().cpu().numpy() for k, v in self._module.state_dict().items()}
        if isinstance(config, dict) and "arch" in config:
            return ("config", dict(config), state)
        import cloudpickle

        buffer = io.BytesIO()
        cloudpickle.dump(copy.deepcopy(self._module).cpu(), buffer)
        return ("pickle", buffer.getvalue(), None)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_payload"] = self._payload or self._make_payload()
        state["_module"] = None
        return state

    def build(self):
        """The network on ``self.device`` in eval mode, from this process's cache."""
        # In the process that made the spec, the module object itself is part of the key
        # (two modules with equal weights may differ in code); elsewhere the digest is.
        local = None if self._module is None else id(self._module)
        cache_key = (self.key, self.device, self.amp, local)
        with _CACHE_LOCK:
            module = _CACHE.get(cache_key)
            if module is None:
                module = self._build_uncached()
                _CACHE[cache_key] = module
        return module

    def _build_uncached(self):
        import torch

        _BUILD_COUNT[0] += 1
        if self.threads:
            torch.set_num_threads(int(self.threads))
        if self._module is not None:
            module = copy.deepcopy(self._module)
        elif self._payload[0] == "config":
            from deepfocus_radio.models import build_model

            module = build_model(self._payload[1])
            module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                                    self._payload[2].items()})
        else:
            import cloudpickle

            module = cloudpickle.loads(self._payload[1])
        module = module.to(torch.device(self.device)).eval()
        if _channels_last(self.spatial_dims, self.device):
            module = module.to(memory_format=torch.channels_last_3d)
        return module


def _channels_last(spatial_dims, device):
    # 3D convolutions run about 2x faster on CPU in the channels-last layout (measured with
    # torch 2.13 on the shipped model; outputs agree to float rounding). Forward only:
    # training keeps its own layout choice.
    return spatial_dims == 3 and str(device).startswith("cpu")


def build_count():
    """Number of networks this process has built from specs (each is then cached)."""
    return _BUILD_COUNT[0]


def clear_model_cache():
    """Forget the networks built in this process (frees their memory)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def run_tiles(spec, tiles, batch_size):
    """Run the network on tiles, ``batch_size`` at a time.

    Parameters
    ----------
    spec : ModelSpec
        The network.
    tiles : ndarray, shape (ntiles, tc, ty, tx)
        Normalized, NaN-free inputs (float32); ``tc == 1`` for a 2D network.
    batch_size : int
        Tiles per forward pass.

    Returns
    -------
    ndarray, shape (ntiles, *tile)
        Network outputs, float32.

    Raises
    ------
    ModelMismatchError
        If the network's output does not have the tile's shape.
    """
    import torch

    module = spec.build()
    device = torch.device(spec.device)
    outputs = np.empty(tiles.shape, dtype=np.float32)
    autocast = spec.amp and device.type == "cuda"
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16,
                                                enabled=autocast):
        for start in range(0, len(tiles), batch_size):
            batch = torch.from_numpy(tiles[start : start + batch_size]).to(device)
            batch = batch[:, None] if spec.spatial_dims == 3 else batch  # (B, 1, ...) either way
            if _channels_last(spec.spatial_dims, device):
                batch = batch.contiguous(memory_format=torch.channels_last_3d)
            result = _forward(module, batch)
            result = result if spec.spatial_dims == 3 else result[:, :, None]
            outputs[start : start + batch_size] = result[:, 0].float().cpu().numpy()
    return outputs


def _forward(module, batch):
    try:
        result = module(batch)
    except RuntimeError as exc:
        raise ModelMismatchError(
            f"the model failed on a tile of shape {tuple(batch.shape[2:])}: {exc}. Choose a "
            "tile size the network accepts (e.g. multiples of 2**(stages-1) for a U-Net)"
        ) from exc
    if result.shape[2:] != batch.shape[2:] or result.shape[1] != 1:
        raise ModelMismatchError(
            f"the model maps a tile of shape {tuple(batch.shape[1:])} to "
            f"{tuple(result.shape[1:])}; tiled inference needs one output channel of the "
            "tile's shape. Choose a tile size the network accepts"
        )
    return result
