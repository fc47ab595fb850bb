//! Providers: who can be booked, their weekly hours and their time off.

use chrono::{DateTime, NaiveDateTime, NaiveTime, Timelike, Utc, Weekday};
use clinic_domain::ids::{ProviderId, TimeOffId};
use clinic_domain::scheduling::{Span, WorkingInterval};
use clinic_domain::time::ClinicZone;
use clinic_store::schema::{provider_hours, provider_time_off, providers};
use clinic_store::{dialect, time, DbConnection};
use diesel::prelude::*;

use crate::{corrupt, stale, SchedulingError};

#[derive(Debug, Clone, PartialEq)]
pub struct Provider {
    pub id: ProviderId,
    pub name: String,
    pub role: String,
    pub active: bool,
    pub time_zone: ClinicZone,
    pub hours: Vec<WorkingInterval>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Validated fields of a provider.
#[derive(Debug, Clone)]
pub struct ProviderFields {
    pub name: String,
    pub role: String,
    pub time_zone: ClinicZone,
    pub hours: Vec<WorkingInterval>,
}

#[derive(Debug, Clone, Default)]
pub struct ProviderChanges {
    pub name: Option<String>,
    pub role: Option<String>,
    pub active: Option<bool>,
    pub time_zone: Option<ClinicZone>,
    /// Replaces the whole week when given.
    pub hours: Option<Vec<WorkingInterval>>,
}

#[derive(Queryable, Insertable)]
#[diesel(table_name = providers)]
struct ProviderRow {
    id: String,
    name: String,
    role: String,
    active: bool,
    time_zone: String,
    version: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

fn weekday_number(d: Weekday) -> i64 {
    i64::from(d.number_from_monday())
}

fn weekday_from(n: i64) -> Option<Weekday> {
    [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ]
    .get(usize::try_from(n - 1).ok()?)
    .copied()
}

fn minute_of(t: NaiveTime) -> i64 {
    i64::from(t.hour() * 60 + t.minute())
}

fn time_of(minute: i64) -> Option<NaiveTime> {
    NaiveTime::from_hms_opt(u32::try_from(minute / 60).ok()?, u32::try_from(minute % 60).ok()?, 0)
}

fn write_hours(conn: &mut DbConnection, id: &str, hours: &[WorkingInterval]) -> Result<(), SchedulingError> {
    diesel::delete(provider_hours::table.filter(provider_hours::provider_id.eq(id))).execute(conn)?;
    for h in hours {
        diesel::insert_into(provider_hours::table)
            .values((
                provider_hours::provider_id.eq(id),
                provider_hours::weekday.eq(weekday_number(h.weekday)),
                provider_hours::start_minute.eq(minute_of(h.start)),
                provider_hours::end_minute.eq(minute_of(h.end)),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// The weekly hours of the given providers, by provider id.
fn hours_of(conn: &mut DbConnection, ids: &[&str]) -> Result<Vec<(String, WorkingInterval)>, SchedulingError> {
    let rows: Vec<(String, i64, i64, i64)> = provider_hours::table
        .filter(provider_hours::provider_id.eq_any(ids))
        .order((
            provider_hours::provider_id,
            provider_hours::weekday,
            provider_hours::start_minute,
        ))
        .load(conn)?;
    rows.into_iter()
        .map(|(p, d, s, e)| {
            Ok((
                p,
                WorkingInterval {
                    weekday: weekday_from(d).ok_or_else(|| corrupt("weekday"))?,
                    start: time_of(s).ok_or_else(|| corrupt("start minute"))?,
                    end: time_of(e).ok_or_else(|| corrupt("end minute"))?,
                },
            ))
        })
        .collect()
}

fn hydrate(conn: &mut DbConnection, rows: Vec<ProviderRow>) -> Result<Vec<Provider>, SchedulingError> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let hours = hours_of(conn, &ids)?;
    rows.into_iter()
        .map(|r| {
            Ok(Provider {
                id: r.id.parse().map_err(|_| corrupt("provider id"))?,
                time_zone: ClinicZone::parse(&r.time_zone).map_err(|_| corrupt("provider zone"))?,
                hours: hours.iter().filter(|(p, _)| *p == r.id).map(|(_, h)| *h).collect(),
                name: r.name,
                role: r.role,
                active: r.active,
                version: r.version,
                created_at: time::from_db(r.created_at),
                updated_at: time::from_db(r.updated_at),
            })
        })
        .collect()
}

pub fn create(
    conn: &mut DbConnection,
    fields: ProviderFields,
    now: DateTime<Utc>,
) -> Result<Provider, SchedulingError> {
    let id = ProviderId::new();
    dialect::write_transaction(conn, |conn| {
        diesel::insert_into(providers::table)
            .values(ProviderRow {
                id: id.to_string(),
                name: fields.name,
                role: fields.role,
                active: true,
                time_zone: fields.time_zone.name().to_owned(),
                version: 1,
                created_at: time::to_db(now),
                updated_at: time::to_db(now),
            })
            .execute(conn)?;
        write_hours(conn, &id.to_string(), &fields.hours)?;
        get(conn, id)
    })
}

pub fn get(conn: &mut DbConnection, id: ProviderId) -> Result<Provider, SchedulingError> {
    let row = providers::table
        .find(id.to_string())
        .first::<ProviderRow>(conn)
        .optional()?
        .ok_or(SchedulingError::NotFound("provider"))?;
    hydrate(conn, vec![row])?
        .pop()
        .ok_or(SchedulingError::NotFound("provider"))
}

/// Providers by name; inactive ones only when asked for.
pub fn list(conn: &mut DbConnection, include_inactive: bool) -> Result<Vec<Provider>, SchedulingError> {
    let mut q = providers::table.into_boxed();
    if !include_inactive {
        q = q.filter(providers::active.eq(true));
    }
    let rows = q.order((providers::name, providers::id)).load::<ProviderRow>(conn)?;
    hydrate(conn, rows)
}

pub fn update(
    conn: &mut DbConnection,
    id: ProviderId,
    expected_version: i64,
    changes: ProviderChanges,
    now: DateTime<Utc>,
) -> Result<Provider, SchedulingError> {
    dialect::write_transaction(conn, |conn| {
        let current = get(conn, id)?;
        if current.version != expected_version {
            return Err(stale(current.version));
        }
        let written = diesel::update(
            providers::table
                .filter(providers::id.eq(id.to_string()))
                .filter(providers::version.eq(expected_version)),
        )
        .set((
            providers::name.eq(changes.name.unwrap_or(current.name)),
            providers::role.eq(changes.role.unwrap_or(current.role)),
            providers::active.eq(changes.active.unwrap_or(current.active)),
            providers::time_zone.eq(changes.time_zone.unwrap_or(current.time_zone).name()),
            providers::version.eq(expected_version + 1),
            providers::updated_at.eq(time::to_db(now)),
        ))
        .execute(conn)?;
        if written != 1 {
            return Err(stale(expected_version + 1));
        }
        if let Some(hours) = changes.hours {
            write_hours(conn, &id.to_string(), &hours)?;
        }
        get(conn, id)
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct TimeOff {
    pub id: TimeOffId,
    pub provider_id: ProviderId,
    pub span: Span,
    pub reason: Option<String>,
}

pub fn add_time_off(
    conn: &mut DbConnection,
    provider: ProviderId,
    span: Span,
    reason: Option<String>,
    now: DateTime<Utc>,
) -> Result<TimeOff, SchedulingError> {
    dialect::write_transaction(conn, |conn| {
        get(conn, provider)?;
        let id = TimeOffId::new();
        diesel::insert_into(provider_time_off::table)
            .values((
                provider_time_off::id.eq(id.to_string()),
                provider_time_off::provider_id.eq(provider.to_string()),
                provider_time_off::starts_at.eq(time::to_db(span.start)),
                provider_time_off::ends_at.eq(time::to_db(span.end)),
                provider_time_off::reason.eq(&reason),
                provider_time_off::created_at.eq(time::to_db(now)),
            ))
            .execute(conn)?;
        Ok(TimeOff {
            id,
            provider_id: provider,
            span,
            reason,
        })
    })
}

/// The provider's time off overlapping `window` (all of it when `None`), by start.
pub fn time_off(
    conn: &mut DbConnection,
    provider: ProviderId,
    window: Option<Span>,
) -> Result<Vec<TimeOff>, SchedulingError> {
    let mut q = provider_time_off::table
        .filter(provider_time_off::provider_id.eq(provider.to_string()))
        .into_boxed();
    if let Some(w) = window {
        q = q
            .filter(provider_time_off::starts_at.lt(time::to_db(w.end)))
            .filter(provider_time_off::ends_at.gt(time::to_db(w.start)));
    }
    let rows: Vec<(String, NaiveDateTime, NaiveDateTime, Option<String>)> = q
        .order(provider_time_off::starts_at)
        .select((
            provider_time_off::id,
            provider_time_off::starts_at,
            provider_time_off::ends_at,
            provider_time_off::reason,
        ))
        .load(conn)?;
    rows.into_iter()
        .map(|(id, s, e, reason)| {
            Ok(TimeOff {
                id: id.parse().map_err(|_| corrupt("time off id"))?,
                provider_id: provider,
                span: Span::new(time::from_db(s), time::from_db(e)),
                reason,
            })
        })
        .collect()
}

pub fn delete_time_off(conn: &mut DbConnection, provider: ProviderId, id: TimeOffId) -> Result<(), SchedulingError> {
    let n = dialect::write_transaction(conn, |conn| {
        diesel::delete(
            provider_time_off::table
                .filter(provider_time_off::id.eq(id.to_string()))
                .filter(provider_time_off::provider_id.eq(provider.to_string())),
        )
        .execute(conn)
    })?;
    if n == 0 {
        return Err(SchedulingError::NotFound("time off"));
    }
    Ok(())
}
