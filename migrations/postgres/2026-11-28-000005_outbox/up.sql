-- The email outbox: every email is a row first. A unique dedupe_key makes creating it
-- idempotent; the state machine and lease make sending at-least-once and never lost.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY NOT NULL,
    dedupe_key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    patient_id TEXT REFERENCES patients (id),
    -- The instant the email is about (the appointment's start, the refill due date).
    refers_to TIMESTAMP NOT NULL,
    due_at TIMESTAMP NOT NULL,
    -- pending, sending, sent, failed, void
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    lease_until TIMESTAMP,
    last_error TEXT,
    message_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX outbox_ready ON outbox (state, next_attempt_at);
CREATE INDEX outbox_by_subject ON outbox (subject_type, subject_id);
