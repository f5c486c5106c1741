"""Source detection, characterization, catalogues and scoring.

The pipeline on a dirty cube is :func:`find_sources`: noise of the dirty cube,
deconvolution, :func:`detect_sources` (multi-scale smooth+clip, deblending, reliability),
:func:`characterize_sources` (catalogue in the DESIGN.md schema). Catalogues are written
and read with :func:`write_catalog` / :func:`read_catalog` and compared with a truth
catalogue by :func:`score_catalog`; :func:`compare_reports` compares two finders source by
source.
"""

from deepfocus_radio.sources.catalog import (CATALOG_COLUMNS, CATALOG_FORMATS, ERROR_COLUMNS,
                                             empty_catalog, read_catalog, write_catalog)
from deepfocus_radio.sources.characterize import characterize_sources
from deepfocus_radio.sources.detection import Detections, detect_sources
from deepfocus_radio.sources.pipeline import find_sources
from deepfocus_radio.sources.regions_io import catalog_to_regions
from deepfocus_radio.sources.scoring import (ScoreReport, compare_reports, score_catalog,
                                            score_catalogs, split_catalogs, stack_catalogs)

__all__ = [
    "CATALOG_COLUMNS",
    "CATALOG_FORMATS",
    "ERROR_COLUMNS",
    "Detections",
    "ScoreReport",
    "catalog_to_regions",
    "characterize_sources",
    "compare_reports",
    "detect_sources",
    "empty_catalog",
    "find_sources",
    "read_catalog",
    "score_catalog",
    "score_catalogs",
    "split_catalogs",
    "stack_catalogs",
    "write_catalog",
]
