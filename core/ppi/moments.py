"""The vectorised arithmetic under CorrectedRates: the sample moments of parts of a stratum's sample and
their variance, and integer keys and index ranges that replace a Python loop per cell (core/ppi/rates.py
says why everything is a function of per-(stratum, cell) sums)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# -- the moments of one part of a stratum's sample -------------------------------------------------------
# A "part" is the set of a stratum's sample items on which a linear statistic is u = alpha h - beta f (zero
# elsewhere); its moments are (m, Sh, Sf, Shf, Sff) and the pseudo weight w per direction.
MOMENTS = ("m", "sh", "sf", "shf", "sff")
# Items of a Poisson stratum (drawn by the judge's uncertainty, core/ppi/rates.py) carry their own weights:
# a = 1/pi (Horvitz-Thompson) and b = (1 - pi)/pi^2 (the variance of independent draws); h is 0/1, so
# sum b h^2 = sum b h, and these sums give the design variance of any u = alpha h - beta f exactly.
POISSON_MOMENTS = ("ah", "af", "bh", "bhf", "bff")
ALL_MOMENTS = MOMENTS + POISSON_MOMENTS


def poisson_variance(parts: Sequence[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]],
                     b_bar: np.ndarray) -> np.ndarray:
    """Estimated design variance, sum over the labelled items of b_i u_i^2, of u = sum over parts of
    (alpha h - beta f) on the part's items of a Poisson stratum (independent draws: parts add, no
    covariance), plus the parts' pseudo items (w per direction, (h, f) = (1, 0) and (0, 1)) weighted like a
    uniform sample of the stratum's size, b_bar = (1 - n_s/N_s)/(n_s/N_s)^2."""
    out = np.zeros(len(b_bar))
    for alpha, beta, mom, w in parts:
        out += (alpha ** 2 * mom["bh"] - 2 * alpha * beta * mom["bhf"] + beta ** 2 * mom["bff"]
                + w * b_bar * (alpha ** 2 + beta ** 2))
    return np.maximum(out, 0.0)


def sample_variance(parts: Sequence[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]],
                    n_s: np.ndarray) -> np.ndarray:
    """Sample variance, over all n_s items of a stratum plus the pseudo items, of u = sum over parts of
    (alpha h - beta f) on the part's items. Rows are vectorised; parts are (alpha, beta, moments, w)."""
    su = np.zeros(len(n_s))
    suu = np.zeros(len(n_s))
    count = n_s.astype("float64").copy()
    for alpha, beta, mom, w in parts:
        sh, sf = mom["sh"] + w, mom["sf"] + w
        su += alpha * sh - beta * sf
        suu += alpha ** 2 * sh - 2 * alpha * beta * mom["shf"] + beta ** 2 * (mom["sff"] + w)
        count += 2 * w
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.maximum(suu - su ** 2 / count, 0.0) / (count - 1)


def combine_codes(codes: Sequence[np.ndarray], radix: Sequence[int]) -> np.ndarray:
    """One int64 key per row from per-column codes (mixed radix, so keys sort like the columns)."""
    key = np.zeros(len(codes[0]) if codes else 0, dtype="int64")
    for code, size in zip(codes, radix):
        key = key * size + code
    return key


def index_ranges(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated index ranges [start, start + count) and, per index, the number of its range."""
    owner = np.repeat(np.arange(len(counts)), counts)
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + offsets, owner

