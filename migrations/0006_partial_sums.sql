-- The durable record of an open round becomes one sealed partial sum per
-- ingest node instead of every update's ciphertext. A node folds the
-- updates it accepted into its partial sum and commits, in one
-- transaction, the sum (sealed at rest with a key derived from the
-- server's signing seed) together with the batch's receipt rows; the
-- close merges the partial sums and deletes them with the commit that
-- ends the round. Storage per round is O(nodes x model), and no
-- individual update stays in the database.
CREATE TABLE partial_sums (
    round_id    bigint NOT NULL REFERENCES rounds (id),
    node        bytea NOT NULL CHECK (octet_length(node) = 16),
    folded      bigint NOT NULL CHECK (folded > 0),   -- receipt rows it holds
    sealed      bytea NOT NULL,                       -- XChaCha20-Poly1305 of the float sum
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (round_id, node)
);
-- Sealed bytes do not compress: store them out of line without trying.
ALTER TABLE partial_sums ALTER COLUMN sealed SET STORAGE EXTERNAL;

-- A receipt row names the partial sum that holds its update (node), and
-- keeps the identity of its sealed box (SHA-256 of the box's first 48
-- bytes: the ephemeral public key and the tag) so an identical retry is
-- told apart from a reused token without keeping the ciphertext. Rows written before
-- this migration have no node: their ciphertext (box) is the record.
ALTER TABLE updates ADD COLUMN node bytea CHECK (node IS NULL OR octet_length(node) = 16);
ALTER TABLE updates ADD COLUMN seal_id bytea
    CHECK (seal_id IS NULL OR octet_length(seal_id) = 32);
ALTER TABLE updates ALTER COLUMN box SET DEFAULT ''::bytea;
CREATE INDEX updates_round_node ON updates (round_id, node);
UPDATE updates SET seal_id = sha256(substring(box FROM 1 FOR 48)) WHERE box <> ''::bytea;

-- Stored updates of rounds that have ended are erased (the close has
-- erased them since 0004; this catches any written before). Run VACUUM
-- updates afterwards so PostgreSQL drops the old row versions from disk.
UPDATE updates SET box = ''::bytea
    WHERE box <> ''::bytea
      AND round_id IN (SELECT id FROM rounds WHERE state <> 'open');
