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

