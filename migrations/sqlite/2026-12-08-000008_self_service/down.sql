DROP TABLE patient_link_state;
ALTER TABLE appointments DROP COLUMN patient_confirmed_at;
ALTER TABLE appointment_history DROP COLUMN actor_link;
ALTER TABLE audit_events DROP COLUMN actor_link;
