DROP TABLE app_secrets;
DROP TABLE outreach;
DROP TABLE settings;
ALTER TABLE outbox DROP COLUMN sent_at;
ALTER TABLE outbox DROP COLUMN provider_message_id;
