DROP TABLE audit_events;
DROP TABLE patients;
DROP TABLE api_tokens;
