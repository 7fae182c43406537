-- 3: speed at MiJaBench-Align scale (528,000 completions). `seq` is an integer key in insertion order that
-- verdicts carry too, so joining them to completions compares integers (and skips row groups by their
-- min/max) instead of hashing 20-character ids: the string joins were most of every query's time.
-- `cell_counts` holds label counts per cell (see _refresh_cells), kept in the transaction of every write,
-- so a heatmap sums a few thousand rows instead of joining every completion with its verdicts.
-- completions trades its UNIQUE (run_id, probe_id, target_id) index for a CHECK that the primary key is
-- the hash of those three (completion_id_for): the same guarantee, without a second index that cost 13%
-- of an import.
CREATE TABLE completions_v3 (
    completion_id VARCHAR PRIMARY KEY,
    run_id VARCHAR NOT NULL,
    probe_id VARCHAR NOT NULL,
    target_id VARCHAR NOT NULL,
    text VARCHAR,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    latency_s DOUBLE,
    error VARCHAR,
    gen_seed BIGINT,
    created_at TIMESTAMP DEFAULT current_timestamp,
    retries INTEGER DEFAULT 0,
    seq BIGINT,
    CHECK (completion_id = left(sha1(run_id || chr(31) || probe_id || chr(31) || target_id), 20))
);
INSERT INTO completions_v3 SELECT *, rowid FROM completions ORDER BY rowid;
DROP TABLE completions;
ALTER TABLE completions_v3 RENAME TO completions;
ALTER TABLE verdicts ADD COLUMN seq BIGINT;
UPDATE verdicts SET seq = c.seq FROM completions c WHERE c.completion_id = verdicts.completion_id;
CREATE TABLE cell_counts (
    judge VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    language VARCHAR,
    "group" VARCHAR,
    strategy VARCHAR,
    scenario_category VARCHAR,
    kind VARCHAR,
    label VARCHAR NOT NULL,
    n BIGINT NOT NULL
);
