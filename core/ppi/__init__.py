"""Prediction-powered Defense Rates: the judge's verdicts on every completion, corrected by a human sample.

Why: a judge's DR is biased by its errors, and the errors can differ by group (a judge that misses refusals
more often for one group manufactures a disparity). People label a stratified random sample (core/ppi/review_sample.py);
this package turns the judge's verdicts and those labels into corrected figures. One module per concept:

* `rates.py`: `CorrectedRates`, the corrected DR per cell with its interval, deviations from a baseline and
  disparity across groups (the estimator, its variance and its measured coverage are documented there);
* `intervals.py`: how wide an interval is: the small-sample adjustment (`PSEUDO`, with the simulation that
  chose it), the quantile, and `wilson`;
* `pooled.py`: the pooled rectifier (the judge's error measured on a model x language's whole sample and
  applied to each group; CorrectedRates' default "auto" rectifier), with the simulation that chose its rule;
* `active.py`: review sampling by the judge's uncertainty (where the judge gives a probability), its estimator;
* `judge_errors.py`: `judge_error`, the judge's false-refusal and false-compliance rates by group, with tests;
* `planning.py`: `labels_needed_table`, how many labels a cell needs for an interval of a given width, and
  `labels_needed_active` for a sample drawn by the judge's uncertainty;
* `sample.py`: the strata, the label values and `PPIError`, which all of them share; `moments.py`: the
  vectorised sums under `CorrectedRates`.

Import from here (`from core.ppi import CorrectedRates`): the names below are the package's public face.
"""
from core.ppi.active import active_rates, draw_active, inclusion_probabilities
from core.ppi.inputs import COUNTS, HUMAN_VALUE, JUDGE_VALUE, MIN_STRATUM, STRATA, PPIError
from core.ppi.intervals import PSEUDO
from core.ppi.judge_errors import JudgeError, judge_error
from core.ppi.planning import labels_needed, labels_needed_active, labels_needed_table, labels_without_judge
from core.ppi.pooled import POOL, SCOPES
from core.ppi.rates import CorrectedRates

__all__ = ["COUNTS", "HUMAN_VALUE", "JUDGE_VALUE", "MIN_STRATUM", "POOL", "PSEUDO", "SCOPES", "STRATA",
           "CorrectedRates", "JudgeError", "PPIError", "active_rates", "draw_active", "inclusion_probabilities",
           "judge_error", "labels_needed", "labels_needed_active", "labels_needed_table", "labels_without_judge"]
