//! Rate limits for the public routes that write (appointment requests): per client address,
//! a small burst then a steady trickle, with the `governor` crate (GCRA). The address is the
//! TCP peer: behind a proxy every client shares the proxy's address, so a deployment behind
//! one should limit there too (docs/operations.md).

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Past this many addresses the table is pruned of the ones whose limits have refilled.
const MAX_KEYS: usize = 100_000;
/// At most one prune per interval: a prune scans the whole table, and under a flood of
/// live addresses pruning on every call would scan it on every call (security review F11).
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// A keyed GCRA limit: per key, `burst` at once, then `per_minute` a minute.
pub struct KeyedLimiter<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    max_keys: usize,
    prune_every: Duration,
    started: Instant,
    /// When the last prune began, in milliseconds since `started` (+1, so 0 means never).
    pruned_at: AtomicU64,
    prunes: AtomicU64,
}

/// The per-address limit of the public routes that write.
pub type PublicLimiter = KeyedLimiter<IpAddr>;

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// `per_minute` requests a minute per key, in bursts of up to `burst`.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self::with_pruning(per_minute, burst, MAX_KEYS, PRUNE_EVERY)
    }

    fn with_pruning(per_minute: u32, burst: u32, max_keys: usize, prune_every: Duration) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
            max_keys,
            prune_every,
            started: Instant::now(),
            pruned_at: AtomicU64::new(0),
            prunes: AtomicU64::new(0),
        }
    }

    /// True when this key may go ahead now.
    pub fn allow_key(&self, key: &K) -> bool {
        let allowed = self.limiter.check_key(key).is_ok();
        if self.limiter.len() > self.max_keys {
            self.prune();
        }
        allowed
    }

    /// Drops addresses whose limits have refilled, unless another call did so within the
    /// interval; only the call that wins the swap scans.
    fn prune(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let last = self.pruned_at.load(Ordering::Relaxed);
        let interval = u64::try_from(self.prune_every.as_millis()).unwrap_or(u64::MAX);
        if last != 0 && now.saturating_sub(last) < interval {
            return;
        }
        if self
            .pruned_at
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
            self.prunes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl KeyedLimiter<IpAddr> {
    /// True when this address may go ahead now.
    pub fn allow(&self, addr: Option<IpAddr>) -> bool {
        self.allow_key(&addr.map_or(IpAddr::from([0, 0, 0, 0]), network_of))
    }
}

/// The limits of the patients' self-service pages: per address (a patient, or a mail
/// scanner, opening their links) and per link (someone trying one link over and over). Both
/// far above what a person does, far below what guessing or hammering needs.
pub struct SelfServiceLimits {
    pub by_address: PublicLimiter,
    /// Keyed by a hash of the token, never the token itself.
    pub by_link: KeyedLimiter<u64>,
}

impl SelfServiceLimits {
    pub fn new(per_address_per_minute: u32, per_link_per_minute: u32) -> Self {
        Self {
            by_address: PublicLimiter::new(per_address_per_minute, per_address_per_minute),
            by_link: KeyedLimiter::new(per_link_per_minute, per_link_per_minute),
        }
    }

    /// True when this address and this link may both go ahead now.
    pub fn allow(&self, addr: Option<IpAddr>, token: &str) -> bool {
        use std::hash::{BuildHasher, Hasher};
        // A per-process random hasher: the key says nothing about the token outside it.
        static SEED: std::sync::LazyLock<std::collections::hash_map::RandomState> =
            std::sync::LazyLock::new(std::collections::hash_map::RandomState::new);
        let mut h = SEED.build_hasher();
        h.write(token.as_bytes());
        let address_ok = self.by_address.allow(addr);
        let link_ok = self.by_link.allow_key(&h.finish());
        address_ok && link_ok
    }
}

impl Default for SelfServiceLimits {
    /// 300 page views and actions a minute per address (behind a proxy every patient shares
    /// its address, and mail scanners fetch every link of an email at once), 30 per link
    /// (a person uses a handful; a token is 128 bits of MAC, so the limit is against
    /// hammering, not guessing).
    fn default() -> Self {
        Self::new(300, 30)
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

impl Default for KeyedLimiter<IpAddr> {
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

    #[test]
    fn a_full_table_is_scanned_at_most_once_per_interval() {
        // Every address below is live (its burst just used), so no prune can shrink the
        // table: the old code scanned it on every call from here on.
        let limiter = PublicLimiter::with_pruning(6, 3, 100, Duration::from_secs(3600));
        for i in 0..5_000u32 {
            limiter.allow(Some(IpAddr::from(i.to_be_bytes())));
        }
        assert_eq!(limiter.prunes.load(Ordering::Relaxed), 1, "one scan in the interval");
        assert!(limiter.limiter.len() > 100, "live addresses are kept");

        // With no interval, every call over the limit may prune: the counter is what moves.
        let eager = PublicLimiter::with_pruning(6, 3, 10, Duration::ZERO);
        for i in 0..50u32 {
            eager.allow(Some(IpAddr::from(i.to_be_bytes())));
        }
        assert_eq!(
            eager.prunes.load(Ordering::Relaxed),
            40,
            "calls 11 to 50 find 11 or more keys and each prune"
        );
    }
}
