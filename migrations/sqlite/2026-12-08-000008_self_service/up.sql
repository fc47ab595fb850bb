-- Patient self-service from the links in emails (issue 17).
-- Who acted, when it was a patient's link: the link's kind and subject (never a patient id),
-- beside the token on audit events and appointment history.
ALTER TABLE audit_events ADD COLUMN actor_link TEXT;
ALTER TABLE appointment_history ADD COLUMN actor_link TEXT;
-- When the patient confirmed the visit from their link; cleared by a reschedule.
ALTER TABLE appointments ADD COLUMN patient_confirmed_at TIMESTAMP;
-- Revoking a patient's links bumps the generation every link carries: links signed with an
-- older one stop working. No row means generation 0.
CREATE TABLE patient_link_state (
    patient_id TEXT PRIMARY KEY NOT NULL REFERENCES patients (id),
    generation BIGINT NOT NULL,
    revoked_at TIMESTAMP NOT NULL,
    revoked_by_token_id TEXT
);
