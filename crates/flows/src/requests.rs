//! Public appointment requests: the submission from the public form or API, and staff
//! confirming one by booking it (with the booking's emails) or declining it.

use chrono::{DateTime, Utc};
use clinic_domain::ids::AppointmentRequestId;
use clinic_domain::time::ClinicZone;
use clinic_patients::audit::Actor;
use clinic_scheduling::appointments::Appointment;
use clinic_scheduling::requests::{self, AppointmentRequest, Confirmation, NewRequest};
use clinic_store::{dialect, DbConnection};

use crate::FlowError;

/// Stores a request from the public; returns its reference for the person who sent it.
pub fn submit(conn: &mut DbConnection, new: NewRequest, now: DateTime<Utc>) -> Result<String, FlowError> {
    dialect::write_transaction(conn, |conn| Ok(requests::submit(conn, new, now)?))
}

/// Confirms a public appointment request by booking it, with the booking's emails.
pub fn confirm(
    conn: &mut DbConnection,
    actor: &Actor,
    id: AppointmentRequestId,
    c: Confirmation,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<(AppointmentRequest, Appointment), FlowError> {
    dialect::write_transaction(conn, |conn| {
        let (request, a) = requests::confirm(conn, actor, id, c, clinic_zone, now)?;
        crate::appointments::plan_booked(conn, &a, now)?;
        Ok((request, a))
    })
}

/// Declines a request with a reason for the record.
pub fn decline(
    conn: &mut DbConnection,
    actor: &Actor,
    id: AppointmentRequestId,
    reason: String,
    now: DateTime<Utc>,
) -> Result<AppointmentRequest, FlowError> {
    dialect::write_transaction(conn, |conn| Ok(requests::decline(conn, actor, id, reason, now)?))
}
