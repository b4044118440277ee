-- Published model versions are append-only, like the privacy ledger: a
-- version, once committed together with its ledger entry, is never changed
-- or removed (the round close checks the ledger against them, and so does
-- `fedagg ledger verify`).
CREATE FUNCTION model_versions_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'model_versions is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER model_versions_no_update BEFORE UPDATE OR DELETE ON model_versions
    FOR EACH ROW EXECUTE FUNCTION model_versions_append_only();
CREATE TRIGGER model_versions_no_truncate BEFORE TRUNCATE ON model_versions
    FOR EACH STATEMENT EXECUTE FUNCTION model_versions_append_only();

-- A change of the configured budget (epsilon_max, delta) is a ledger event
-- of its own, kind 'budget', written before the first entry under the new
-- budget.
ALTER TABLE privacy_ledger DROP CONSTRAINT privacy_ledger_kind_check;
ALTER TABLE privacy_ledger ADD CONSTRAINT privacy_ledger_kind_check
    CHECK (kind IN ('release', 'refusal', 'abandonment', 'budget'));
