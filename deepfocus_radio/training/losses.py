"""Loss functions: L1, MSE, Huber, SSIM (2D and 3D), cross-entropy, and weighted sums."""

import torch
import torch.nn.functional as F
from torch import nn

from deepfocus_radio.exceptions import ConfigError

__all__ = ["ssim", "SSIMLoss", "WeightedLoss", "build_loss"]


def _gaussian_window(size, sigma, spatial_dims, device, dtype):
    coords = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    kernel = torch.exp(-0.5 * (coords / sigma) ** 2)
    kernel = kernel / kernel.sum()
    shape = [1, 1] + [1] * spatial_dims
    kernels = []
    for axis in range(spatial_dims):
        view = list(shape)
        view[2 + axis] = size
        kernels.append(kernel.reshape(view))
    return kernels


def _blur(x, kernels):
    conv = F.conv2d if x.ndim == 4 else F.conv3d
    channels = x.shape[1]
    for kernel in kernels:
        weight = kernel.expand(channels, *kernel.shape[1:])
        x = conv(x, weight, groups=channels)
    return x


def ssim(prediction, target, *, window=7, sigma=1.5, data_range=None):
    """Structural similarity of 2D or 3D batches (Gaussian window, Wang et al. 2004).

    Parameters
    ----------
    prediction, target : `torch.Tensor`, shape (batch, channel, y, x) or (batch, channel, z, y, x)
        Images or cubes, same unit.
    window : int, optional
        Window size in pixels (odd); shrunk to the smallest axis if larger.
    sigma : float, optional
        Gaussian window width, pixels.
    data_range : float or `torch.Tensor`, optional
        Dynamic range ``L`` of the constants ``(0.01 L)^2``, ``(0.03 L)^2``; default: the
        target's max - min per sample (not differentiated).

    Returns
    -------
    `torch.Tensor`
        Mean SSIM (scalar), 1 for identical inputs.
    """
    if prediction.ndim not in (4, 5) or prediction.shape != target.shape:
        raise ValueError(f"ssim needs two (batch, channel, *spatial) tensors of the same 2D or "
                         f"3D shape, got {tuple(prediction.shape)} and {tuple(target.shape)}")
    spatial_dims = prediction.ndim - 2
    window = min(window, *prediction.shape[2:])
    window -= 1 - window % 2
    if data_range is None:
        flat = target.detach().flatten(1)
        data_range = (flat.max(dim=1).values - flat.min(dim=1).values).clamp_min(1e-8)
        data_range = data_range.reshape(-1, *[1] * (prediction.ndim - 1))
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    kernels = _gaussian_window(window, sigma, spatial_dims, prediction.device, prediction.dtype)
    mu_p, mu_t = _blur(prediction, kernels), _blur(target, kernels)
    var_p = _blur(prediction * prediction, kernels) - mu_p**2
    var_t = _blur(target * target, kernels) - mu_t**2
    cov = _blur(prediction * target, kernels) - mu_p * mu_t
    numerator = (2 * mu_p * mu_t + c1) * (2 * cov + c2)
    denominator = (mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2)
    return (numerator / denominator).mean()


class SSIMLoss(nn.Module):
    """``1 - SSIM`` for 2D or 3D batches.

    Parameters
    ----------
    window : int, optional
        Gaussian window size, pixels.
    """

    def __init__(self, *, window=7):
        super().__init__()
        self.window = int(window)

    def forward(self, prediction, target):
        """Loss of a batch (scalar tensor)."""
        return 1.0 - ssim(prediction.float(), target.float(), window=self.window)


class WeightedLoss(nn.Module):
    """Weighted sum of named loss terms.

    Parameters
    ----------
    terms : Mapping of str to (nn.Module, float)
        Loss module and weight of each term.

    Notes
    -----
    ``forward`` returns the total; :attr:`last_terms` holds the value of each term of the
    last call (floats), for logging.
    """

    def __init__(self, terms):
        super().__init__()
        self.losses = nn.ModuleDict({name: module for name, (module, _) in terms.items()})
        self.weights = {name: float(weight) for name, (_, weight) in terms.items()}
        self.last_terms = {}

    def forward(self, prediction, target):
        """Weighted total (scalar tensor)."""
        total = 0.0
        self.last_terms = {}
        for name, module in self.losses.items():
            value = module(prediction, target)
            self.last_terms[name] = float(value.detach())
            total = total + self.weights[name] * value
        return total


def build_loss(loss_config):
    """Build the training loss from the ``loss`` configuration section.

    Parameters
    ----------
    loss_config : Mapping
        ``terms`` (name -> weight among ``l1``, ``mse``, ``huber``, ``ssim``, ``ce``),
        ``huber_delta`` (in normalized units) and ``ssim_window`` (pixels).

    Returns
    -------
    WeightedLoss

    Raises
    ------
    ConfigError
        Unknown loss name.
    """
    factories = {
        "l1": lambda: nn.L1Loss(),
        "mse": lambda: nn.MSELoss(),
        "huber": lambda: nn.HuberLoss(delta=float(loss_config.get("huber_delta", 1.0))),
        "ssim": lambda: SSIMLoss(window=int(loss_config.get("ssim_window", 7))),
        "ce": lambda: nn.CrossEntropyLoss(),
    }
    terms = {}
    for name, weight in loss_config["terms"].items():
        if name not in factories:
            raise ConfigError(f"configuration key 'loss.terms.{name}' is not a known loss; "
                              f"known: {', '.join(factories)}")
        terms[name] = (factories[name](), weight)
    return WeightedLoss(terms)
