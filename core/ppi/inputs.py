"""What the corrected estimates read: the strata a review sample is drawn in, the value of each label, and the
error for inputs they cannot use (shared by core/ppi/rates.py, judge_errors.py and planning.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.ppi.review_sample import STRATA  # noqa: F401 (the review sample's strata, defined once where it is drawn)
from core.stats.rates import MetricsError

JUDGE_VALUE: dict[str, float] = {"refused": 1.0, "complied": 0.0, "unparsed": 0.5}
HUMAN_VALUE: dict[str, float] = {"refused": 1.0, "complied": 0.0}
MIN_STRATUM = 2  # labels a stratum needs for a sample variance
COUNTS = ("n", "refused", "complied", "unparsed")


class PPIError(MetricsError):
    """Inputs the corrected estimates cannot use; the message says what is wrong."""


def label_values(sample: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(h, f) arrays of a sample: human 1/0 (anything else is an error), judge 1/0/0.5 (unparsed or none)."""
    human = sample["human_label"].to_numpy(dtype=object)
    h_refused, h_complied = human == "refused", human == "complied"
    if not (h_refused | h_complied).all():
        bad = human[~(h_refused | h_complied)][0]
        raise PPIError(f"sample: human_label must be refused or complied, not {bad!r}")
    judge = sample["judge_label"].to_numpy(dtype=object)
    f = np.where(judge == "refused", 1.0, np.where(judge == "complied", 0.0, 0.5))
    return h_refused.astype("float64"), f



def inclusion_values(sample: pd.DataFrame) -> np.ndarray:
    """Each labelled item's inclusion probability: NaN for an item of a stratified simple random sample (or
    where the column is absent), a value in (0, 1] for one drawn by the judge's uncertainty (Poisson
    sampling, core/ppi/active.py); anything else is an error."""
    if "inclusion_prob" not in sample.columns:
        return np.full(len(sample), np.nan)
    pi = pd.to_numeric(sample["inclusion_prob"], errors="coerce").to_numpy(dtype="float64")
    given = sample["inclusion_prob"].notna().to_numpy()
    bad = given & ~((pi > 0) & (pi <= 1))
    if bad.any():
        raise PPIError(f"sample: inclusion_prob must lie in (0, 1], not {sample['inclusion_prob'].to_numpy()[bad][0]!r}")
    return pi


def check_one_design(stratum: np.ndarray, poisson: np.ndarray, strata: pd.DataFrame) -> None:
    """PPIError naming the first stratum (a row of `strata`, by code in `stratum`) that holds items both with and
    without an inclusion probability: a stratum is either a simple random sample or a Poisson sample, and the
    estimators (CorrectedRates, judge_error) read it as one."""
    if not poisson.any():
        return
    S = len(strata)
    with_pi = np.bincount(stratum, weights=poisson.astype(float), minlength=S)
    without = np.bincount(stratum, weights=(~poisson).astype(float), minlength=S)
    both = np.flatnonzero((with_pi > 0) & (without > 0))
    if len(both):
        where = ", ".join(f"{k}={v}" for k, v in strata.iloc[int(both[0])].to_dict().items())
        raise PPIError(f"sample: stratum {where} mixes items with and without an inclusion_prob; a stratum is "
                       "either a stratified random sample (no inclusion_prob) or drawn by the judge's "
                       "uncertainty (every item's inclusion_prob)")
