-- Vector indexes that a streaming writer can keep up with (pgvector only; on a real[] database
-- the column below exists but changes nothing, and search stays an exact scan).
--
-- Measured with Benchmarks/pg_writes.sh (results in Benchmarks/results/pg_writes.md): inserting
-- into HNSW graphs is nearly all of a write's cost, and it grows with m (every insert re-prunes the
-- neighbour lists of up to 2·m neighbours). From this migration on, a new model version gets
--   * an HNSW index on its image embeddings only, with m = 6 and ef_construction = 24
--     (before: image and caption embeddings, m = 16, ef_construction = 64);
--   * an index on its caption embeddings only on request:
--       UPDATE model_versions SET index_text_embeddings = true WHERE id = 3;
--     (false drops it again). Without it, caption search is an exact scan of the version's rows.
-- clipd_nearest widens ef_search to at least 200, which brings recall@10 of the sparser graph
-- back above 0.95. Vectors stay `vector` (full float precision): storing halfvec did not make
-- inserts faster.
--
-- Versions created before this migration keep the indexes they have (rebuilding them here would
-- hold a lock on embeddings for the whole build); their index_text_embeddings says whether their
-- caption index exists, and setting it to false drops that index.

ALTER TABLE model_versions ADD COLUMN index_text_embeddings boolean NOT NULL DEFAULT false;

DO $$
BEGIN
    IF clipd_vector_backend() = 'pgvector' THEN
        UPDATE model_versions m SET index_text_embeddings = true
         WHERE EXISTS (SELECT 1 FROM pg_class c
                        WHERE c.relkind = 'i' AND c.relname = format('embeddings_text_embedding_hnsw_v%s', m.id));
    END IF;
END
$$;

-- Creates the version's missing indexes and drops its caption index when it is not wanted.
-- Index names are embeddings_<column>_hnsw_v<id>; clipd_nearest finds them through the planner,
-- so an index rebuilt under the same expression and predicate with other parameters (DROP INDEX,
-- then CREATE INDEX [CONCURRENTLY] … WITH (m = …, ef_construction = …)) is used the same way.
CREATE OR REPLACE FUNCTION clipd_ensure_vector_indexes(version_id bigint, dim integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    with_text boolean;
    column_name text;
    index_name text;
    exists_now boolean;
BEGIN
    IF clipd_vector_backend() <> 'pgvector' THEN
        RETURN;
    END IF;
    SELECT index_text_embeddings INTO with_text FROM model_versions WHERE id = version_id;
    FOREACH column_name IN ARRAY ARRAY['image_embedding', 'text_embedding'] LOOP
        index_name := format('embeddings_%s_hnsw_v%s', column_name, version_id);
        exists_now := to_regclass(quote_ident(index_name)) IS NOT NULL;
        IF column_name = 'image_embedding' OR coalesce(with_text, false) THEN
            IF NOT exists_now THEN
                EXECUTE format(
                    'CREATE INDEX %I ON embeddings USING hnsw ((%I::vector(%s)) vector_cosine_ops) '
                    'WITH (m = 6, ef_construction = 24) WHERE model_version_id = %s',
                    index_name, column_name, dim, version_id);
            END IF;
        ELSIF exists_now THEN
            EXECUTE format('DROP INDEX %I', index_name);
        END IF;
    END LOOP;
END
$$;

DROP TRIGGER model_versions_vector_indexes ON model_versions;
CREATE OR REPLACE FUNCTION clipd_model_versions_indexes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR OLD.index_text_embeddings IS DISTINCT FROM NEW.index_text_embeddings THEN
        PERFORM clipd_ensure_vector_indexes(NEW.id, NEW.embedding_dim);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER model_versions_vector_indexes
    AFTER INSERT OR UPDATE OF index_text_embeddings ON model_versions
    FOR EACH ROW EXECUTE FUNCTION clipd_model_versions_indexes();

-- As in 0003, with ef_search at least 200 (pgvector's default is 40). With pgvector, a column
-- without an index for the version (caption vectors by default) is searched by an exact scan.
CREATE OR REPLACE FUNCTION clipd_nearest(query real[], version_id bigint, k integer, against text DEFAULT 'image')
RETURNS TABLE (record_id text, distance double precision)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    column_name text;
BEGIN
    IF against NOT IN ('image', 'text') THEN
        RAISE EXCEPTION 'against must be image or text, not %', against USING ERRCODE = 'invalid_parameter_value';
    END IF;
    column_name := against || '_embedding';
    IF clipd_vector_backend() = 'pgvector' THEN
        -- An HNSW scan yields at most ef_search rows and finds them better the wider it searches:
        -- widen it (for this transaction) to cover k, and to at least 200 for recall.
        PERFORM set_config('hnsw.ef_search', least(greatest(k * 2, 200), 1000)::text, true);
        -- Literal version id and dimension so the planner matches the partial expression index.
        RETURN QUERY EXECUTE format(
            'SELECT e.record_id, (e.%1$I::vector(%2$s) <=> $1::vector(%2$s))::float8 '
            'FROM embeddings e WHERE e.model_version_id = %3$s AND e.%1$I IS NOT NULL '
            'ORDER BY e.%1$I::vector(%2$s) <=> $1::vector(%2$s) LIMIT $2',
            column_name, cardinality(query), version_id)
        USING query, k;
    ELSE
        RETURN QUERY EXECUTE format(
            'SELECT e.record_id, 1 - clipd_cosine_similarity(e.%1$I, $1) '
            'FROM embeddings e WHERE e.model_version_id = $2 AND e.%1$I IS NOT NULL '
            'ORDER BY 2, 1 LIMIT $3', column_name)
        USING query, version_id, k;
    END IF;
END
$$;
