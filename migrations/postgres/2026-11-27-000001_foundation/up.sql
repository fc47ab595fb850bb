-- Foundation: API tokens, patients, audit events (PostgreSQL).
-- Instants are UTC in TIMESTAMP columns; ids are UUID v7 text; dates are ISO text.
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP,
    revoked_at TIMESTAMP,
    last_used_at TIMESTAMP
);

CREATE TABLE patients (
    id TEXT PRIMARY KEY NOT NULL,
    given_name TEXT NOT NULL,
    family_name TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    date_of_birth TEXT,
    time_zone TEXT NOT NULL,
    preferred_language TEXT NOT NULL,
    email_consent BOOLEAN NOT NULL,
    notes TEXT,
    search_key TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    archived_at TIMESTAMP
);
CREATE INDEX patients_listing ON patients (archived_at, id);

CREATE TABLE audit_events (
    id BIGSERIAL PRIMARY KEY,
    occurred_at TIMESTAMP NOT NULL,
    actor_token_id TEXT,
    action TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    request_id TEXT
);
CREATE INDEX audit_events_subject ON audit_events (subject_type, subject_id, id);
CREATE INDEX audit_events_actor ON audit_events (actor_token_id, id);
