-- 7 (issue 26): one answer per (target, probe). cell_counts gains the probe set of each cell (matched-seed or
-- counterfactual, core/dimensions.py `probe_set`: views read one set unless told) and `current`: whether the
-- counted completions are the answer a view shows for their (target, probe) when no runs are chosen (the
-- latest completed run's, see core/store/rows.py _ANSWER_RANK). The counts are recounted after this file
-- (schema.py), for every run, so a store migrated from any version holds both columns filled.
ALTER TABLE cell_counts ADD COLUMN IF NOT EXISTS probe_set VARCHAR;
ALTER TABLE cell_counts ADD COLUMN IF NOT EXISTS current BOOLEAN;
DELETE FROM cell_counts;
