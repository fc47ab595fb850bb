ALTER TABLE appointment_history DROP COLUMN actor_user_id;
ALTER TABLE audit_events DROP COLUMN actor_user_id;
DROP INDEX api_tokens_by_user;
ALTER TABLE api_tokens DROP COLUMN user_id;
DROP TABLE users;
