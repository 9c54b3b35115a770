-- Re-embedding on activation and the search cutover.
--
-- Activating a model version (clipd_activate_model_version, promotion, `clipd model import
-- --activate`) starts a backfill: every stored record gets an embedding and tags from the new
-- version. Running daemons share the work in chunks of the records' id space, claimed with
-- FOR UPDATE SKIP LOCKED under a lease, so a daemon killed mid-chunk leaves the chunk to the next
-- claimant once its lease has lapsed; records already embedded are skipped, and embeddings are
-- upserted by (record_id, model_version_id), so a replayed chunk writes nothing twice.
--
-- Search (clipd_search_model_version(), the view search_model_version, latest_tags and `clipd
-- search`) answers from the newest version whose backfill reached the coverage threshold
-- (`serving_since`), so activation never leaves search blank and results never mix versions.

CREATE TABLE model_backfills (
    model_version_id  bigint PRIMARY KEY REFERENCES model_versions (id) ON DELETE CASCADE,
    -- pending: activated, chunks not yet planned; running: chunks being claimed; done: every
    -- record covered; superseded: another version was activated before this one was done.
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'running', 'done', 'superseded')),
    activated_at      timestamptz NOT NULL DEFAULT now(),
    chunk_size        integer CHECK (chunk_size > 0),
    planned_at        timestamptz,
    -- Records written by backfill workers (not by the live pipeline), for the rate and ETA.
    backfilled        bigint NOT NULL DEFAULT 0,
    first_write_at    timestamptz,
    last_write_at     timestamptz,
    -- Set once coverage reached the threshold: from then on search answers from this version.
    serving_since     timestamptz,
    finished_at       timestamptz,
    -- Set when the version's embeddings and tags were removed by retention.
    pruned_at         timestamptz
);
CREATE INDEX model_backfills_serving ON model_backfills (serving_since DESC) WHERE serving_since IS NOT NULL;

-- A chunk covers records with first_id <= id < end_id (NULL: unbounded), in the ordering of the
-- records' primary key, so each claim reads its records through that index.
CREATE TABLE model_backfill_chunks (
    model_version_id  bigint NOT NULL REFERENCES model_backfills (model_version_id) ON DELETE CASCADE,
    chunk             integer NOT NULL CHECK (chunk >= 0),
    first_id          text,
    end_id            text,
    status            text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done')),
    claimed_by        text,
    lease_until       timestamptz,
    attempts          integer NOT NULL DEFAULT 0,
    done_at           timestamptz,
    PRIMARY KEY (model_version_id, chunk)
);
CREATE INDEX model_backfill_chunks_open ON model_backfill_chunks (model_version_id, chunk) WHERE status <> 'done';

-- Records a backfill could not embed (the image is gone or broken); they count as covered, so
-- one lost image cannot hold the cutover back forever. Cleared when the version is re-activated.
CREATE TABLE model_backfill_failures (
    record_id         text NOT NULL REFERENCES records (id) ON DELETE CASCADE,
    model_version_id  bigint NOT NULL REFERENCES model_versions (id) ON DELETE CASCADE,
    error_class       text NOT NULL,
    error_message     text NOT NULL,
    failed_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (record_id, model_version_id)
);

