-- Tokens are looked up by their hash alone to tell "token from another
-- round" apart from "unknown token".
CREATE INDEX round_tokens_token_hash ON round_tokens (token_hash);
