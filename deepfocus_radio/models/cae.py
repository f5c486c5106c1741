"""Convolutional autoencoder (CAE) deconvolver.

The encoder downsamples with strided convolutions and the decoder upsamples with
transposed convolutions, as the convolutional autoencoders of image restoration
(e.g. RED-Net, Mao et al. 2016). Skip connections, when enabled, are added (not
concatenated) to the decoder features. Fully convolutional: any input size.
"""

from deepfocus_radio.models.unet import EncoderDecoder

__all__ = ["ConvAutoencoder"]


class ConvAutoencoder(EncoderDecoder):
    """Convolutional autoencoder: strided-convolution encoder, additive skips.

    Parameters are those of :class:`~deepfocus_radio.models.unet.EncoderDecoder` except
    ``downsample`` and ``merge``.
    """

    def __init__(self, **options):
        super().__init__(downsample="stride", merge="add", **options)
