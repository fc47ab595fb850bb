//! Availability answers, kept for a few seconds. A 90-day answer tries thousands of start
//! times and serialises to ~200 KB, and staff tools ask the same question again and again
//! between bookings (docs/performance.md). Any calendar change made through this process —
//! a booking, reschedule, cancellation, status change, hours, time off, closure or type
//! edit — clears it at once; another instance's changes show within [`TTL`]. Booking always
//! re-checks the calendar, so a stale answer can at worst offer a slot that then gets 409.
//! The free times of the patients' self-service pages are kept beside it and cleared with it.

use std::time::Duration;

use actix_web::web::Bytes;
use moka::sync::Cache;

pub const TTL: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct AvailabilityCache {
    answers: Cache<String, Bytes>,
    /// The free times the patients' self-service pages offer, cleared together.
    times: clinic_flows::self_service::TimesCache,
}

impl Default for AvailabilityCache {
    fn default() -> Self {
        Self {
            answers: Cache::builder().max_capacity(1_000).time_to_live(TTL).build(),
            times: Default::default(),
        }
    }
}

impl AvailabilityCache {
    pub fn get(&self, key: &str) -> Option<Bytes> {
        self.answers.get(key)
    }

    pub fn insert(&self, key: String, answer: Bytes) {
        self.answers.insert(key, answer);
    }

    /// The self-service pages' cache of free times (cleared with this one).
    pub fn times(&self) -> clinic_flows::self_service::TimesCache {
        self.times.clone()
    }

    /// After any change to a calendar.
    pub fn clear(&self) {
        self.answers.invalidate_all();
        self.times.clear();
    }
}
