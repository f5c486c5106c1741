"""Classical baselines that our networks are compared against (CLEAN, moment-0 finders)."""

from deepfocus_radio.baselines.clean import hogbom_clean, restoring_kernel

__all__ = ["hogbom_clean", "restoring_kernel"]
