"""Score a source catalogue against a truth catalogue (DESIGN.md, "Scoring").

Matching is one-to-one and greedy, from the highest truth SNR down: a truth source takes
the closest unmatched found source that lies within ``max(beam FWHM, true fwhm_major)`` on
the sky and within ``max(2 channels, true line_fwhm)`` in frequency ("closest" in these
limits' units). Positions are compared in pixels and channels when both tables have
``x, y, z`` and the pixel scale is known, else on the sky (``ra, dec, freq``). When both
also have ``ra, dec``, the two pixel grids are compared first: if the distances between
nearby found and true sources differ in pixels and on the sky (a cut-out or a regridded
cube scored against the full cube's truth), a ``DeepFocusWarning`` says so and the sky is
used.

Reported: completeness (by truth SNR bin; also over the true sources that no brighter
true source blends within these limits), purity (by found SNR bin), F1, and for matched
sources the median, scatter (half the 16-84 percentile range) and fraction within
``tolerance`` of the relative errors of ``flux``, ``fwhm_major``, ``fwhm_minor`` and
``line_fwhm`` (true value > 0), the PA error modulo 180 deg for resolved sources (true
major axis >= ``resolved_factor`` beams; a resolved source measured as unresolved counts
as a 90 deg error; fraction within ``pa_tolerance``), the position error in beams
(fraction within 0.2 beam), and the fraction of fluxes within their ``flux_err``; overall
and per truth-SNR bin. Every fraction comes with its Wilson score interval at
``CONFIDENCE`` (one sigma; astropy's ``binom_conf_interval``): a test set of a few dozen
sources per bin leaves a completeness uncertain by several per cent.

:func:`compare_reports` compares two finders on the same truth source by source: per SNR
bin, the true sources that each finds and the other misses, with the exact McNemar test
(a two-sided binomial test on those discordant sources, from scipy), which asks whether
the difference is more than chance; and the same for the fluxes within ``tolerance`` of
the sources both find.

A test set's catalogues (one per cube) travel as one table: :func:`stack_catalogs` stacks
them with a ``cube`` column and keeps each cube's matching scales in ``meta['cubes']``;
:func:`split_catalogs` gives them back, ready for :func:`score_catalogs`.
"""

import json
from dataclasses import dataclass, field

import numpy as np
from astropy import units as u
from astropy.stats import binom_conf_interval
from astropy.table import QTable

from deepfocus_radio.exceptions import ConfigError
from deepfocus_radio.sources._matching import (
    _beam,
    _channel,
    _column,
    _meta,
    blended_truth,
    greedy_match,
    resolve_geometry,
)

__all__ = ["ScoreReport", "ParameterErrors", "score_catalog", "score_catalogs",
           "compare_reports", "fraction_interval", "stack_catalogs", "split_catalogs",
           "CONFIDENCE"]

RELATIVE_PARAMETERS = ("flux", "fwhm_major", "fwhm_minor", "line_fwhm")
#: Confidence level of the fractions' intervals (one sigma).
CONFIDENCE = 0.6827
#: The catalogue ``meta`` keys that matching reads (beam, pixel scale, channel width).
GEOMETRY_KEYS = ("beam_major_arcsec", "pixel_scale_arcsec", "channel_width_hz",
                 "channel_width_kms")


def fraction_interval(k, n, confidence=CONFIDENCE):
    """Wilson score interval of a fraction ``k / n``.

    Parameters
    ----------
    k, n : int
        Successes and trials.
    confidence : float, optional
        Confidence level.

    Returns
    -------
    tuple of float
        Lower and upper bound; NaN for ``n == 0``.
    """
    if n <= 0:
        return (float("nan"), float("nan"))
    low, high = binom_conf_interval(int(k), int(n), confidence_level=confidence,
                                    interval="wilson")
    return (float(max(low, 0.0)), float(min(high, 1.0)))


