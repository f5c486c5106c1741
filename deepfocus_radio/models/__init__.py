"""Networks for radio cubes: deconvolvers, regressors and classifiers in 2D and 3D.

Build a network from a configuration mapping with :func:`build_model`, from a named preset
with :func:`create_model`, or load a saved or shipped one with :func:`load_model`. One class
per architecture serves 2D images (y, x) and 3D cubes (chan, y, x), chosen by
``spatial_dims``.

Which ``arch`` supports which ``dmode`` (first value = default):

========  =====================  =================  ====================  =====================
arch      dmode                  block              skip_connections      norm
========  =====================  =================  ====================  =====================
cae       deconvolver            basic, bottleneck  False, True (add)     none, batch
unet      deconvolver            basic, bottleneck  True (concat), False  none, batch
resnet    regressor, classifier  basic, bottleneck  True, False (plain)   batch, instance, none
densenet  regressor, classifier  bottleneck, basic  True                  batch, instance, none
vgg       regressor, classifier  basic              False                 none, batch, instance
========  =====================  =================  ====================  =====================

Keys common to every arch: ``arch`` (required), ``dmode``, ``spatial_dims`` (2 | 3,
default 3), ``in_channels`` (default 1), ``out_channels`` (maps, regressed values or
classes; default 1, or 2 for classifiers), ``block``, ``skip_connections``, ``depths``,
``kernel_size`` (odd int, or one per axis), ``activation`` (relu, leaky_relu, elu, gelu,
silu), ``norm``, ``final_activation`` (none, relu, softplus, sigmoid, tanh; classifiers
output logits: ``none`` only), ``dropout``. Per arch:

- ``cae``, ``unet``: ``block_sizes`` (channels per level, default [8, 16, 32, 64]),
  ``depths`` (blocks per level, default 1 each), ``pool_channels`` (3D: also downsample
  the spectral axis; default True), ``pad_mode`` (reflect, replicate, constant), dropout at
  the coarsest level. Fully convolutional; any input size; output of the input's shape.
- ``resnet``: ``block_sizes`` (default [64, 128, 256, 512]), ``init_features`` (stem
  width, 64), ``stem`` (imagenet: 7-pixel stride-2 conv + max pool; small: one conv).
- ``densenet``: ``growth_rate`` (32), ``bn_size`` (4), ``compression`` (0.5),
  ``init_features`` (2 x growth_rate), ``stem``.
- ``vgg``: ``block_sizes`` (default [64, 128, 256, 512, 512]), ``head_features``
  ([4096, 4096]), ``pool_size`` (7 in 2D, 1 in 3D), dropout 0.5 in the head.

Presets (:func:`list_models`): resnet18, resnet34, resnet50, densenet121, vgg11, vgg16 (2D
ImageNet form by default, exact reference parameter counts), unet and cae (3D, 1 channel).
"""

from deepfocus_radio.models.builder import build_model, count_parameters, predict_proba
from deepfocus_radio.models.checkpoint import (
    load_model,
    model_provenance,
    save_model,
    save_pretrained,
)
from deepfocus_radio.models.config import (
    ARCHITECTURES,
    read_config_file,
    resolve_config,
    supported_combinations,
)
from deepfocus_radio.models.pretrained import (
    PretrainedInfo,
    default_weights_dir,
    get_pretrained_info,
    list_pretrained,
)
from deepfocus_radio.models.registry import create_model, get_preset, list_models, register_model

__all__ = [
    "ARCHITECTURES",
    "PretrainedInfo",
    "build_model",
    "count_parameters",
    "create_model",
    "default_weights_dir",
    "get_pretrained_info",
    "get_preset",
    "list_models",
    "list_pretrained",
    "load_model",
    "model_provenance",
    "predict_proba",
    "read_config_file",
    "register_model",
    "resolve_config",
    "save_model",
    "save_pretrained",
    "supported_combinations",
]