-- Activation (insert of an active row, or is_active turning true) (re)starts the version's
-- backfill and supersedes any other unfinished one. Runs in the activating transaction.
CREATE FUNCTION clipd_model_versions_start_backfill() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT NEW.is_active OR (TG_OP = 'UPDATE' AND OLD.is_active) THEN
        RETURN NULL;
    END IF;
    UPDATE model_backfills SET status = 'superseded', finished_at = now()
     WHERE status IN ('pending', 'running') AND model_version_id <> NEW.id;
    DELETE FROM model_backfill_chunks WHERE model_version_id = NEW.id;
    DELETE FROM model_backfill_failures WHERE model_version_id = NEW.id;
    INSERT INTO model_backfills (model_version_id) VALUES (NEW.id)
    ON CONFLICT (model_version_id) DO UPDATE
        SET status = 'pending', activated_at = now(), chunk_size = NULL, planned_at = NULL, backfilled = 0,
            first_write_at = NULL, last_write_at = NULL, serving_since = NULL, finished_at = NULL, pruned_at = NULL;
    PERFORM pg_notify('clipd_model_backfills', NEW.id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER model_versions_start_backfill
    AFTER INSERT OR UPDATE OF is_active ON model_versions
    FOR EACH ROW EXECUTE FUNCTION clipd_model_versions_start_backfill();

-- Splits the records present now into chunks of `chunk_size` ids (once per backfill; callers
-- racing here wait on the row lock and find it planned). The first chunk is open below and the
-- last one open above, so records arriving later fall into a chunk too.
CREATE FUNCTION clipd_plan_backfill(version_id bigint, chunk_size integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    backfill model_backfills%ROWTYPE;
BEGIN
    SELECT * INTO backfill FROM model_backfills WHERE model_version_id = version_id FOR UPDATE;
    IF NOT FOUND OR backfill.status <> 'pending' THEN
        RETURN;
    END IF;
    INSERT INTO model_backfill_chunks (model_version_id, chunk, first_id, end_id)
    SELECT version_id, c.chunk, CASE WHEN c.chunk = 0 THEN NULL ELSE c.id END, c.next_id
      FROM (SELECT (row_number() OVER (ORDER BY b.id))::integer - 1 AS chunk, b.id, lead(b.id) OVER (ORDER BY b.id) AS next_id
              FROM (SELECT s.id FROM (SELECT r.id, row_number() OVER (ORDER BY r.id) - 1 AS n FROM records r) s
                     WHERE s.n % chunk_size = 0) b) c;
    IF NOT FOUND THEN
        INSERT INTO model_backfill_chunks (model_version_id, chunk, first_id, end_id) VALUES (version_id, 0, NULL, NULL);
    END IF;
    UPDATE model_backfills SET status = 'running', planned_at = now(), chunk_size = clipd_plan_backfill.chunk_size
     WHERE model_version_id = version_id;
END
$$;

-- Hands one open chunk of a running backfill to one worker: a pending chunk, or one whose
-- claimant's lease has lapsed (it was killed). Other workers skip locked rows.
CREATE FUNCTION clipd_claim_backfill_chunk(version_id bigint, worker text, lease_seconds double precision)
RETURNS TABLE (chunk integer, first_id text, end_id text)
LANGUAGE sql AS $$
    UPDATE model_backfill_chunks c
       SET status = 'running', claimed_by = worker, attempts = c.attempts + 1,
           lease_until = clock_timestamp() + lease_seconds * interval '1 second'
     WHERE (c.model_version_id, c.chunk) = (
            SELECT o.model_version_id, o.chunk FROM model_backfill_chunks o
              JOIN model_backfills b ON b.model_version_id = o.model_version_id AND b.status = 'running'
             WHERE o.model_version_id = version_id
               AND (o.status = 'pending' OR (o.status = 'running' AND o.lease_until < clock_timestamp()))
             ORDER BY o.chunk LIMIT 1 FOR UPDATE OF o SKIP LOCKED)
    RETURNING c.chunk, c.first_id, c.end_id
$$;

-- Coverage of one version: records with its embedding or a backfill failure, and all records.
CREATE FUNCTION clipd_backfill_coverage(version_id bigint)
RETURNS TABLE (embedded bigint, failed bigint, total bigint)
LANGUAGE sql STABLE AS $$
    SELECT (SELECT count(*) FROM embeddings e WHERE e.model_version_id = version_id),
           (SELECT count(*) FROM model_backfill_failures f WHERE f.model_version_id = version_id),
           (SELECT count(*) FROM records)
$$;

-- After a chunk: makes the version serve search once coverage reaches `threshold` (a fraction;
-- checked exactly only when the done chunks already reach it), and, once every chunk is done,
-- either reopens the chunks that still hold uncovered records (written meanwhile under an older
-- version) or marks the backfill done. Returns the backfill's status and whether this call made
-- the version start serving.
CREATE FUNCTION clipd_settle_backfill(version_id bigint, threshold double precision)
RETURNS TABLE (status text, started_serving boolean)
LANGUAGE plpgsql AS $$
DECLARE
    backfill model_backfills%ROWTYPE;
    open_chunks bigint;
    all_chunks bigint;
    cov record;
    reopened bigint;
    serving boolean := false;
BEGIN
    SELECT * INTO backfill FROM model_backfills b WHERE b.model_version_id = version_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF backfill.status <> 'running' THEN
        status := backfill.status; started_serving := false;
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT count(*) FILTER (WHERE c.status <> 'done'), count(*) INTO open_chunks, all_chunks
      FROM model_backfill_chunks c WHERE c.model_version_id = version_id;
    IF open_chunks = 0 THEN
        UPDATE model_backfill_chunks c SET status = 'pending', claimed_by = NULL, lease_until = NULL, done_at = NULL
         WHERE c.model_version_id = version_id
           AND EXISTS (SELECT 1 FROM records r
                        WHERE (c.first_id IS NULL OR r.id >= c.first_id) AND (c.end_id IS NULL OR r.id < c.end_id)
                          AND NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.record_id = r.id AND e.model_version_id = version_id)
                          AND NOT EXISTS (SELECT 1 FROM model_backfill_failures f WHERE f.record_id = r.id AND f.model_version_id = version_id));
        GET DIAGNOSTICS reopened = ROW_COUNT;
        IF reopened = 0 THEN
            serving := backfill.serving_since IS NULL;
            UPDATE model_backfills b SET status = 'done', finished_at = now(), serving_since = coalesce(b.serving_since, now())
             WHERE b.model_version_id = version_id;
            status := 'done'; started_serving := serving;
            RETURN NEXT;
            RETURN;
        END IF;
    ELSIF backfill.serving_since IS NULL AND threshold < 1
          AND (all_chunks - open_chunks)::double precision / all_chunks >= threshold THEN
        SELECT * INTO cov FROM clipd_backfill_coverage(version_id);
        IF cov.total = 0 OR (cov.embedded + cov.failed)::double precision / cov.total >= threshold THEN
            UPDATE model_backfills b SET serving_since = now() WHERE b.model_version_id = version_id;
            serving := true;
        END IF;
    END IF;
    status := 'running'; started_serving := serving;
    RETURN NEXT;
END
$$;

-- The version search answers from: the one that most recently started serving (coverage reached
-- the threshold), else the active version (a database migrated before any backfill finished).
CREATE FUNCTION clipd_search_model_version() RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT b.model_version_id FROM model_backfills b
          WHERE b.serving_since IS NOT NULL AND b.pruned_at IS NULL
          ORDER BY b.serving_since DESC, b.model_version_id DESC LIMIT 1),
        (SELECT m.id FROM model_versions m WHERE m.is_active))
