-- Reminders, second part: what the SMTP server answered, the clinic's reminder policy,
-- the staff outreach list, and the secret that signs "stop emailing me" links.
ALTER TABLE outbox ADD COLUMN provider_message_id TEXT;
ALTER TABLE outbox ADD COLUMN sent_at TIMESTAMP;

-- One row per settings document (today only 'reminders'), JSON validated by the app.
CREATE TABLE settings (
    name TEXT PRIMARY KEY NOT NULL,
    body TEXT NOT NULL,
    version BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    updated_by TEXT
);

-- Patients staff must phone. dedupe_key makes each cause one entry however often it is seen.
CREATE TABLE outreach (
    id TEXT PRIMARY KEY NOT NULL,
    dedupe_key TEXT NOT NULL UNIQUE,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    -- refill_unbooked, email_failed, no_email, reminder_not_sent, email_stopped
    reason TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    -- The instant the entry is about (appointment start; for a refill, the start of its due date in the clinic zone).
    refers_to TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    done_at TIMESTAMP,
    done_by TEXT,
    note TEXT
);
CREATE INDEX outreach_open ON outreach (done_at, refers_to);
CREATE INDEX outreach_by_patient ON outreach (patient_id);

CREATE TABLE app_secrets (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