@dataclass
class ParameterErrors:
    """Summary of the errors of one parameter over matched sources.

    Attributes
    ----------
    n : int
        Number of sources the summary uses.
    median : float
        Median error (relative, or deg for PA, beams for position).
    scatter : float
        Half the 16-84 percentile range.
    fraction_within : float
        Fraction of sources within the tolerance.
    within_interval : tuple of float
        Wilson interval of ``fraction_within`` at ``CONFIDENCE``.
    """

    n: int = 0
    median: float = float("nan")
    scatter: float = float("nan")
    fraction_within: float = float("nan")
    within_interval: tuple = (float("nan"), float("nan"))

    @classmethod
    def from_errors(cls, errors, *, tolerance):
        """Summarize an array of errors (NaNs ignored)."""
        errors = np.asarray(errors, dtype=float)
        errors = errors[np.isfinite(errors)]
        if errors.size == 0:
            return cls()
        p16, p84 = np.percentile(errors, [16, 84])
        within = np.abs(errors) <= tolerance
        return cls(int(errors.size), float(np.median(errors)), float((p84 - p16) / 2),
                   float(np.mean(within)), fraction_interval(within.sum(), errors.size))


@dataclass
class ScoreReport:
    """Result of :func:`score_catalog`.

    Attributes
    ----------
    n_truth, n_found, n_matched : int
        Sources in each catalogue and matched pairs.
    completeness, purity, f1 : float
        ``n_matched / n_truth``, ``n_matched / n_found`` and their harmonic mean.
    n_separable, completeness_separable : int, float
        True sources that no brighter true source blends (see
        :func:`~deepfocus_radio.sources._matching.blended_truth`: within its matching
        limits on the sky and in frequency), and the fraction of them matched. Confused
        blends cap ``completeness`` below 1 whatever the finder; this one is not capped.
    snr_bins : tuple of float
        Bin edges in SNR.
    bins : list of dict
        Per bin: SNR range, counts, completeness (truth SNR; also over separable sources),
        purity (found SNR), their Wilson intervals (``completeness_interval``,
        ``purity_interval``) and the parameter errors of the matched sources whose truth
        SNR is in the bin.
    errors : dict of str -> ParameterErrors
        Overall parameter errors (keys ``flux``, ``fwhm_major``, ``fwhm_minor``,
        ``line_fwhm``, ``pa``, ``position``, ``flux_within_err``).
    matches : `~astropy.table.QTable`
        One row per pair: ``truth_index``, ``found_index`` (0-based rows),
        ``separation`` (beams), ``channel_offset`` (channels).
    mode : str
        ``'pixel'`` or ``'sky'``: the coordinates used for matching.
    completeness_interval, purity_interval : tuple of float
        Wilson intervals of ``completeness`` and ``purity`` at ``CONFIDENCE``.
    truth_snr : ndarray
        SNR of every true source (pooled over the pairs, in order).
    truth_row : ndarray
        Each pair's true source as a row of ``truth_snr`` (the order of ``matches``).
    match_errors : dict of str -> ndarray
        Each pair's errors (the order of ``matches``; keys of ``errors``).
    tolerances : dict
        ``tolerance``, ``pa_tolerance`` and ``position_tolerance`` of the report.
    """

    n_truth: int
    n_found: int
    n_matched: int
    completeness: float
    purity: float
    f1: float
    snr_bins: tuple
    bins: list
    errors: dict
    matches: QTable = field(repr=False)
    mode: str = "pixel"
    n_separable: int = 0
    completeness_separable: float = float("nan")
    truth_snr: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    truth_row: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int), repr=False)
    match_errors: dict = field(default_factory=dict, repr=False)
    tolerances: dict = field(default_factory=dict, repr=False)

    @property
    def completeness_interval(self):
        """Wilson interval of ``completeness`` at ``CONFIDENCE``."""
        return fraction_interval(self.n_matched, self.n_truth)

    @property
    def purity_interval(self):
        """Wilson interval of ``purity`` at ``CONFIDENCE``."""
        return fraction_interval(self.n_matched, self.n_found)

    def to_dict(self):
        """Plain, JSON-serializable dictionary (NaN and infinity become None)."""
        def clean(value):
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [clean(v) for v in value]
            if isinstance(value, ParameterErrors):
                return clean(value.__dict__)
            if isinstance(value, (float, np.floating)):
                return float(value) if np.isfinite(value) else None
            if isinstance(value, np.integer):
                return int(value)
            return value

        return clean({
            "n_truth": self.n_truth, "n_found": self.n_found, "n_matched": self.n_matched,
            "completeness": self.completeness, "purity": self.purity, "f1": self.f1,
            "n_separable": self.n_separable,
            "completeness_separable": self.completeness_separable,
            "completeness_interval": self.completeness_interval,
            "purity_interval": self.purity_interval,
            "snr_bins": list(self.snr_bins), "mode": self.mode, "errors": self.errors,
            "bins": self.bins,
        })

    def to_json(self, path):
        """Write :meth:`to_dict` as JSON."""
        with open(path, "w") as handle:
            json.dump(self.to_dict(), handle, indent=2)

    def to_table(self):
        """One row per SNR bin plus a last row ``all``: counts, completeness, purity, errors,
        and the Wilson intervals of the fractions (``*_low``, ``*_high``).

        Returns
        -------
        `~astropy.table.QTable`
        """
        rows = self.bins + [self._overall_bin()]
        table = QTable()
        table["snr_bin"] = [b["label"] for b in rows]
        for key in ("n_truth", "n_detected", "completeness", "n_separable",
                    "completeness_separable", "n_found", "n_true", "purity"):
            table[key] = [b[key] for b in rows]
            if key in ("completeness", "purity"):
                table[f"{key}_low"] = [b[f"{key}_interval"][0] for b in rows]
                table[f"{key}_high"] = [b[f"{key}_interval"][1] for b in rows]
        for name in list(RELATIVE_PARAMETERS) + ["pa", "position"]:
            table[f"{name}_median"] = [b["errors"][name].median for b in rows]
            table[f"{name}_scatter"] = [b["errors"][name].scatter for b in rows]
            table[f"{name}_within"] = [b["errors"][name].fraction_within for b in rows]
            table[f"{name}_within_low"] = [b["errors"][name].within_interval[0] for b in rows]
            table[f"{name}_within_high"] = [b["errors"][name].within_interval[1] for b in rows]
        table["flux_within_err"] = [b["errors"]["flux_within_err"].fraction_within for b in rows]
        return table

    def _overall_bin(self):
        return {"label": "all", "n_truth": self.n_truth, "n_detected": self.n_matched,
                "completeness": self.completeness, "n_separable": self.n_separable,
                "completeness_separable": self.completeness_separable, "n_found": self.n_found,
                "n_true": self.n_matched, "purity": self.purity, "errors": self.errors,
                "completeness_interval": self.completeness_interval,
                "purity_interval": self.purity_interval}

    def plot(self, path):
        """Save completeness and purity against SNR as a PNG, with their Wilson intervals
        as error bars.

        Parameters
        ----------
        path : str or path-like
            Output image.
        """
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        labels = [b["label"] for b in self.bins]
        positions = np.arange(len(labels))
        fig, ax = plt.subplots(figsize=(6, 4))
        for key, style, label, shift in (("completeness", "o-", "completeness", -0.05),
                                         ("purity", "s--", "purity", 0.05)):
            values = np.array([b[key] for b in self.bins], dtype=float)
            bounds = np.array([b[f"{key}_interval"] for b in self.bins], dtype=float)
            bars = np.nan_to_num(np.abs(bounds.T - values), nan=0.0)  # empty bins: none
            ax.errorbar(positions + shift, values, yerr=bars, fmt=style, capsize=3,
                        label=f"{label} ({CONFIDENCE:.0%} interval)")
        ax.plot(positions, [b["completeness_separable"] for b in self.bins], "^:",
                label="completeness, separable sources")
        ax.set_xticks(positions, labels)
        ax.set_xlabel("SNR (truth for completeness, found for purity)")
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        ax.set_title(f"completeness {self.completeness:.2f}, purity {self.purity:.2f}, "
                     f"F1 {self.f1:.2f}")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)

    def __str__(self):
        lines = [f"matched {self.n_matched} of {self.n_truth} true sources with "
                 f"{self.n_found} found ({self.mode} coordinates)",
                 f"completeness {self.completeness:.3f} {_fmt_interval(self.completeness_interval)}"
                 f"  purity {self.purity:.3f} {_fmt_interval(self.purity_interval)}  "
                 f"F1 {self.f1:.3f}  completeness of separable sources "
                 f"{_fmt(self.completeness_separable)} ({self.n_separable} not blended)",
                 f"(in brackets: {CONFIDENCE:.0%} Wilson intervals)", "",
                 f"{'SNR':>10} {'n_true':>6} {'compl.':>7} {'n_found':>7} {'purity':>7} "
                 f"{'flux<10%':>8} {'pa<10d':>7}"]
        for b in self.bins + [self._overall_bin()]:
            lines.append(f"{b['label']:>10} {b['n_truth']:>6} {_fmt(b['completeness']):>7} "
                         f"{b['n_found']:>7} {_fmt(b['purity']):>7} "
                         f"{_fmt(b['errors']['flux'].fraction_within):>8} "
                         f"{_fmt(b['errors']['pa'].fraction_within):>7}")
        lines.append("")
        for name, err in self.errors.items():
            lines.append(f"{name:>16}: n={err.n:<4} median {_fmt(err.median)}  "
                         f"scatter {_fmt(err.scatter)}  within {_fmt(err.fraction_within)}")
        return "\n".join(lines)


