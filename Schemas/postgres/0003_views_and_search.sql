-- Views and functions that make the common questions one SELECT.

-- The active model version (zero or one row).
CREATE VIEW active_model_version AS
    SELECT * FROM model_versions WHERE is_active;

-- Tags of the active model with their records: "what is in this image?"
--   SELECT label, score FROM latest_tags WHERE record_id = 'sku-1' ORDER BY rank;
CREATE VIEW latest_tags AS
    SELECT t.record_id, r.image_url, r.caption, t.label_set, t.label, t.score, t.rank,
           t.model_version_id, m.name AS model_version, t.created_at
      FROM tags t
      JOIN model_versions m ON m.id = t.model_version_id AND m.is_active
      JOIN records r ON r.id = t.record_id;

-- Records whose tag `label` scores at least `min_score` under the active model, best first:
--   SELECT * FROM records_tagged('bicycle', 0.5);
CREATE FUNCTION records_tagged(tag_label text, min_score real DEFAULT 0)
RETURNS TABLE (record_id text, image_url text, caption text, label_set text, score real, rank integer)
LANGUAGE sql STABLE AS $$
    SELECT record_id, image_url, caption, label_set, score, rank
      FROM latest_tags
     WHERE label = tag_label AND score >= min_score
     ORDER BY score DESC, record_id
$$;

-- Embeddings as real[] whichever storage the database uses.
CREATE VIEW embedding_vectors AS
    SELECT record_id, model_version_id, dimension,
           image_embedding::real[] AS image_embedding,
           text_embedding::real[] AS text_embedding,
           image_text_similarity, created_at
      FROM embeddings;

-- Nearest embeddings of one model version to `query` by cosine distance (0 = same direction),
-- against the image vectors (`against` = 'image') or the caption vectors ('text'). With pgvector
-- this uses the version's HNSW index (approximate); otherwise an exact scan.
--   SELECT * FROM clipd_nearest(ARRAY[...]::real[], 3, 10);
CREATE FUNCTION clipd_nearest(query real[], version_id bigint, k integer, against text DEFAULT 'image')
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
        -- An HNSW scan yields at most ef_search rows; widen it (for this transaction) to cover k.
        PERFORM set_config('hnsw.ef_search', least(greatest(k * 2, 40), 1000)::text, true);
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
