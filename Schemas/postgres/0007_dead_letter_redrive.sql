-- Dead-letter redrive (`clipd dlq list|replay`): the original message key is kept next to the
-- exact payload so a replay republishes the message as it was, and a replayed dead letter is
-- marked so a second replay does not send it again.
ALTER TABLE failed_records ADD COLUMN raw_key bytea;
ALTER TABLE failed_records ADD COLUMN replayed_at timestamptz;
ALTER TABLE failed_records ADD COLUMN replay_count integer NOT NULL DEFAULT 0 CHECK (replay_count >= 0);

-- What a replay looks at: dead letters not yet replayed, oldest first.
CREATE INDEX failed_records_pending ON failed_records (failed_at, id) WHERE replayed_at IS NULL;
