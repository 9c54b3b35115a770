-- The periodic fine-tune job (clipd finetune run): rejected runs, loss curves and metrics, and
-- runs scheduled for a later time.

-- 'rejected': trained and evaluated, but the promotion gate kept the old model (see results.reasons).
ALTER TABLE finetune_runs DROP CONSTRAINT finetune_runs_status_check;
ALTER TABLE finetune_runs ADD CONSTRAINT finetune_runs_status_check
    CHECK (status IN ('scheduled', 'running', 'finished', 'rejected', 'failed', 'cancelled'));

-- Per-step training loss (updated while the run trains) and the evaluation before and after,
-- with every WiSE-FT mixing weight tried.
ALTER TABLE finetune_runs ADD COLUMN loss_curve real[];
ALTER TABLE finetune_runs ADD COLUMN metrics jsonb;

-- A run whose scheduled_at lies in the future waits until then:
--   INSERT INTO finetune_runs (scheduled_at, parameters) VALUES (now() + interval '1 hour', '{"steps": 200}');
CREATE OR REPLACE FUNCTION clipd_claim_finetune_run(worker text) RETURNS SETOF finetune_runs
LANGUAGE sql AS $$
    UPDATE finetune_runs SET status = 'running', claimed_by = worker, started_at = now()
     WHERE id = (SELECT id FROM finetune_runs WHERE status = 'scheduled' AND scheduled_at <= now()
                  ORDER BY scheduled_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING *
$$;
