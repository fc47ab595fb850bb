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
        let key = addr.map_or(IpAddr::from([0, 0, 0, 0]), network_of);
        let allowed = self.limiter.check_key(&key).is_ok();
        // Keep the table from growing without bound under many distinct addresses.
        if self.limiter.len() > 100_000 {
            self.limiter.retain_recent();
        }
        allowed
    }
}

/// The key for an address: itself for IPv4, its /64 for IPv6 (one subscriber usually holds a
/// whole /64, so counting single IPv6 addresses would let one client take billions of keys).
fn network_of(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
            }
        },
    }
}

impl Default for PublicLimiter {
    fn default() -> Self {
        Self::new(6, 3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_slash_64_is_one_client() {
        let limiter = PublicLimiter::new(1, 2);
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert!(limiter.allow(Some(a)));
        assert!(limiter.allow(Some(b)));
        assert!(
            !limiter.allow(Some(a)),
            "the /64's burst is spent, whichever address asks"
        );
        assert!(limiter.allow(Some(other)), "another /64 is another client");
        let v4: IpAddr = "198.51.100.7".parse().expect("ip");
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().expect("ip");
        assert!(limiter.allow(Some(v4)) && limiter.allow(Some(mapped)));
        assert!(
            !limiter.allow(Some(v4)),
            "an IPv4-mapped address counts as the IPv4 one"
        );
    }
}