def _fmt(value):
    return "-" if value is None or not np.isfinite(value) else f"{value:.3f}"


def _fmt_interval(interval):
    return f"[{_fmt(interval[0])}, {_fmt(interval[1])}]"


def score_catalog(found, truth, *, beam=None, pixel_scale=None, channel_width=None,
                  snr_bins=(0, 3, 5, 10, np.inf), tolerance=0.1, pa_tolerance=10.0,
                  position_tolerance=0.2, resolved_factor=1.5):
    """Compare a found catalogue with the truth.

    Parameters
    ----------
    found, truth : `~astropy.table.QTable` or path
        Catalogues in the DESIGN.md schema (paths are read with :func:`read_catalog`).
        ``truth`` needs ``snr``; both need ``x, y`` (and ``z``) or ``ra, dec`` (and
        ``freq``).
    beam : `radio_beam.Beam`, angular Quantity or float, optional
        Beam (float: FWHM in pixels). Default: the catalogues' ``meta``.
    pixel_scale : angular Quantity, optional
        Pixel side. Default: the catalogues' ``meta``.
    channel_width : Quantity, optional
        Channel width (Hz or km/s). Default: the catalogues' ``meta``.
    snr_bins : sequence of float, optional
        SNR bin edges.
    tolerance : float, optional
        Relative error counted as "within" for flux, sizes and line width (0.1 = 10%).
    pa_tolerance : float, optional
        PA error counted as "within", deg.
    position_tolerance : float, optional
        Position error counted as "within", beams.
    resolved_factor : float, optional
        A true source is resolved when its major axis is at least this many beams.

    Returns
    -------
    ScoreReport

    Raises
    ------
    ConfigError
        For fewer than two SNR bin edges, or missing beam or channel width.
    InputDataError
        When the catalogues share no coordinates.
    """
    edges = _check_bins(snr_bins)
    matched = _match_one(found, truth, dict(beam=beam, pixel_scale=pixel_scale,
                                             channel_width=channel_width), resolved_factor)
    return _report([matched], edges, dict(tolerance=tolerance, pa_tolerance=pa_tolerance,
                                          position_tolerance=position_tolerance))


