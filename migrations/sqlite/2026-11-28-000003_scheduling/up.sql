-- Scheduling: providers, hours, time off, closures, appointment types, appointments,
-- their history, idempotency keys, calendar feed tokens, public appointment requests.
CREATE TABLE providers (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    time_zone TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Weekly working intervals on the provider's wall clock; weekday 1 = Monday … 7 = Sunday.
CREATE TABLE provider_hours (
    provider_id TEXT NOT NULL REFERENCES providers (id),
    weekday BIGINT NOT NULL,
    start_minute BIGINT NOT NULL,
    end_minute BIGINT NOT NULL,
    PRIMARY KEY (provider_id, weekday, start_minute)
);

CREATE TABLE provider_time_off (
    id TEXT PRIMARY KEY NOT NULL,
    provider_id TEXT NOT NULL REFERENCES providers (id),
    starts_at TIMESTAMP NOT NULL,
    ends_at TIMESTAMP NOT NULL,
    reason TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX provider_time_off_by_provider ON provider_time_off (provider_id, starts_at);

-- Days the whole clinic is closed, as dates on the clinic's calendar.
CREATE TABLE clinic_closures (
    date TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE appointment_types (
    code TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    duration_minutes BIGINT NOT NULL,
    buffer_before_minutes BIGINT NOT NULL,
    buffer_after_minutes BIGINT NOT NULL,
    min_notice_minutes BIGINT NOT NULL,
    horizon_days BIGINT NOT NULL,
    publicly_requestable BOOLEAN NOT NULL,
    active BOOLEAN NOT NULL,
    position BIGINT NOT NULL,
    version BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE appointments (
    id TEXT PRIMARY KEY NOT NULL,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    provider_id TEXT NOT NULL REFERENCES providers (id),
    type_code TEXT NOT NULL REFERENCES appointment_types (code),
    starts_at TIMESTAMP NOT NULL,
    ends_at TIMESTAMP NOT NULL,
    -- What the appointment holds, its type's buffers included.
    blocked_from TIMESTAMP NOT NULL,
    blocked_until TIMESTAMP NOT NULL,
    status TEXT NOT NULL,
    note TEXT,
    cancel_reason TEXT,
    -- iCalendar SEQUENCE: grows with every change the patient should see.
    sequence BIGINT NOT NULL,
    version BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX appointments_by_provider ON appointments (provider_id, blocked_from);
CREATE INDEX appointments_by_patient ON appointments (patient_id, starts_at);
CREATE INDEX appointments_by_start ON appointments (starts_at);

-- Who changed what and when.
CREATE TABLE appointment_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    appointment_id TEXT NOT NULL REFERENCES appointments (id),
    at TIMESTAMP NOT NULL,
    actor_token_id TEXT,
    action TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX appointment_history_by_appointment ON appointment_history (appointment_id, id);

CREATE TABLE idempotency_keys (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE calendar_feed_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    provider_id TEXT NOT NULL REFERENCES providers (id),
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);

CREATE TABLE appointment_requests (
    id TEXT PRIMARY KEY NOT NULL,
    reference TEXT NOT NULL UNIQUE,
    given_name TEXT NOT NULL,
    family_name TEXT NOT NULL,
    email TEXT NOT NULL,
    phone TEXT NOT NULL,
    preferred_times TEXT NOT NULL,
    type_code TEXT NOT NULL REFERENCES appointment_types (code),
    consent_to_contact BOOLEAN NOT NULL,
    status TEXT NOT NULL,
    decline_reason TEXT,
    patient_id TEXT REFERENCES patients (id),
    appointment_id TEXT REFERENCES appointments (id),
    handled_by TEXT,
    handled_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX appointment_requests_by_status ON appointment_requests (status, id);
