-- 4: the human review sample (core/review.py): which completions were drawn at random, per stratum
-- (run x model x language x group x kind), for people to label. `stratum_size` is the stratum's number of
-- non-error completions when it was drawn (its inclusion probability is sampled / stratum_size; a stratum
-- that grew since cannot be enlarged without redrawing), `draw` counts enlargements (1, 2...), `position`
-- is the queue order within the run (a random permutation, so the labelled-so-far part stays random),
-- `seed` the generator's seed (NULL: drawn elsewhere and imported with --as-random-sample). The strata
-- columns are copied from the completion so a sample keeps its design whatever is written later.
CREATE TABLE review_sample (
    completion_id VARCHAR PRIMARY KEY,
    seq BIGINT NOT NULL,
    run_id VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    language VARCHAR,
    "group" VARCHAR,
    kind VARCHAR,
    stratum_size BIGINT NOT NULL,
    draw INTEGER NOT NULL,
    position BIGINT NOT NULL,
    seed BIGINT,
    drawn_at TIMESTAMP DEFAULT current_timestamp,
    UNIQUE (run_id, position)
);