def score_catalogs(pairs, *, snr_bins=(0, 3, 5, 10, np.inf), tolerance=0.1, pa_tolerance=10.0,
                   position_tolerance=0.2, resolved_factor=1.5):
    """Score many (found, truth) pairs, e.g. one per test cube, as one sample.

    Sources are matched within each pair (each with its own beam, pixel scale and channel
    width); counts and errors are then pooled over all pairs.

    Parameters
    ----------
    pairs : iterable of (found, truth) or (found, truth, geometry)
        Catalogues as in :func:`score_catalog`; ``geometry`` is an optional dict of its
        ``beam``, ``pixel_scale`` and ``channel_width`` arguments.
    snr_bins, tolerance, pa_tolerance, position_tolerance, resolved_factor : optional
        As in :func:`score_catalog`.

    Returns
    -------
    ScoreReport
        Pooled scores; ``matches`` holds a ``pair`` column (0-based index of the pair).

    Raises
    ------
    ConfigError
        For no pairs, or invalid SNR bins.
    """
    edges = _check_bins(snr_bins)
    matched = []
    for pair in pairs:
        found, truth, geometry = (tuple(pair) + ({},))[:3]
        matched.append(_match_one(found, truth, geometry or {}, resolved_factor))
    if not matched:
        raise ConfigError("score_catalogs needs at least one (found, truth) pair")
    return _report(matched, edges, dict(tolerance=tolerance, pa_tolerance=pa_tolerance,
                                        position_tolerance=position_tolerance))


