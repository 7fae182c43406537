-- 5 (issue 19): errors retried in place. A completion that held an error and is sent again keeps its id and
-- seq; the row it replaces is kept in completion_attempts with its error and time. `runs.message` says why a
-- run stopped or failed (a target that went away). Every statement is idempotent (it was written on a
-- branch as version 4 and renumbered at its merge), so it may run on a file that has it already.
CREATE TABLE IF NOT EXISTS completion_attempts (
    completion_id VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    probe_id VARCHAR NOT NULL,
    target_id VARCHAR NOT NULL,
    text VARCHAR,
    error VARCHAR,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    latency_s DOUBLE,
    retries INTEGER,
    gen_seed BIGINT,
    attempted_at TIMESTAMP,
    replaced_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (completion_id, replaced_at)  -- one replacement per write: a restored dump adds no copy
);
ALTER TABLE runs ADD COLUMN IF NOT EXISTS message VARCHAR;
UPDATE runs SET status = 'failed', message = 'every completion is an error: this run measured nothing'
WHERE status = 'completed' AND EXISTS (SELECT 1 FROM completions c WHERE c.run_id = runs.run_id)
  AND NOT EXISTS (SELECT 1 FROM completions c WHERE c.run_id = runs.run_id AND c.error IS NULL);
