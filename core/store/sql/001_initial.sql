CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE probes (
    probe_id VARCHAR PRIMARY KEY,
    language VARCHAR NOT NULL,
    "group" VARCHAR NOT NULL,
    seed_text VARCHAR,
    scenario_category VARCHAR,
    scenario VARCHAR,
    strategy VARCHAR NOT NULL,
    prompt VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    source VARCHAR NOT NULL
);
CREATE TABLE targets (
    target_id VARCHAR PRIMARY KEY,
    backend VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    base_url VARCHAR,
    family VARCHAR,
    size_b DOUBLE,
    settings VARCHAR,
    created_at TIMESTAMP DEFAULT current_timestamp
);
CREATE TABLE runs (
    run_id VARCHAR PRIMARY KEY,
    created_at TIMESTAMP DEFAULT current_timestamp,
    updated_at TIMESTAMP DEFAULT current_timestamp,
    status VARCHAR NOT NULL,
    config VARCHAR NOT NULL
);
CREATE TABLE run_probes (
    run_id VARCHAR NOT NULL,
    probe_id VARCHAR NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (run_id, probe_id)
);
CREATE TABLE run_targets (
    run_id VARCHAR NOT NULL,
    target_id VARCHAR NOT NULL,
    PRIMARY KEY (run_id, target_id)
);
CREATE TABLE completions (
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
    UNIQUE (run_id, probe_id, target_id)
);
CREATE TABLE verdicts (
    completion_id VARCHAR NOT NULL,
    judge VARCHAR NOT NULL,
    label VARCHAR NOT NULL,
    rationale VARCHAR,
    raw VARCHAR,
    judge_version VARCHAR,
    judge_model VARCHAR,
    created_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (completion_id, judge)
);
CREATE TABLE annotations (
    completion_id VARCHAR NOT NULL,
    label VARCHAR NOT NULL,
    note VARCHAR,
    author VARCHAR,
    created_at TIMESTAMP DEFAULT current_timestamp
);
