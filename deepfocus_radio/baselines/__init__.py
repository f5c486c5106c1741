"""Classical baselines that our networks are compared against (CLEAN, moment-0 finders)."""

from deepfocus_radio.baselines.clean import hogbom_clean, restoring_kernel
from deepfocus_radio.baselines.moment0 import moment0_catalog

__all__ = ["hogbom_clean", "moment0_catalog", "restoring_kernel"]
