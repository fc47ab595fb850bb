//! `clinic-domain`: the platform's pure types and rules.
//!
//! No I/O, no database, no web framework lives here. Values are parsed once at the
//! boundary into the newtypes of this crate (`EmailAddress`, `Phone`, `PersonName`,
//! `ClinicZone`…) so the rest of the code never sees unchecked input. Later issues add
//! appointments, pumps and their forecast, screening and reminder policy beside these.

pub mod auth;
pub mod contact;
pub mod content;
pub mod forecast;
pub mod ids;
pub mod patient;
pub mod reminders;
pub mod scheduling;
pub mod screening;
pub mod text;
pub mod time;
pub mod validation;

pub use validation::{FieldError, ValidationErrors};
