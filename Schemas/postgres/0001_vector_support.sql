-- Vector storage for embeddings.
--
-- With the pgvector extension available on the server, embeddings are stored as `vector` and
-- searched through per-model-version HNSW cosine indexes; without it they are `real[]` and
-- searched by an exact scan. This migration decides once, per database, and records the choice in
-- clipd_vector_backend(); everything later (columns, indexes, search functions) follows it, so the
-- same SQL works on both kinds of server. Reading vectors as `real[]` (`column::real[]`) and
-- writing them from `real[]` values works in both.

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS vector;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'pgvector is available but this role may not CREATE EXTENSION vector; embeddings will use real[] and exact search';
        END;
    END IF;
END
$$;

-- 'pgvector' or 'array', fixed when this migration ran (later installing pgvector does not
-- change existing columns).
DO $$
BEGIN
    EXECUTE format(
        'CREATE FUNCTION clipd_vector_backend() RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS %L',
        CASE WHEN EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector')
             THEN 'SELECT ''pgvector''::text' ELSE 'SELECT ''array''::text' END);
END
$$;

-- Cosine similarity of two real[] vectors (NULL when lengths differ or a norm is zero).
CREATE FUNCTION clipd_cosine_similarity(a real[], b real[]) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN cardinality(a) = cardinality(b) THEN
        (SELECT sum(x::float8 * y) / nullif(sqrt(sum(x::float8 * x)) * sqrt(sum(y::float8 * y)), 0)
           FROM unnest(a, b) AS pair(x, y))
    END
$$;

DO $$
BEGIN
    IF clipd_vector_backend() = 'pgvector' THEN
        EXECUTE $f$
            CREATE FUNCTION clipd_cosine_similarity(a vector, b vector) RETURNS double precision
            LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS 'SELECT 1 - (a <=> b)'
        $f$;
    END IF;
END
$$;
