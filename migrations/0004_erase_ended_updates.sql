-- No individual update outlives its round: the round close now erases the
-- sealed ciphertexts of the round it ends (in the same transaction that
-- publishes the release), keeping only each update's receipt, token hash
-- and sample count. This erases the ciphertexts of rounds that ended
-- before. (PostgreSQL keeps the old row versions on disk until VACUUM
-- reclaims them; run VACUUM updates after this migration to drop them.)
UPDATE updates SET box = ''::bytea
    WHERE box <> ''::bytea
      AND round_id IN (SELECT id FROM rounds WHERE state NOT IN ('open', 'closing'));
