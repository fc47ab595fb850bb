//! `clinic-scheduling`: the clinic's calendar.
//!
//! Will own: providers with working hours and time off, clinic closures, appointment types,
//! availability search on each provider's wall clock (DST-safe), booking that can never
//! double-book (an exclusion constraint on PostgreSQL, an immediate transaction on SQLite),
//! reschedule/cancel with a status machine, public appointment requests, and iCalendar
//! events and feeds. Depends on `domain`, `store` and `patients` only.
