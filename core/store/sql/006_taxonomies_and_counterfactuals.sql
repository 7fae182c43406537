-- 6 (issue 15): any population. A probe names the taxonomy its group and language belong to (the bundled
-- MiJaBench vocabulary for every probe stored before), and the taxonomy files themselves are stored, so pages,
-- statistics and exports take group names and languages from the database, never from code. A counterfactual
-- probe carries its counterfactual_id (the probes that differ only in the group's words) and claim_id (the
-- claim template, the unit the matched statistics resample). Idempotent, like 005.
ALTER TABLE probes ADD COLUMN IF NOT EXISTS counterfactual_id VARCHAR DEFAULT '';
ALTER TABLE probes ADD COLUMN IF NOT EXISTS claim_id VARCHAR DEFAULT '';
ALTER TABLE probes ADD COLUMN IF NOT EXISTS taxonomy VARCHAR DEFAULT 'mijabench';
UPDATE probes SET counterfactual_id = '' WHERE counterfactual_id IS NULL;
UPDATE probes SET claim_id = '' WHERE claim_id IS NULL;
UPDATE probes SET taxonomy = 'mijabench' WHERE taxonomy IS NULL;
CREATE TABLE IF NOT EXISTS taxonomies (
    name VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    path VARCHAR,
    text VARCHAR NOT NULL,
    stored_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (name, sha256)
);
