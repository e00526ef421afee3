//! Brute-force throttling rules (NIST SP 800-63B §5.2.2, threat model §5 "Failed Auth
//! Attempts"): a few free failures, then a wait that doubles with each further
//! consecutive failure, and a temporary lock after too many; plus the spike rule for
//! failed authentications per 15-minute window. Pure arithmetic: the app keeps the
//! counters in the database so every server process sees the same state.

use std::net::IpAddr;
use std::time::Duration;

/// Whose consecutive failures are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SubjectKind {
    /// One account, keyed by a keyed hash of the normalised email whether or not the
    /// account exists: password and second-factor failures (login and step-up).
    Account,
    /// One client address: password and second-factor failures across all accounts.
    Ip,
    /// One client address: bearer tokens (sessions, API tokens) that did not authenticate.
    TokenIp,
}

impl SubjectKind {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Ip => "ip",
            Self::TokenIp => "token_ip",
        }
    }
}

/// A temporary lock once failures reach `threshold`. Each further failure locks again,
/// for one more `duration` than the last (capped at `max_duration`): waiting out a lock
/// does not buy a fresh budget, only a success (or the policy's `forget_after`) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    pub threshold: u32,
    pub duration: Duration,
    pub max_duration: Duration,
}

/// The throttling rule for one kind of subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubjectPolicy {
    /// Consecutive failures answered without any wait.
    pub free_attempts: u32,
    /// The wait after the first failure beyond the free ones; it doubles from there.
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub lockout: Option<Lockout>,
    /// Failures older than this (since the last attempt) are forgotten. `None`: only a
    /// success clears them.
    pub forget_after: Option<Duration>,
}

impl SubjectPolicy {
    /// How long the subject must wait after its `failures`-th consecutive failure before
    /// its next attempt is even evaluated.
    #[must_use]
    pub fn wait_after(&self, failures: u32) -> Duration {
        if let Some(lock) = self.lockout
            && failures >= lock.threshold
        {
            let nth = failures - lock.threshold + 1;
            return lock
                .duration
                .saturating_mul(nth)
                .min(lock.max_duration.max(lock.duration));
        }
        match failures.checked_sub(self.free_attempts) {
            Some(over) if over > 0 => {
                let factor = 2_u32.checked_pow(over - 1).unwrap_or(u32::MAX);
                self.base_delay.saturating_mul(factor).min(self.max_delay)
            }
            _ => Duration::ZERO,
        }
    }

    /// Whether the `failures`-th consecutive failure locks the subject.
    #[must_use]
    pub fn locks_at(&self, failures: u32) -> bool {
        self.lockout.is_some_and(|lock| failures >= lock.threshold)
    }
}

/// When a window of failed authentications is a spike: more than `factor` times the mean
/// of the previous `baseline_windows` windows, where a mean below `min_baseline` counts as
/// `min_baseline` (so one failure after a quiet night is not a spike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpikeRule {
    pub factor: u32,
    pub baseline_windows: u32,
    pub min_baseline: u32,
}

/// Length of a counting window (threat model §5: 15-minute windows).
pub const WINDOW_SECONDS: i64 = 900;

/// Start (unix seconds) of the window containing `unix`.
#[must_use]
pub const fn window_start(unix: i64) -> i64 {
    unix.div_euclid(WINDOW_SECONDS) * WINDOW_SECONDS
}

impl SpikeRule {
    /// `previous_total`: failures in the `baseline_windows` windows before the current one.
    #[must_use]
    pub fn is_spike(&self, current: u64, previous_total: u64) -> bool {
        let windows = u128::from(self.baseline_windows.max(1));
        let baseline_sum = u128::from(previous_total).max(u128::from(self.min_baseline) * windows);
        u128::from(current) * windows > u128::from(self.factor) * baseline_sum
    }

    /// Below this count a window cannot be a spike, whatever came before: checking it
    /// first spares reading the baseline on almost every failure.
    #[must_use]
    pub fn floor(&self) -> u64 {
        u64::from(self.factor).saturating_mul(u64::from(self.min_baseline))
    }
}

/// Every knob of brute-force defence, per subject kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    pub account: SubjectPolicy,
    pub ip: SubjectPolicy,
    pub token_ip: SubjectPolicy,
    pub spike: SpikeRule,
}

