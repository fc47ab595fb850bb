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
        user_id -> Nullable<Text>,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        email_key -> Text,
        display_name -> Text,
        role -> Text,
        state -> Text,
        password_hash -> Nullable<Text>,
        password_changed_at -> Nullable<Timestamp>,
        credential_version -> BigInt,
        last_sign_in_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
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
        actor_link -> Nullable<Text>,
        actor_user_id -> Nullable<Text>,
    }
}

diesel::table! {
    conditions (id) {
        id -> Text,
        slug -> Text,
        name -> Text,
        summary -> Text,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    articles (id) {
        id -> Text,
        slug -> Text,
        title -> Text,
        summary -> Text,
        body_markdown -> Text,
        body_html -> Text,
        author -> Text,
        status -> Text,
        search_text -> Text,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        published_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    article_tags (article_id, tag) {
        article_id -> Text,
        tag -> Text,
    }
}

diesel::table! {
    article_conditions (article_id, condition_id) {
        article_id -> Text,
        condition_id -> Text,
    }
}

diesel::table! {
    article_revisions (article_id, number) {
        article_id -> Text,
        number -> BigInt,
        slug -> Text,
        title -> Text,
        summary -> Text,
        body_markdown -> Text,
        tags -> Text,
        condition_ids -> Text,
        edited_by -> Nullable<Text>,
        edited_at -> Timestamp,
    }
}

diesel::table! {
    screening_criteria (code) {
        code -> Text,
        question -> Text,
        why -> Text,
        required_for_trial -> Bool,
        required_for_implant -> Bool,
        active -> Bool,
        position -> BigInt,
        version -> BigInt,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    screenings (id) {
        id -> Text,
        patient_id -> Text,
        clinician -> Text,
        screened_on -> Text,
        result -> Text,
        explanation -> Text,
        recorded_by -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    screening_answers (screening_id, criterion_code) {
        screening_id -> Text,
        criterion_code -> Text,
        question -> Text,
        required_for_trial -> Bool,
        required_for_implant -> Bool,
        position -> BigInt,
        answer -> Text,
        note -> Nullable<Text>,
    }
}

diesel::joinable!(article_tags -> articles (article_id));
diesel::joinable!(article_conditions -> articles (article_id));
diesel::joinable!(article_conditions -> conditions (condition_id));
diesel::joinable!(article_revisions -> articles (article_id));
diesel::joinable!(screenings -> patients (patient_id));
diesel::joinable!(screening_answers -> screenings (screening_id));

diesel::allow_tables_to_appear_in_same_query!(
    api_tokens,
    users,
    patients,
    audit_events,
    conditions,
    articles,
    article_tags,
    article_conditions,
    article_revisions,
    screening_criteria,
    screenings,
    screening_answers,
    providers,
    provider_hours,
    provider_time_off,
    clinic_closures,
    appointment_types,
    appointments,
    appointment_history,
    idempotency_keys,
    calendar_feed_tokens,
    appointment_requests,
    pump_models,
    drugs,
    forecast_policy,
    pumps,
    pump_fills,
    pump_programs,
    outbox,
    settings,
    outreach,
    app_secrets,
    patient_link_state,
);

diesel::table! {
    /// The generation of a patient's self-service links; revoking bumps it (issue 17).
    patient_link_state (patient_id) {
        patient_id -> Text,
        generation -> BigInt,
        revoked_at -> Timestamp,
        revoked_by_token_id -> Nullable<Text>,
    }
}

diesel::table! {
    providers (id) {
        id -> Text,
        name -> Text,
        role -> Text,
        active -> Bool,
        time_zone -> Text,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    provider_hours (provider_id, weekday, start_minute) {
        provider_id -> Text,
        weekday -> BigInt,
        start_minute -> BigInt,
        end_minute -> BigInt,
    }
}

diesel::table! {
    provider_time_off (id) {
        id -> Text,
        provider_id -> Text,
        starts_at -> Timestamp,
        ends_at -> Timestamp,
        reason -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    clinic_closures (date) {
        date -> Text,
        name -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    appointment_types (code) {
        code -> Text,
        name -> Text,
        duration_minutes -> BigInt,
        buffer_before_minutes -> BigInt,
        buffer_after_minutes -> BigInt,
        min_notice_minutes -> BigInt,
        horizon_days -> BigInt,
        publicly_requestable -> Bool,
        active -> Bool,
        position -> BigInt,
        version -> BigInt,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    appointments (id) {
        id -> Text,
        patient_id -> Text,
        provider_id -> Text,
        type_code -> Text,
        starts_at -> Timestamp,
        ends_at -> Timestamp,
        blocked_from -> Timestamp,
        blocked_until -> Timestamp,
        status -> Text,
        note -> Nullable<Text>,
        cancel_reason -> Nullable<Text>,
        sequence -> BigInt,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        patient_confirmed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    appointment_history (id) {
        id -> BigInt,
        appointment_id -> Text,
        at -> Timestamp,
        actor_token_id -> Nullable<Text>,
        action -> Text,
        detail -> Nullable<Text>,
        actor_link -> Nullable<Text>,
        actor_user_id -> Nullable<Text>,
    }
}

diesel::table! {
    idempotency_keys (scope, key) {
        scope -> Text,
        key -> Text,
        request_hash -> Text,
        resource_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    calendar_feed_tokens (id) {
        id -> Text,
        provider_id -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    appointment_requests (id) {
        id -> Text,
        reference -> Text,
        given_name -> Text,
        family_name -> Text,
        email -> Text,
        phone -> Text,
        preferred_times -> Text,
        type_code -> Text,
        consent_to_contact -> Bool,
        status -> Text,
        decline_reason -> Nullable<Text>,
        patient_id -> Nullable<Text>,
        appointment_id -> Nullable<Text>,
        handled_by -> Nullable<Text>,
        handled_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::joinable!(provider_hours -> providers (provider_id));
diesel::joinable!(provider_time_off -> providers (provider_id));
diesel::joinable!(appointments -> providers (provider_id));
diesel::joinable!(appointments -> patients (patient_id));
diesel::joinable!(appointments -> appointment_types (type_code));
diesel::joinable!(appointment_history -> appointments (appointment_id));

diesel::table! {
    pump_models (code) {
        code -> Text,
        manufacturer -> Text,
        model -> Text,
        reservoir_ml -> Text,
        default_alarm_ml -> Text,
        service_life_months -> BigInt,
        source -> Text,
        version -> BigInt,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    drugs (code) {
        code -> Text,
        name -> Text,
        unit -> Text,
        stability_undiluted_days -> Nullable<BigInt>,
        stability_diluted_days -> Nullable<BigInt>,
        stability_first_fill_days -> Nullable<BigInt>,
        source -> Text,
        version -> BigInt,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    forecast_policy (id) {
        id -> Text,
        margin_days -> BigInt,
        over_infusion_factor -> Nullable<Text>,
        version -> BigInt,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    pumps (id) {
        id -> Text,
        patient_id -> Text,
        model_code -> Text,
        serial_number -> Text,
        implanted_on -> Text,
        reservoir_ml -> Text,
        alarm_ml -> Text,
        replacement_indicator_on -> Nullable<Text>,
        replacement_deadline -> Text,
        status -> Text,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        due_date -> Text,
        due_binding -> Text,
        alarm_at -> Nullable<Timestamp>,
        forecast -> Text,
        forecast_at -> Timestamp,
    }
}

diesel::table! {
    pump_fills (id) {
        id -> Text,
        pump_id -> Text,
        filled_at -> Timestamp,
        drug_code -> Text,
        concentration -> Text,
        concentration_unit -> Text,
        diluted -> Bool,
        volume_ml -> Text,
        residual_ml -> Text,
        prime_ml -> Text,
        first_fill -> Bool,
        stability_days -> BigInt,
        clinician -> Text,
        expected_residual_ml -> Nullable<Text>,
        discrepancy -> Bool,
        recorded_by -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    pump_programs (id) {
        id -> Text,
        pump_id -> Text,
        effective_at -> Timestamp,
        kind -> Text,
        daily_dose -> Nullable<Text>,
        steps -> Nullable<Text>,
        bolus_dose -> Text,
        bolus_max_per_day -> BigInt,
        recorded_by -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::joinable!(pumps -> patients (patient_id));
diesel::joinable!(pumps -> pump_models (model_code));
diesel::joinable!(pump_fills -> pumps (pump_id));
diesel::joinable!(pump_fills -> drugs (drug_code));
diesel::joinable!(pump_programs -> pumps (pump_id));

diesel::table! {
    outbox (id) {
        id -> Text,
        dedupe_key -> Text,
        kind -> Text,
        subject_type -> Text,
        subject_id -> Text,
        patient_id -> Nullable<Text>,
        refers_to -> Timestamp,
        due_at -> Timestamp,
        state -> Text,
        attempts -> BigInt,
        next_attempt_at -> Timestamp,
        lease_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        message_id -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        provider_message_id -> Nullable<Text>,
        sent_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    settings (name) {
        name -> Text,
        body -> Text,
        version -> BigInt,
        updated_at -> Timestamp,
        updated_by -> Nullable<Text>,
    }
}

diesel::table! {
    outreach (id) {
        id -> Text,
        dedupe_key -> Text,
        patient_id -> Text,
        reason -> Text,
        subject_type -> Text,
        subject_id -> Text,
        refers_to -> Timestamp,
        created_at -> Timestamp,
        done_at -> Nullable<Timestamp>,
        done_by -> Nullable<Text>,
        note -> Nullable<Text>,
    }
}

diesel::table! {
    app_secrets (name) {
        name -> Text,
        value -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(outbox -> patients (patient_id));
diesel::joinable!(outreach -> patients (patient_id));
