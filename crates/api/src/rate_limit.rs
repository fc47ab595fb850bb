//! Rate limits for the public routes that write (appointment requests): per client address,
//! a small burst then a steady trickle, with the `governor` crate (GCRA). The address is the
//! TCP peer: behind a proxy every client shares the proxy's address, so a deployment behind
//! one should limit there too (docs/operations.md).

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub struct PublicLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl PublicLimiter {
    /// `per_minute` requests a minute per address, in bursts of up to `burst`.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
        }
    }

    /// True when this address may go ahead now.
    pub fn allow(&self, addr: Option<IpAddr>) -> bool {
        let key = addr.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let allowed = self.limiter.check_key(&key).is_ok();
        // Keep the table from growing without bound under many distinct addresses.
        if self.limiter.len() > 100_000 {
            self.limiter.retain_recent();
        }
        allowed
    }
}

impl Default for PublicLimiter {
    fn default() -> Self {
        Self::new(6, 3)
    }
}
