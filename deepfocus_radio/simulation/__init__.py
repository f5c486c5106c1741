"""Simulated ALMA-like and SKA-like spectral cubes, with truth, for training and tests.

The public entry points are :func:`simulate_alma_cube`, :func:`simulate_ska_cube`
(one cube, a :class:`SimulatedCube`) and :func:`simulate_dataset` (a Train/Validation/
Test data set on disk, in the layout of DESIGN.md). Settings live in :class:`AlmaConfig`
and :class:`SkaConfig`.

The model, in short:

* **Array and uv coverage** (:mod:`.array`): antenna positions in the local tangent
  plane (CASA ``x y z diam pad`` files, or the built-in 43 x 12 m ALMA-like and
  64 x 15 m SKA-MID-like layouts), Earth-rotation tracks for the site latitude, source
  declination and hour angles; u, v in wavelengths scale with each channel's frequency.
* **Imaging** (:mod:`.imaging`, :mod:`.observe`): nearest-cell gridding on the image's uv
  grid with natural, uniform or Briggs weights; per-channel PSF (peak 1); dirty cube =
  sky convolved with it on a padded grid; restoring beam = Gaussian fit to the main lobe
  of the lowest-frequency PSF; clean cube = sky convolved with that peak-1 beam.
* **Noise**: complex Gaussian visibility noise gridded with the same weights and imaged
  the same way, then scaled so that each channel's image-plane rms equals the drawn
  level exactly (``noise_rms``).
* **Sky** (:mod:`.sky`, :mod:`.hi`): ALMA -- elliptical Gaussians (pixel-integrated)
  times Gaussian lines (channel-integrated), optional continuum; SKA -- inclined rotating
  exponential HI discs with double-horned profiles. Each source is scaled to a target
  SNR; ``snr`` and ``peak`` are then measured on the noise-free dirty and clean cubes
  that each source makes alone (a blended source keeps its own, not its neighbour's).

Neglected: w-term, time and bandwidth smearing, calibration errors, and (for ALMA) the
7 m / total-power arrays, so the largest scales are missing as in a 12 m-only image.
"""

from deepfocus_radio.simulation.alma import simulate_alma_cube
from deepfocus_radio.simulation.config import AlmaConfig, SkaConfig
from deepfocus_radio.simulation.cube import SimulatedCube
from deepfocus_radio.simulation.dataset import simulate_dataset
from deepfocus_radio.simulation.ska import simulate_ska_cube

__all__ = ["AlmaConfig", "SkaConfig", "SimulatedCube", "simulate_alma_cube", "simulate_dataset", "simulate_ska_cube"]