$$;

-- The version search answers from (zero or one row).
CREATE VIEW search_model_version AS
    SELECT m.* FROM model_versions m WHERE m.id = (SELECT clipd_search_model_version());

-- Tags of the version search answers from (was: of the active version, which is blank until its
-- backfill has covered the records). Same columns as before.
CREATE OR REPLACE VIEW latest_tags AS
    SELECT t.record_id, r.image_url, r.caption, t.label_set, t.label, t.score, t.rank,
           t.model_version_id, m.name AS model_version, t.created_at
      FROM tags t
      JOIN search_model_version m ON m.id = t.model_version_id
      JOIN records r ON r.id = t.record_id;

-- Retention: removes the embeddings and tags of versions that were activated (have a backfill)
-- but are neither active, nor the search version, nor among the `keep` most recently activated.
-- Returns the pruned version ids.
CREATE FUNCTION clipd_prune_model_versions(keep integer) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
    version_id bigint;
BEGIN
    FOR version_id IN
        SELECT b.model_version_id FROM model_backfills b
         WHERE b.pruned_at IS NULL
           AND b.model_version_id NOT IN (SELECT m.id FROM model_versions m WHERE m.is_active)
           AND b.model_version_id IS DISTINCT FROM clipd_search_model_version()
           AND b.model_version_id NOT IN (SELECT k.model_version_id FROM model_backfills k
                                           ORDER BY k.activated_at DESC, k.model_version_id DESC LIMIT greatest(keep, 1))
         ORDER BY b.model_version_id
         FOR UPDATE OF b SKIP LOCKED
    LOOP
        DELETE FROM tags t WHERE t.model_version_id = version_id;
        DELETE FROM embeddings e WHERE e.model_version_id = version_id;
        DELETE FROM model_backfill_chunks c WHERE c.model_version_id = version_id;
        DELETE FROM model_backfill_failures f WHERE f.model_version_id = version_id;
        UPDATE model_backfills b SET pruned_at = now(), status = CASE WHEN b.status IN ('pending', 'running') THEN 'superseded' ELSE b.status END
         WHERE b.model_version_id = version_id;
        RETURN NEXT version_id;
    END LOOP;