def _check_bins(snr_bins):
    edges = np.asarray(snr_bins, dtype=float)
    if edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ConfigError(f"snr_bins={tuple(snr_bins)} must be at least two increasing edges")
    return edges


def _match_one(found, truth, geometry_args, resolved_factor):
    """Match one pair of catalogues; returns what the pooled summary needs."""
    from deepfocus_radio.sources.catalog import read_catalog

    found = found if isinstance(found, QTable) else read_catalog(found)
    truth = truth if isinstance(truth, QTable) else read_catalog(truth)
    geometry = resolve_geometry(found, truth, **geometry_args)
    t_idx, f_idx, sep, dz = greedy_match(found, truth, geometry)
    t_idx, f_idx = t_idx.astype(int), f_idx.astype(int)
    resolved = (np.nan_to_num(_column(truth, "fwhm_major", u.arcsec), nan=0.0)
                >= resolved_factor * (geometry.beam_arcsec or np.inf))
    return {"found": found, "truth": truth, "t_idx": t_idx, "f_idx": f_idx, "sep": sep,
            "dz": dz, "errors": _pair_errors(found, truth, t_idx, f_idx, sep, resolved),
            "mode": geometry.mode, "blended": blended_truth(truth, geometry)}


def _report(matched, edges, tolerances):
    """Pool matched pairs of one or more catalogue pairs into a ScoreReport."""
    errors = {key: np.concatenate([m["errors"][key] for m in matched])
              for key in matched[0]["errors"]}
    t_snr = np.concatenate([np.asarray(_column(m["truth"], "snr"), float) for m in matched])
    f_snr = np.concatenate([np.asarray(_column(m["found"], "snr"), float) for m in matched])
    t_off = np.cumsum([0] + [len(m["truth"]) for m in matched])
    f_off = np.cumsum([0] + [len(m["found"]) for m in matched])
    t_idx = np.concatenate([m["t_idx"] + t_off[i] for i, m in enumerate(matched)]).astype(int)
    f_idx = np.concatenate([m["f_idx"] + f_off[i] for i, m in enumerate(matched)]).astype(int)
    overall = _summaries(errors, np.ones(len(t_idx), dtype=bool), **tolerances)
    separable = ~np.concatenate([m["blended"] for m in matched]).astype(bool)
    bins = _bins(t_snr, f_snr, edges, t_idx, f_idx, errors, tolerances, separable)
    n_t, n_f, n_m = int(t_off[-1]), int(f_off[-1]), len(t_idx)
    n_sep = int(separable.sum())
    sep_detected = int(separable[t_idx].sum()) if len(t_idx) else 0
    completeness = n_m / n_t if n_t else float("nan")
    purity = n_m / n_f if n_f else float("nan")
    f1 = (2 * completeness * purity / (completeness + purity)
          if n_t and n_f and completeness + purity > 0 else 0.0 if n_t or n_f else float("nan"))
    columns = {"truth_index": np.concatenate([m["t_idx"] for m in matched]).astype(int),
               "found_index": np.concatenate([m["f_idx"] for m in matched]).astype(int),
               "separation": np.concatenate([np.asarray(m["sep"], float) for m in matched]),
               "channel_offset": np.concatenate([np.asarray(m["dz"], float) for m in matched])}
    if len(matched) > 1:
        columns["pair"] = np.concatenate([np.full(len(m["t_idx"]), i) for i, m in enumerate(matched)])
    return ScoreReport(n_t, n_f, n_m, completeness, purity, f1, tuple(edges.tolist()), bins,
                       overall, QTable(columns), matched[0]["mode"], n_sep,
                       sep_detected / n_sep if n_sep else float("nan"),
                       t_snr, t_idx, errors, dict(tolerances))