impl ThrottlePolicy {
    #[must_use]
    pub const fn for_subject(&self, kind: SubjectKind) -> &SubjectPolicy {
        match kind {
            SubjectKind::Account => &self.account,
            SubjectKind::Ip => &self.ip,
            SubjectKind::TokenIp => &self.token_ip,
        }
    }
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            // NIST: at most 100 consecutive failures before a lock. The doubling wait
            // alone stretches those 100 over about 21 hours.
            account: SubjectPolicy {
                free_attempts: 5,
                base_delay: Duration::from_secs(1),
                max_delay: 15 * MINUTE,
                lockout: Some(Lockout {
                    threshold: 100,
                    duration: HOUR,
                    max_duration: 24 * HOUR,
                }),
                // A month without attempts forgets them: at most 100 guesses a month
                // stays far from feasible, and unknown emails do not pile up forever.
                forget_after: Some(30 * 24 * HOUR),
            },
            // Stricter than an account: a higher cap, and a success never clears an
            // address's failures (an attacker signing into an account of their own
            // between guesses would launder them); only a quiet day does.
            ip: SubjectPolicy {
                free_attempts: 5,
                base_delay: Duration::from_secs(1),
                max_delay: HOUR,
                lockout: None,
                forget_after: Some(24 * HOUR),
            },
            // Clients retry with an expired session a few times before signing in again.
            token_ip: SubjectPolicy {
                free_attempts: 10,
                base_delay: Duration::from_secs(1),
                max_delay: 15 * MINUTE,
                lockout: None,
                forget_after: Some(HOUR),
            },
            spike: SpikeRule {
                factor: 5,
                baseline_windows: 16,
                min_baseline: 2,
            },
        }
    }
}

/// The network a client is counted under (throttles and rate limits): IPv4 as is,
/// IPv6 by its /64 (one customer's allocation, where every address is free to them).
#[must_use]
pub fn client_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// [`client_network`] as text: `203.0.113.7`, `2001:db8:1:2::/64`.
#[must_use]
pub fn ip_subject(ip: IpAddr) -> String {
    match client_network(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("{v6}/64"),
    }
}

/// Whole seconds until `remaining` has passed, at least one (for `Retry-After`).
#[must_use]
pub fn retry_after_secs(remaining: Duration) -> u32 {
    let secs = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
    u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_after_the_free_attempts_up_to_the_cap_then_lock() {
        let policy = ThrottlePolicy::default().account;
        let waits: Vec<u64> = (0..=9).map(|n| policy.wait_after(n).as_secs()).collect();
        assert_eq!(waits, [0, 0, 0, 0, 0, 0, 1, 2, 4, 8]);
        assert_eq!(policy.wait_after(15).as_secs(), 512);
        assert_eq!(policy.wait_after(16).as_secs(), 900);
        assert_eq!(policy.wait_after(99).as_secs(), 900);
        assert!(!policy.locks_at(99));
        assert!(policy.locks_at(100));
        assert_eq!(policy.wait_after(100).as_secs(), 3600);
        assert_eq!(policy.wait_after(101).as_secs(), 7200);
        assert_eq!(policy.wait_after(5000).as_secs(), 24 * 3600);
        assert_eq!(policy.wait_after(u32::MAX).as_secs(), 24 * 3600);
    }

    #[test]
    fn an_address_has_no_lock_but_a_higher_cap() {
        let policy = ThrottlePolicy::default().ip;
        assert_eq!(policy.wait_after(6).as_secs(), 1);
        assert_eq!(policy.wait_after(1000).as_secs(), 3600);
        assert!(!policy.locks_at(u32::MAX));
    }

    /// A guesser of TOTP codes (three valid codes of 10^6 at any time: ±1 step of skew)
    /// who already has the password: with the default policy, how many guesses fit in
    /// ten years, and the chance that one of them hits.
    #[test]
    fn guessing_a_totp_code_stays_infeasible_for_years() {
        let policy = ThrottlePolicy::default().account;
        let ten_years = 10 * 365 * 24 * 3600;
        let (mut elapsed, mut guesses) = (0_u64, 0_u32);
        while elapsed < ten_years {
            guesses += 1;
            elapsed += policy.wait_after(guesses).as_secs();
        }
        let chance = f64::from(guesses) * 3.0 / 1_000_000.0;
        assert!(guesses < 4000, "{guesses} guesses");
        assert!(chance < 0.012, "{chance}");
    }

    #[test]
    fn windows_are_aligned_quarter_hours() {
        assert_eq!(window_start(0), 0);
        assert_eq!(window_start(899), 0);
        assert_eq!(window_start(900), 900);
        assert_eq!(window_start(-1), -900);
    }

    #[test]
    fn a_spike_is_more_than_five_times_the_baseline_with_a_floor() {
        let rule = ThrottlePolicy::default().spike;
        // Quiet: the floor (2 a window) makes the bar 10.
        assert!(!rule.is_spike(6, 16));
        assert!(!rule.is_spike(10, 0));
        assert!(rule.is_spike(11, 0));
        assert_eq!(rule.floor(), 10);
        // Busy: mean 4 → bar 20.
        assert!(!rule.is_spike(20, 64));
        assert!(rule.is_spike(21, 64));
    }

    #[test]
    fn addresses_are_counted_by_ipv4_or_ipv6_64() {
        let ip = |s: &str| {
            s.parse::<IpAddr>()
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
        };
        assert_eq!(ip_subject(ip("203.0.113.7")), "203.0.113.7");
        assert_eq!(ip_subject(ip("::ffff:203.0.113.7")), "203.0.113.7");
        assert_eq!(ip_subject(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(ip_subject(ip("2001:db8:1:2:bbbb::9")), ip_subject(ip("2001:db8:1:2::")));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(900)), 900);
    }
}
