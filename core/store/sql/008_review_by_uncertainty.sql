-- 8 (issue 28): a review sample may be drawn by the judge's uncertainty (core/ppi/review_sample.py
-- draw_by_uncertainty): within each stratum every completion is drawn on its own (Poisson sampling) with
-- probability `inclusion_prob`, higher where the judge's P(refused) is near 0.5, and `judge` names the judge whose
-- probability set it. Both are NULL for a stratified simple random sample (whose inclusion probability is a
-- property of the stratum: sampled / stratum_size), so every earlier sample keeps its meaning.
ALTER TABLE review_sample ADD COLUMN IF NOT EXISTS inclusion_prob DOUBLE;
ALTER TABLE review_sample ADD COLUMN IF NOT EXISTS judge VARCHAR;
