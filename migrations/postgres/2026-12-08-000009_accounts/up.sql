-- Staff accounts (issue 18): people who sign in, beside the API tokens.
-- `email_key` is the address lower-cased: an address is unique whatever its case, and shown
-- as it was entered. `credential_version` grows with every password set through a link, so
-- a set-password link (signed, naming the version it was made at) works once.
CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    -- admin, clinician, scheduler, editor, viewer
    role TEXT NOT NULL,
    -- active, disabled
    state TEXT NOT NULL,
    -- PHC string (argon2id); none until the user sets one
    password_hash TEXT,
    password_changed_at TIMESTAMP,
    credential_version BIGINT NOT NULL,
    last_sign_in_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL
);
-- A personal token carries the user who made it; disabling the user ends it.
ALTER TABLE api_tokens ADD COLUMN user_id TEXT REFERENCES users (id);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id);
-- Who acted, when a person did (with a session or a personal token), beside the token.
ALTER TABLE audit_events ADD COLUMN actor_user_id TEXT;
ALTER TABLE appointment_history ADD COLUMN actor_user_id TEXT;
