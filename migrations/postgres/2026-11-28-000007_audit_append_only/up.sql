-- The audit log is append-only in the database, not only by convention: an UPDATE or DELETE
-- of audit_events raises, whoever sends it (the app's user owns the table, so grants alone
-- cannot stop it). Purging old events for retention means dropping this trigger on purpose.
CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$;

CREATE TRIGGER audit_events_append_only
BEFORE UPDATE OR DELETE ON audit_events
FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