END
$$;

-- A database migrated with an active version: its backfill starts like any activation's.
INSERT INTO model_backfills (model_version_id) SELECT id FROM model_versions WHERE is_active;

-- The fine-tune job's training set when it consumes the topic (`clipd finetune run --brokers …`):
-- captioned records its own consumer group read, fetched and preprocessed exactly as the daemon
-- does, kept as the crop the model sees (float32, 3 × S × S, with the preprocessing it was made
-- for) and the caption's token ids. Bounded: the newest N samples by arrival (a sliding window;
-- older ones are deleted as new ones arrive). Exact duplicate images (same bytes: SHA-256) and
-- repeated captions (after trimming, case and whitespace folding) are kept out, since in a
-- contrastive batch a duplicate is a false negative. The group's offsets go to consumer_offsets in
-- the same transaction as the samples they cover.
CREATE TABLE training_samples (
    id                bigserial PRIMARY KEY,
    record_id         text NOT NULL,
    image_url         text NOT NULL,
    caption           text NOT NULL CHECK (btrim(caption) <> ''),
    caption_key       text NOT NULL UNIQUE,
    image_sha256      bytea NOT NULL UNIQUE,
    preprocessing     text NOT NULL,
    pixels            bytea NOT NULL,
    token_ids         integer[] NOT NULL,
    consumer_group    text NOT NULL,
    source_topic      text,
    source_partition  integer,
    source_offset     bigint,
    added_at          timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE training_samples ALTER COLUMN pixels SET STORAGE EXTERNAL;

-- The caption key duplicates are detected by.
CREATE FUNCTION clipd_caption_key(caption text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT lower(regexp_replace(btrim(caption), '\s+', ' ', 'g'))
$$;

-- A run stopped by SIGTERM is `interrupted` (not failed): the next trainer claims it before any
-- scheduled run and trains it again on the same pairs (`pairs`, fixed when the run first started)
-- with the same seed, so it ends with the weights an uninterrupted run would have had.
ALTER TABLE finetune_runs DROP CONSTRAINT finetune_runs_status_check;
ALTER TABLE finetune_runs ADD CONSTRAINT finetune_runs_status_check
    CHECK (status IN ('scheduled', 'running', 'finished', 'rejected', 'failed', 'cancelled', 'interrupted'));
ALTER TABLE finetune_runs ADD COLUMN pairs jsonb;
ALTER TABLE finetune_runs ADD COLUMN interrupted_at_step integer;

CREATE OR REPLACE FUNCTION clipd_claim_finetune_run(worker text) RETURNS SETOF finetune_runs
LANGUAGE sql AS $$
    UPDATE finetune_runs SET status = 'running', claimed_by = worker, started_at = now(), finished_at = NULL
     WHERE id = (SELECT id FROM finetune_runs
                  WHERE status = 'interrupted' OR (status = 'scheduled' AND scheduled_at <= now())
                  ORDER BY status = 'interrupted' DESC, scheduled_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING *
$$;
