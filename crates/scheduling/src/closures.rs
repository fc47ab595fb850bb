//! Clinic closures: whole days (on the clinic's calendar) when nobody can be booked.

use chrono::{DateTime, NaiveDate, Utc};
use clinic_store::schema::clinic_closures;
use clinic_store::{dialect, time, DbConnection};
use diesel::prelude::*;

use crate::{corrupt, SchedulingError};

#[derive(Debug, Clone, PartialEq)]
pub struct Closure {
    pub date: NaiveDate,
    pub name: String,
}

fn iso(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Closures between two dates inclusive (every one when `None`), by date.
pub fn list(conn: &mut DbConnection, range: Option<(NaiveDate, NaiveDate)>) -> Result<Vec<Closure>, SchedulingError> {
    let mut q = clinic_closures::table.into_boxed();
    if let Some((from, to)) = range {
        // ISO dates sort as text.
        q = q
            .filter(clinic_closures::date.ge(iso(from)))
            .filter(clinic_closures::date.le(iso(to)));
    }
    let rows: Vec<(String, String)> = q
        .order(clinic_closures::date)
        .select((clinic_closures::date, clinic_closures::name))
        .load(conn)?;
    rows.into_iter()
        .map(|(d, name)| {
            Ok(Closure {
                date: NaiveDate::parse_from_str(&d, "%Y-%m-%d").map_err(|_| corrupt("closure date"))?,
                name,
            })
        })
        .collect()
}

/// Adds a closure; a date that is already closed is a 409.
pub fn add(conn: &mut DbConnection, closure: Closure, now: DateTime<Utc>) -> Result<Closure, SchedulingError> {
    dialect::write_transaction(conn, |conn| {
        let exists: i64 = clinic_closures::table
            .find(iso(closure.date))
            .count()
            .get_result(conn)?;
        if exists > 0 {
            return Err(SchedulingError::Conflict {
                code: "already_closed",
                detail: format!("{} is already a closure", closure.date),
            });
        }
        diesel::insert_into(clinic_closures::table)
            .values((
                clinic_closures::date.eq(iso(closure.date)),
                clinic_closures::name.eq(&closure.name),
                clinic_closures::created_at.eq(time::to_db(now)),
            ))
            .execute(conn)?;
        Ok(closure)
    })
}

pub fn delete(conn: &mut DbConnection, date: NaiveDate) -> Result<(), SchedulingError> {
    let n = dialect::write_transaction(conn, |conn| {
        diesel::delete(clinic_closures::table.find(iso(date))).execute(conn)
    })?;
    if n == 0 {
        return Err(SchedulingError::NotFound("closure"));
    }
    Ok(())
}
