-- The tables of clipd's database surface (see README "Database").

-- Model versions: lineage (parent), metrics, and at most one active version (partial unique
-- index). Activate with SELECT clipd_activate_model_version(id).
CREATE TABLE model_versions (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL UNIQUE,
    parent_id       bigint REFERENCES model_versions (id),
    architecture    text NOT NULL,
    embedding_dim   integer NOT NULL CHECK (embedding_dim > 0),
    checkpoint_uri  text,
    metrics         jsonb NOT NULL DEFAULT '{}',
    is_active       boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    activated_at    timestamptz,
    UNIQUE (id, embedding_dim)
);
CREATE UNIQUE INDEX model_versions_single_active ON model_versions ((true)) WHERE is_active;

CREATE FUNCTION clipd_activate_model_version(version_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM model_versions WHERE id = version_id) THEN
        RAISE EXCEPTION 'model version % does not exist', version_id USING ERRCODE = 'no_data_found';
    END IF;
    -- Two statements: the unique index is checked row by row, so deactivate first.
    UPDATE model_versions SET is_active = false WHERE is_active AND id <> version_id;
    UPDATE model_versions SET is_active = true, activated_at = now() WHERE id = version_id AND NOT is_active;
END
$$;

-- Daemons LISTEN on clipd_model_versions to hot-swap the active model; payload is the id.
CREATE FUNCTION clipd_notify_model_versions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.is_active THEN
        PERFORM pg_notify('clipd_model_versions', NEW.id::text);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER model_versions_notify_activation
    AFTER INSERT OR UPDATE OF is_active ON model_versions
    FOR EACH ROW EXECUTE FUNCTION clipd_notify_model_versions();

-- Records as consumed; id is the record's id or topic/partition/offset.
CREATE TABLE records (
    id                text PRIMARY KEY,
    source_topic      text,
    source_partition  integer,
    source_offset     bigint,
    image_url         text NOT NULL,
    caption           text,
    label_set         text,
    metadata          jsonb,
    received_at       timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX records_source ON records (source_topic, source_partition, source_offset);

-- Embeddings per record and model version. The vector type follows clipd_vector_backend();
-- `dimension` is derived from the image vector and must match the model version's.
DO $$
DECLARE
    vector_type text := CASE WHEN clipd_vector_backend() = 'pgvector' THEN 'vector' ELSE 'real[]' END;
    dims_function text := CASE WHEN clipd_vector_backend() = 'pgvector' THEN 'vector_dims' ELSE 'cardinality' END;
BEGIN
    EXECUTE format($t$
        CREATE TABLE embeddings (
            record_id              text NOT NULL REFERENCES records (id) ON DELETE CASCADE,
            model_version_id       bigint NOT NULL,
            dimension              integer GENERATED ALWAYS AS (%2$s(image_embedding)) STORED,
            image_embedding        %1$s NOT NULL,
            text_embedding         %1$s,
            image_text_similarity  real,
            created_at             timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (record_id, model_version_id),
            FOREIGN KEY (model_version_id, dimension) REFERENCES model_versions (id, embedding_dim),
            CHECK (text_embedding IS NULL OR %2$s(text_embedding) = %2$s(image_embedding))
        )$t$, vector_type, dims_function);
    -- Embeddings are incompressible floats: skip TOAST's compression attempt (pgvector's type
    -- already defaults to this).
    EXECUTE 'ALTER TABLE embeddings ALTER COLUMN image_embedding SET STORAGE EXTERNAL, '
            'ALTER COLUMN text_embedding SET STORAGE EXTERNAL';
END
$$;
CREATE INDEX embeddings_model_version ON embeddings (model_version_id);

