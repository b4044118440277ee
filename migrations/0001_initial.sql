-- fedagg initial schema: rounds, participation tokens, sealed updates, model
-- versions and the append-only privacy ledger. schema_migrations itself is
-- created by the migration runner before this file runs (it must exist to
-- record this file); it is listed here for completeness:
--   schema_migrations(name text primary key, sha256 text, applied_at timestamptz)

CREATE TABLE model_versions (
    version         bigint PRIMARY KEY CHECK (version >= 0),
    parent          bigint REFERENCES model_versions (version),
    sha256          bytea NOT NULL CHECK (octet_length(sha256) = 32),
    created_at      timestamptz NOT NULL DEFAULT now(),
    snapshot        bytea NOT NULL,          -- safetensors bytes
    optimizer_state bytea,                   -- server optimizer state after this version
    metrics         jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE TABLE rounds (
    id              bigint PRIMARY KEY,
    base_version    bigint NOT NULL REFERENCES model_versions (version),
    state           text NOT NULL DEFAULT 'open'
                    CHECK (state IN ('open', 'closing', 'closed', 'abandoned', 'refused')),
    min_cohort      integer NOT NULL CHECK (min_cohort > 0),
    sampling_rate   double precision NOT NULL DEFAULT 1
                    CHECK (sampling_rate > 0 AND sampling_rate <= 1),
    opened_at       timestamptz NOT NULL DEFAULT now(),
    deadline        timestamptz NOT NULL,
    ended_at        timestamptz,
    result_version  bigint REFERENCES model_versions (version),
    CHECK ((state = 'closed') = (result_version IS NOT NULL))
);
-- At most one round is open (or closing) at any time.
CREATE UNIQUE INDEX rounds_one_active ON rounds ((true)) WHERE state IN ('open', 'closing');

-- Participation tokens handed out at check-in; only their SHA-256 is stored.
CREATE TABLE round_tokens (
    round_id        bigint NOT NULL REFERENCES rounds (id),
    token_hash      bytea NOT NULL CHECK (octet_length(token_hash) = 32),
    pseudonym_hash  bytea CHECK (octet_length(pseudonym_hash) = 32),  -- keyed hash, never the pseudonym
    issued_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (round_id, token_hash)
);
CREATE UNIQUE INDEX round_tokens_pseudonym ON round_tokens (round_id, pseudonym_hash)
    WHERE pseudonym_hash IS NOT NULL;

CREATE TABLE updates (
    id              bigserial PRIMARY KEY,
    round_id        bigint NOT NULL REFERENCES rounds (id),
    token_hash      bytea NOT NULL CHECK (octet_length(token_hash) = 32),
    receipt         text NOT NULL UNIQUE,
    key_id          text NOT NULL,
    num_samples     bigint NOT NULL CHECK (num_samples > 0),
    box             bytea NOT NULL,          -- the sealed ciphertext, exactly as received
    received_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (round_id, token_hash)
);

CREATE TABLE privacy_ledger (
    seq                 bigint PRIMARY KEY CHECK (seq >= 1),
    kind                text NOT NULL CHECK (kind IN ('release', 'refusal', 'abandonment')),
    round_id            bigint,
    model_version       bigint,
    cumulative_epsilon  double precision NOT NULL,
    entry               text NOT NULL,       -- canonical encoding, hashed and signed
    prev_hash           bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash                bytea NOT NULL UNIQUE CHECK (octet_length(hash) = 32),
    signature           bytea NOT NULL CHECK (octet_length(signature) = 64),
    created_at          timestamptz NOT NULL DEFAULT now()
);

-- The ledger is append-only: rows can be inserted, never changed or removed.
CREATE FUNCTION privacy_ledger_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'privacy_ledger is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER privacy_ledger_no_update BEFORE UPDATE OR DELETE ON privacy_ledger
    FOR EACH ROW EXECUTE FUNCTION privacy_ledger_append_only();
CREATE TRIGGER privacy_ledger_no_truncate BEFORE TRUNCATE ON privacy_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION privacy_ledger_append_only();