def _pair_errors(found, truth, t_idx, f_idx, sep, resolved):
    """Per-pair error arrays: relative for sizes/flux/line width, deg for PA."""
    errors = {}
    units = {"flux": u.Jy * u.km / u.s, "fwhm_major": u.arcsec, "fwhm_minor": u.arcsec,
             "line_fwhm": u.km / u.s}
    for name in RELATIVE_PARAMETERS:
        true = _column(truth, name, units[name])[t_idx]
        measured = _column(found, name, units[name])[f_idx]
        with np.errstate(divide="ignore", invalid="ignore"):
            errors[name] = np.where(true > 0, (measured - true) / true, np.nan)
    true_pa = _column(truth, "pa", u.deg)[t_idx]
    found_pa = _column(found, "pa", u.deg)[f_idx]
    pa_error = np.mod(found_pa - true_pa + 90.0, 180.0) - 90.0
    pa_error = np.where(np.isfinite(found_pa), pa_error, 90.0)
    errors["pa"] = np.where(resolved[t_idx] & np.isfinite(true_pa), pa_error, np.nan)
    errors["position"] = np.asarray(sep, dtype=float)
    flux_err = _column(found, "flux_err", units["flux"])[f_idx]
    diff = np.abs(_column(found, "flux", units["flux"])[f_idx]
                  - _column(truth, "flux", units["flux"])[t_idx])
    with np.errstate(invalid="ignore"):
        errors["flux_within_err"] = np.where(np.isfinite(flux_err) & np.isfinite(diff),
                                             diff / flux_err, np.nan)
    return errors


def _summaries(errors, select, *, tolerance, pa_tolerance, position_tolerance):
    out = {}
    for name in RELATIVE_PARAMETERS:
        out[name] = ParameterErrors.from_errors(errors[name][select], tolerance=tolerance)
    pa = errors["pa"][select]
    out["pa"] = ParameterErrors.from_errors(pa, tolerance=pa_tolerance)
    out["position"] = ParameterErrors.from_errors(errors["position"][select],
                                                  tolerance=position_tolerance)
    out["flux_within_err"] = ParameterErrors.from_errors(errors["flux_within_err"][select],
                                                         tolerance=1.0)
    return out


def _bin_label(lo, hi):
    return f"{lo:g}-{hi:g}" if np.isfinite(hi) else f">={lo:g}"


def _bins(t_snr, f_snr, edges, t_idx, f_idx, errors, tolerances, separable):
    bins = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_t = (t_snr >= lo) & (t_snr < hi)
        in_f = (f_snr >= lo) & (f_snr < hi)
        n_truth, n_found = int(in_t.sum()), int(in_f.sum())
        n_detected = int(in_t[t_idx].sum()) if len(t_idx) else 0
        n_true = int(in_f[f_idx].sum()) if len(f_idx) else 0
        select = in_t[t_idx] if len(t_idx) else np.zeros(0, dtype=bool)
        in_sep = in_t & separable
        n_sep = int(in_sep.sum())
        sep_detected = int(in_sep[t_idx].sum()) if len(t_idx) else 0
        bins.append({
            "label": _bin_label(lo, hi),
            "snr_min": float(lo), "snr_max": float(hi),
            "n_truth": n_truth, "n_detected": n_detected,
            "completeness": n_detected / n_truth if n_truth else float("nan"),
            "completeness_interval": fraction_interval(n_detected, n_truth),
            "n_separable": n_sep, "n_detected_separable": sep_detected,
            "completeness_separable": sep_detected / n_sep if n_sep else float("nan"),
            "n_found": n_found, "n_true": n_true,
            "purity": n_true / n_found if n_found else float("nan"),
            "purity_interval": fraction_interval(n_true, n_found),
            "errors": _summaries(errors, select, **tolerances),
        })
    return bins


