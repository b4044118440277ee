-- An update request finds its token's newest round by the token's hash
-- (ORDER BY round_id DESC LIMIT 1). With an index on the hash alone, a
-- planner without fresh statistics (a round's tokens are inserted in
-- seconds, autovacuum analyzes a minute later) preferred the primary key
-- (round_id, token_hash) scanned backwards for the order, testing the hash
-- of every token of the round on every request: a round of n devices cost
-- O(n) per update, O(n^2) in all. An index on (hash, round) answers the
-- lookup and its order in one probe, whatever the statistics say.
DROP INDEX round_tokens_token_hash;
CREATE INDEX round_tokens_token_hash ON round_tokens (token_hash, round_id);
