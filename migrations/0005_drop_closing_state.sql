-- A round goes from 'open' straight to how it ended ('closed', 'abandoned'
-- or 'refused'): the close holds an advisory lock and commits the round's
-- end, its ledger entry and the next round in one transaction, so the
-- 'closing' state of the first schema was never written. It is dropped from
-- the state check and from the one-active-round index.
UPDATE rounds SET state = 'open' WHERE state = 'closing';
ALTER TABLE rounds DROP CONSTRAINT rounds_state_check;
ALTER TABLE rounds ADD CONSTRAINT rounds_state_check
    CHECK (state IN ('open', 'closed', 'abandoned', 'refused'));
DROP INDEX rounds_one_active;
CREATE UNIQUE INDEX rounds_one_active ON rounds ((true)) WHERE state = 'open';
