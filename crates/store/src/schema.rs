//! Tables shared by both backends. Written by hand (diesel's print-schema differs per
//! backend): only portable types — Text, BigInt, Bool, Timestamp (UTC), Nullable.

diesel::table! {
    api_tokens (id) {
        id -> Text,
        name -> Text,
        token_hash -> Text,
        scopes -> Text,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    patients (id) {
        id -> Text,
        given_name -> Text,
        family_name -> Text,
        email -> Nullable<Text>,
        phone -> Nullable<Text>,
        date_of_birth -> Nullable<Text>,
        time_zone -> Text,
        preferred_language -> Text,
        email_consent -> Bool,
        notes -> Nullable<Text>,
        search_key -> Text,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        archived_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        occurred_at -> Timestamp,
        actor_token_id -> Nullable<Text>,
        action -> Text,
        subject_type -> Text,
        subject_id -> Text,
        request_id -> Nullable<Text>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(api_tokens, patients, audit_events);