def compare_reports(first, second, *, snr_bins=None):
    """Compare two finders on the same true sources, source by source.

    Parameters
    ----------
    first, second : ScoreReport
        Reports of two catalogues (or sets of catalogues) scored against the same truth,
        in the same order (e.g. two methods of :func:`score_catalogs` on one test set).
    snr_bins : sequence of float, optional
        Truth-SNR bin edges. Default: ``first``'s.

    Returns
    -------
    `~astropy.table.QTable`
        One row per truth-SNR bin and a last row ``all``: ``n_truth``; ``both``,
        ``only_first``, ``only_second``, ``neither`` (true sources matched by each);
        ``completeness_first``, ``completeness_second``; ``p_value``, the exact McNemar
        test of the detections (two-sided binomial test of ``only_first`` against
        ``only_first + only_second`` at one half; 1 when both find the same sources);
        then, over the sources both find, ``flux_both`` (sources with a finite flux error
        in both), ``flux_only_first``, ``flux_only_second`` (within the first report's
        ``tolerance`` in one report only) and ``flux_p_value``, the same test.

    Raises
    ------
    ConfigError
        When the reports were not scored on the same true sources.
    """
    from scipy.stats import binomtest

    if (first.truth_snr.shape != second.truth_snr.shape
            or not np.array_equal(first.truth_snr, second.truth_snr, equal_nan=True)):
        raise ConfigError(
            f"the reports were scored on different truth catalogues ({first.n_truth} and "
            f"{second.n_truth} true sources, or their SNRs differ): score both finders "
            "against the same truth, in the same order")
    edges = _check_bins(first.snr_bins if snr_bins is None else snr_bins)
    tolerance = first.tolerances.get("tolerance", 0.1)
    snr = first.truth_snr
    found = [np.zeros(snr.size, dtype=bool) for _ in range(2)]
    within = [np.full(snr.size, np.nan) for _ in range(2)]
    for report, hit, close in zip((first, second), found, within):
        hit[report.truth_row] = True
        flux = np.asarray(report.match_errors.get("flux", np.zeros(0)), dtype=float)
        close[report.truth_row] = np.where(np.isfinite(flux), np.abs(flux) <= tolerance,
                                           np.nan)

    def mcnemar(only_a, only_b):
        return 1.0 if only_a + only_b == 0 else float(binomtest(only_a, only_a + only_b).pvalue)

    selections = [(_bin_label(lo, hi), (snr >= lo) & (snr < hi))
                  for lo, hi in zip(edges[:-1], edges[1:])]
    selections.append(("all", np.ones(snr.size, dtype=bool)))
    rows = []
    for label, select in selections:
        a, b = found[0][select], found[1][select]
        counts = [int(np.sum(a & b)), int(np.sum(a & ~b)), int(np.sum(~a & b)),
                  int(np.sum(~a & ~b))]
        n = int(select.sum())
        fa, fb = within[0][select & found[0] & found[1]], within[1][select & found[0] & found[1]]
        usable = np.isfinite(fa) & np.isfinite(fb)
        fa, fb = fa[usable].astype(bool), fb[usable].astype(bool)
        flux_counts = [int(usable.sum()), int(np.sum(fa & ~fb)), int(np.sum(~fa & fb))]
        rows.append([label, n, *counts,
                     (counts[0] + counts[1]) / n if n else np.nan,
                     (counts[0] + counts[2]) / n if n else np.nan,
                     mcnemar(counts[1], counts[2]), *flux_counts,
                     mcnemar(flux_counts[1], flux_counts[2])])
    names = ("snr_bin", "n_truth", "both", "only_first", "only_second", "neither",
             "completeness_first", "completeness_second", "p_value", "flux_both",
             "flux_only_first", "flux_only_second", "flux_p_value")
    return QTable(rows=rows, names=names)


