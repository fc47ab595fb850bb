//! Appointment types: durations, buffers, notice and horizon, whether patients may request
//! them publicly. Clinic-editable; the defaults are seeded on a new database.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use clinic_domain::scheduling::TypeRules;
use clinic_store::schema::appointment_types;
use clinic_store::{dialect, time, DbConnection};
use diesel::prelude::*;

use crate::{stale, SchedulingError};

#[derive(Debug, Clone, PartialEq, Queryable, Insertable)]
#[diesel(table_name = appointment_types)]
pub struct AppointmentType {
    pub code: String,
    pub name: String,
    pub duration_minutes: i64,
    pub buffer_before_minutes: i64,
    pub buffer_after_minutes: i64,
    pub min_notice_minutes: i64,
    pub horizon_days: i64,
    pub publicly_requestable: bool,
    pub active: bool,
    pub position: i64,
    pub version: i64,
    pub updated_at: NaiveDateTime,
}

impl AppointmentType {
    pub fn rules(&self) -> TypeRules {
        TypeRules {
            duration: Duration::minutes(self.duration_minutes),
            buffer_before: Duration::minutes(self.buffer_before_minutes),
            buffer_after: Duration::minutes(self.buffer_after_minutes),
            min_notice: Duration::minutes(self.min_notice_minutes),
            horizon: Duration::days(self.horizon_days),
        }
    }
}

/// The code of the type used for pump refills (the pumps capability books these).
pub const REFILL: &str = "refill";

/// Seed defaults: (code, name, minutes, buffer before, buffer after, publicly requestable).
/// Durations are the clinic's starting point (issue 4); the clinic edits them freely.
const DEFAULTS: [(&str, &str, i64, i64, i64, bool); 8] = [
    ("consultation", "Consultation", 60, 0, 10, true),
    ("psychological_evaluation", "Psychological evaluation", 60, 0, 10, true),
    ("trial", "Trial", 240, 15, 15, false),
    ("implant", "Implant", 180, 30, 30, false),
    (REFILL, "Refill", 30, 0, 10, false),
    ("follow_up", "Follow-up", 20, 0, 5, true),
    ("pump_programming", "Pump programming", 20, 0, 5, false),
    ("pump_replacement", "Pump replacement", 150, 30, 30, false),
];

/// Adds the default types that are missing; returns how many were added.
pub fn seed(conn: &mut DbConnection, now: DateTime<Utc>) -> Result<usize, SchedulingError> {
    dialect::write_transaction(conn, |conn| {
        let mut added = 0;
        for (i, (code, name, minutes, before, after, public)) in DEFAULTS.into_iter().enumerate() {
            let exists: i64 = appointment_types::table.find(code).count().get_result(conn)?;
            if exists == 0 {
                diesel::insert_into(appointment_types::table)
                    .values(AppointmentType {
                        code: code.to_owned(),
                        name: name.to_owned(),
                        duration_minutes: minutes,
                        buffer_before_minutes: before,
                        buffer_after_minutes: after,
                        min_notice_minutes: 60,
                        horizon_days: 180,
                        publicly_requestable: public,
                        active: true,
                        position: (i as i64 + 1) * 10,
                        version: 1,
                        updated_at: time::to_db(now),
                    })
                    .execute(conn)?;
                added += 1;
            }
        }
        Ok(added)
    })
}

pub fn list(conn: &mut DbConnection) -> Result<Vec<AppointmentType>, SchedulingError> {
    Ok(appointment_types::table
        .order((appointment_types::position, appointment_types::code))
        .load(conn)?)
}

pub fn get(conn: &mut DbConnection, code: &str) -> Result<AppointmentType, SchedulingError> {
    appointment_types::table
        .find(code)
        .first(conn)
        .optional()?
        .ok_or(SchedulingError::NotFound("appointment type"))
}

/// Validated changes to a type.
#[derive(Debug, Clone, Default)]
pub struct TypeChanges {
    pub name: Option<String>,
    pub duration_minutes: Option<i64>,
    pub buffer_before_minutes: Option<i64>,
    pub buffer_after_minutes: Option<i64>,
    pub min_notice_minutes: Option<i64>,
    pub horizon_days: Option<i64>,
    pub publicly_requestable: Option<bool>,
    pub active: Option<bool>,
}

pub fn update(
    conn: &mut DbConnection,
    code: &str,
    expected_version: i64,
    c: TypeChanges,
    now: DateTime<Utc>,
) -> Result<AppointmentType, SchedulingError> {
    dialect::write_transaction(conn, |conn| {
        let t = get(conn, code)?;
        if t.version != expected_version {
            return Err(stale(t.version));
        }
        let written = diesel::update(
            appointment_types::table
                .filter(appointment_types::code.eq(code))
                .filter(appointment_types::version.eq(expected_version)),
        )
        .set((
            appointment_types::name.eq(c.name.unwrap_or(t.name)),
            appointment_types::duration_minutes.eq(c.duration_minutes.unwrap_or(t.duration_minutes)),
            appointment_types::buffer_before_minutes.eq(c.buffer_before_minutes.unwrap_or(t.buffer_before_minutes)),
            appointment_types::buffer_after_minutes.eq(c.buffer_after_minutes.unwrap_or(t.buffer_after_minutes)),
            appointment_types::min_notice_minutes.eq(c.min_notice_minutes.unwrap_or(t.min_notice_minutes)),
            appointment_types::horizon_days.eq(c.horizon_days.unwrap_or(t.horizon_days)),
            appointment_types::publicly_requestable.eq(c.publicly_requestable.unwrap_or(t.publicly_requestable)),
            appointment_types::active.eq(c.active.unwrap_or(t.active)),
            appointment_types::version.eq(expected_version + 1),
            appointment_types::updated_at.eq(time::to_db(now)),
        ))
        .execute(conn)?;
        if written != 1 {
            return Err(stale(expected_version + 1));
        }
        get(conn, code)
    })
}