-- With pgvector: one HNSW cosine index per model version and vector column, on an expression
-- that fixes the dimension (HNSW needs it) and partial on the version, so searches within a
-- version use exactly its index. Created when the version is inserted. m = 16 and
-- ef_construction = 64 are pgvector's defaults: good recall for 512–1024-d CLIP vectors while
-- keeping per-row insert cost low for a streaming writer.
CREATE FUNCTION clipd_ensure_vector_indexes(version_id bigint, dim integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    column_name text;
BEGIN
    IF clipd_vector_backend() <> 'pgvector' THEN
        RETURN;
    END IF;
    FOREACH column_name IN ARRAY ARRAY['image_embedding', 'text_embedding'] LOOP
        EXECUTE format(
            'CREATE INDEX IF NOT EXISTS %I ON embeddings USING hnsw ((%I::vector(%s)) vector_cosine_ops) '
            'WITH (m = 16, ef_construction = 64) WHERE model_version_id = %s',
            format('embeddings_%s_hnsw_v%s', column_name, version_id), column_name, dim, version_id);
    END LOOP;
END
$$;

CREATE FUNCTION clipd_model_versions_indexes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM clipd_ensure_vector_indexes(NEW.id, NEW.embedding_dim);
    RETURN NULL;
END
$$;
CREATE TRIGGER model_versions_vector_indexes
    AFTER INSERT ON model_versions
    FOR EACH ROW EXECUTE FUNCTION clipd_model_versions_indexes();

-- Zero-shot vocabularies. Editable in plain SQL: any change bumps label_sets.version (once per
-- transaction) and NOTIFYs clipd_label_sets with the set's name, so daemons reload it.
CREATE FUNCTION clipd_templates_are_valid(templates text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT cardinality(templates) > 0 AND bool_and(strpos(t, '{}') > 0) FROM unnest(templates) AS t
$$;

CREATE TABLE label_sets (
    name         text PRIMARY KEY,
    templates    text[] NOT NULL CHECK (clipd_templates_are_valid(templates)),
    description  text,
    version      integer NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE labels (
    label_set  text NOT NULL REFERENCES label_sets (name) ON DELETE CASCADE ON UPDATE CASCADE,
    label      text NOT NULL CHECK (label <> ''),
    position   integer NOT NULL,
    -- Minimum probability for this label's tag to be written (NULL: always written).
    threshold  real CHECK (threshold >= 0 AND threshold <= 1),
    PRIMARY KEY (label_set, label)
);

CREATE FUNCTION clipd_label_sets_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
CREATE TRIGGER label_sets_bump_version
    BEFORE UPDATE ON label_sets
    FOR EACH ROW EXECUTE FUNCTION clipd_label_sets_bump_version();

CREATE FUNCTION clipd_label_sets_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Identical payloads in one transaction are delivered once.
    PERFORM pg_notify('clipd_label_sets', CASE WHEN TG_OP = 'DELETE' THEN OLD.name ELSE NEW.name END);
    RETURN NULL;
END
$$;
CREATE TRIGGER label_sets_notify
    AFTER INSERT OR UPDATE OR DELETE ON label_sets
    FOR EACH ROW EXECUTE FUNCTION clipd_label_sets_notify();

-- A change to a set's labels touches the set (once per transaction: now() is the transaction's
-- start time), which bumps its version and notifies.
CREATE FUNCTION clipd_labels_touch_set() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE label_sets SET updated_at = now()
     WHERE name IN (CASE WHEN TG_OP <> 'INSERT' THEN OLD.label_set END,
                    CASE WHEN TG_OP <> 'DELETE' THEN NEW.label_set END)
       AND updated_at <> now();
    RETURN NULL;
END
$$;
CREATE TRIGGER labels_touch_set
    AFTER INSERT OR UPDATE OR DELETE ON labels
    FOR EACH ROW EXECUTE FUNCTION clipd_labels_touch_set();

-- Zero-shot tags per record, model version and label set; rank 1 is the best label.
CREATE TABLE tags (
    record_id         text NOT NULL REFERENCES records (id) ON DELETE CASCADE,
    model_version_id  bigint NOT NULL REFERENCES model_versions (id),
    label_set         text NOT NULL,
    label             text NOT NULL,
    score             real NOT NULL,
    rank              integer NOT NULL CHECK (rank >= 1),
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (record_id, model_version_id, label_set, label)
);
CREATE INDEX tags_label_score ON tags (label, score DESC);
CREATE INDEX tags_model_version ON tags (model_version_id);

-- Fine-tuning runs; inserting a row schedules one (NOTIFY clipd_finetune_runs, payload = id).
CREATE TABLE finetune_runs (
    id                        bigserial PRIMARY KEY,
    status                    text NOT NULL DEFAULT 'scheduled'
                              CHECK (status IN ('scheduled', 'running', 'finished', 'failed', 'cancelled')),
    base_model_version_id     bigint REFERENCES model_versions (id),
    result_model_version_id   bigint REFERENCES model_versions (id),
    parameters                jsonb NOT NULL DEFAULT '{}',
    results                   jsonb,
    error                     text,
    claimed_by                text,
    scheduled_at              timestamptz NOT NULL DEFAULT now(),
    started_at                timestamptz,
    finished_at               timestamptz
);
CREATE INDEX finetune_runs_pending ON finetune_runs (scheduled_at) WHERE status = 'scheduled';

-- Atomically hands the oldest scheduled run to one worker (others skip it), marking it running.
--   SELECT * FROM clipd_claim_finetune_run('host-1');
CREATE FUNCTION clipd_claim_finetune_run(worker text) RETURNS SETOF finetune_runs
LANGUAGE sql AS $$
    UPDATE finetune_runs SET status = 'running', claimed_by = worker, started_at = now()
     WHERE id = (SELECT id FROM finetune_runs WHERE status = 'scheduled'
                  ORDER BY scheduled_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING *
$$;

CREATE FUNCTION clipd_finetune_runs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('clipd_finetune_runs', NEW.id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER finetune_runs_notify
    AFTER INSERT ON finetune_runs
    FOR EACH ROW EXECUTE FUNCTION clipd_finetune_runs_notify();

-- Dead letters: machine-readable class, message, the raw message bytes and where it came from.
-- Unique per source position so a replayed message is recorded once.
CREATE TABLE failed_records (
    id                bigserial PRIMARY KEY,
    record_id         text,
    source_topic      text,
    source_partition  integer,
    source_offset     bigint,
    error_class       text NOT NULL,
    error_message     text NOT NULL,
    raw_payload       bytea,
    failed_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source_topic, source_partition, source_offset)
);
CREATE INDEX failed_records_error_class ON failed_records (error_class, failed_at);

-- The next offset to consume per group/topic/partition, written in the same transaction as the
-- rows it covers, so a restart resumes exactly after what was stored.
CREATE TABLE consumer_offsets (
    consumer_group  text NOT NULL,
    topic           text NOT NULL,
    partition       integer NOT NULL CHECK (partition >= 0),
    next_offset     bigint NOT NULL CHECK (next_offset >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);