def stack_catalogs(catalogs, geometries=None):
    """One table of the catalogues of many cubes (a test set's), to write as one file.

    Parameters
    ----------
    catalogs : sequence of `~astropy.table.QTable`
        One catalogue per cube, all with the same columns.
    geometries : sequence of dict, optional
        Each cube's ``beam``, ``pixel_scale`` and ``channel_width``, as the arguments of
        :func:`score_catalog` (a beam in pixels needs the pixel scale). Default: each
        catalogue's ``meta``.

    Returns
    -------
    `~astropy.table.QTable`
        The rows in order, with a ``cube`` column (the catalogue's 0-based position);
        ``meta['cubes']`` lists each cube's matching scales (the ``meta`` keys that
        matching reads: ``beam_major_arcsec``, ``pixel_scale_arcsec``, ``channel_width_hz``
        or ``channel_width_kms``); the other ``meta`` entries are kept where every
        catalogue has the same value. Write it with ECSV or VOTable to keep them.

    Raises
    ------
    ConfigError
        For no catalogues, a geometry per cube missing, or a beam in pixels without a
        pixel scale.
    """
    from astropy.table import vstack

    catalogs = list(catalogs)
    geometries = [None] * len(catalogs) if geometries is None else list(geometries)
    if not catalogs or len(geometries) != len(catalogs):
        raise ConfigError(f"stack_catalogs needs one or more catalogues and one geometry per "
                          f"catalogue ({len(catalogs)} catalogues, {len(geometries)} "
                          "geometries)")
    parts, cubes = [], []
    for cube, (table, geometry) in enumerate(zip(catalogs, geometries)):
        cubes.append(_geometry_meta(table, geometry or {}))
        part = table.copy()
        part["cube"] = np.full(len(part), cube)
        parts.append(part)
    stacked = vstack(parts, metadata_conflicts="silent")
    stacked.meta.clear()
    stacked.meta.update(_shared_meta(catalogs))
    stacked.meta["cubes"] = cubes
    return stacked


def _shared_meta(catalogs):
    """The ``meta`` entries that every catalogue holds with the same value (a cube's own
    beam, say, is not one of them), less the matching scales."""
    shared = {}
    for key, value in catalogs[0].meta.items():
        if key in GEOMETRY_KEYS:
            continue
        try:
            same = all(key in c.meta and bool(np.all(c.meta[key] == value))
                       for c in catalogs[1:])
        except (TypeError, ValueError, u.UnitsError):
            same = False
        if same:
            shared[key] = value
    return shared


def split_catalogs(table):
    """The per-cube catalogues of a :func:`stack_catalogs` table.

    Parameters
    ----------
    table : `~astropy.table.QTable` or path
        A stacked table (``cube`` column, ``meta['cubes']``), or its file.

    Returns
    -------
    list of `~astropy.table.QTable`
        One catalogue per cube (empty where a cube had no rows), without the ``cube``
        column; each one's ``meta`` holds its cube's matching scales, so that
        ``score_catalogs(zip(split_catalogs(found), split_catalogs(truth)))`` needs no
        geometry.

    Raises
    ------
    InputDataError
        When the table has no ``cube`` column or no ``meta['cubes']``.
    """
    from deepfocus_radio.exceptions import InputDataError
    from deepfocus_radio.sources.catalog import read_catalog

    table = table if isinstance(table, QTable) else read_catalog(table)
    cubes = table.meta.get("cubes")
    if "cube" not in table.colnames or not isinstance(cubes, list):
        raise InputDataError("not a stacked catalogue: it needs a 'cube' column and "
                             "meta['cubes'] (write one with stack_catalogs)")
    shared = {k: v for k, v in table.meta.items() if k != "cubes"}
    numbers = np.asarray(table["cube"], dtype=int)
    out = []
    for cube, scales in enumerate(cubes):
        part = table[numbers == cube]
        part.remove_column("cube")
        part.meta.clear()
        part.meta.update(shared)
        part.meta.update(scales)
        out.append(part)
    return out


def _geometry_meta(table, geometry):
    """A cube's matching scales as ``meta`` entries, from score_catalog-style arguments or,
    where those are absent, the catalogue's own ``meta`` (read as matching reads it)."""
    beam_arcsec, beam_pix = _beam(geometry.get("beam"), [table])
    scale = geometry.get("pixel_scale")
    scale = (u.Quantity(scale).to_value(u.arcsec) if scale is not None
             else _meta([table], "pixel_scale_arcsec"))
    if beam_arcsec is None and beam_pix is not None:
        if scale is None:
            raise ConfigError("a beam in pixels needs the pixel scale to be stored: "
                              "give pixel_scale or the beam as an angle")
        beam_arcsec = beam_pix * scale
    channel_hz, channel_kms = _channel(geometry.get("channel_width"), [table])
    values = zip(GEOMETRY_KEYS, (beam_arcsec, scale, channel_hz, channel_kms))
    return {key: float(value) for key, value in values if value is not None}
