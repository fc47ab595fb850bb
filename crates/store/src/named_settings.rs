//! Rows of the `settings` table: one JSON or text body per name, versioned, with who
//! changed it last. Capabilities own what their bodies mean; this writes the row.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::schema::settings;
use crate::{time, DbConnection};

/// Writes the row `name` with `body`: inserted at version 1 when `current_version` is 0
/// (no row yet), otherwise updated to `current_version + 1`. Call it in the write
/// transaction that read `current_version`. Returns the new version.
pub fn write(
    conn: &mut DbConnection,
    name: &str,
    body: &str,
    current_version: i64,
    updated_by: Option<&str>,
    now: DateTime<Utc>,
) -> QueryResult<i64> {
    let version = current_version + 1;
    let row = (
        settings::body.eq(body),
        settings::version.eq(version),
        settings::updated_at.eq(time::to_db(now)),
        settings::updated_by.eq(updated_by),
    );
    if current_version == 0 {
        diesel::insert_into(settings::table)
            .values((settings::name.eq(name), row))
            .execute(conn)?;
    } else {
        diesel::update(settings::table.find(name)).set(row).execute(conn)?;
    }
    Ok(version)
}
