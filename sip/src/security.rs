//! What keeps strangers in check: per-source request rates, and throttles on failed
//! authentication that grow into bans.
//!
//! - **Rates.** Each source address has a token bucket per method for the requests that
//!   start something (INVITE, REGISTER, OPTIONS outside a dialog). Over its rate a
//!   request gets `503 Service Unavailable` with `Retry-After` (RFC 3261 §21.5.4);
//!   requests inside a dialog are never limited, so calls in progress are untouched.
//!   The TCP, TLS and WebSocket connections a source opens have a bucket too: over its
//!   rate a new connection is closed as it is accepted (a TLS handshake costs the server
//!   far more than the client that asks for it).
//!   Trusted trunks have limits of their own (none by default).
//! - **Failed authentication.** Failures are counted per (source, user) and per source in
//!   a window. Too many for one user from one source blocks that user from that source
//!   (503 with `Retry-After`); too many from one source bans the source: everything it
//!   sends is dropped unanswered (its UDP datagrams before they are parsed, its TCP/TLS
//!   connections at accept). Each new block or ban of the same offender lasts twice the
//!   last, up to a maximum, and all expire. Both are keyed by the offender's address:
//!   an attacker cannot lock an agent out of its own address. A trusted trunk's address
//!   is never banned.
//! - Each failure is logged as one stable line (see [`Security::auth_failed`]), for
//!   fail2ban, and counted in [`SipCounters`].
//! - **Connections.** A source may hold `connections_per_source` TCP, TLS and WebSocket
//!   connections open at once; the next is closed as soon as it is accepted, before a TLS
//!   handshake or anything it sends is read. Each connection holds buffers in the stack
//!   (about 80 KB over TCP), so without a cap one address could open connections until
//!   memory or descriptors ran out. Agents behind one NAT share their office's address:
//!   the cap is per address, generous, and trusted trunks' addresses are not capped.
//!
//! The tables are bounded: entries idle past their window are swept every second, and a
//! table at its bound treats new sources as over their rate until the sweep makes room
//! (a flood of spoofed addresses cannot grow memory). The connection table holds only
//! sources with connections open, each of which the kernel has completed a handshake with.
//!
//! Time is an argument: the edge passes its clock, tests pass their own.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tracing::warn;

use crate::counters::SipCounters;
use crate::digest::AuthFailure;

/// Requests a second per source, by method, and connections opened a second; 0 is no
/// limit. A bucket holds two seconds' worth (at least one), so a phone's short burst
/// passes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rates {
    /// INVITEs outside a dialog.
    pub invite: f64,
    /// REGISTERs.
    pub register: f64,
    /// OPTIONS outside a dialog.
    pub options: f64,
    /// TCP, TLS and WebSocket connections opened.
    pub connections: f64,
}

impl Rates {
    /// No limit at all.
    pub const UNLIMITED: Rates = Rates {
        invite: 0.0,
        register: 0.0,
        options: 0.0,
        connections: 0.0,
    };

    fn of(&self, method: Limited) -> f64 {
        match method {
            Limited::Invite => self.invite,
            Limited::Register => self.register,
            Limited::Options => self.options,
            Limited::Connection => self.connections,
        }
    }
}

/// The methods that are rate-limited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limited {
    /// INVITE outside a dialog.
    Invite,
    /// REGISTER.
    Register,
    /// OPTIONS outside a dialog.
    Options,
    /// A TCP, TLS or WebSocket connection opened.
    Connection,
}

impl Limited {
    fn index(self) -> usize {
        self as usize
    }
}

/// How strict the edge is with strangers.
#[derive(Clone, Debug, PartialEq)]
pub struct SecurityConfig {
    /// Limits for sources that are not trusted trunks.
    pub stranger_rates: Rates,
    /// Limits for trusted trunks' addresses.
    pub trusted_rates: Rates,
    /// Failures for one user from one source, within `failure_window`, before that user
    /// is blocked from that source.
    pub failures_per_user: u32,
    /// Failures from one source for any users, within `failure_window`, before the source
    /// is banned.
    pub failures_per_source: u32,
    /// The window failures are counted in.
    pub failure_window: Duration,
    /// The first block or ban; each repeat doubles it.
    pub ban: Duration,
    /// The longest block or ban.
    pub max_ban: Duration,
    /// TCP, TLS and WebSocket connections one source may hold open at once (trusted
    /// trunks' addresses: any number); 0 is no limit.
    pub connections_per_source: u32,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            stranger_rates: Rates {
                invite: 20.0,
                register: 50.0,
                options: 20.0,
                // As many as REGISTERs: each phone's connection comes before its REGISTER.
                connections: 50.0,
            },
            trusted_rates: Rates::UNLIMITED,
            failures_per_user: 5,
            failures_per_source: 20,
            failure_window: Duration::from_secs(60),
            ban: Duration::from_secs(60),
            max_ban: Duration::from_secs(3600),
            // A large office's agents behind one NAT address, each phone with a
            // connection of its own, and a browser tab or two each.
            connections_per_source: 256,
        }
    }
}

/// What to do with a request from a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Go on.
    Pass,
    /// Over a limit: 503 with this `Retry-After`.
    Limited(Duration),
    /// The source is banned: drop it unanswered.
    Banned,
}

/// Sources tracked at most; past it new sources are treated as over their rate.
const MAX_SOURCES: usize = 65_536;
/// (source, user) pairs tracked at most; past it new failures are counted per source only.
const MAX_PAIRS: usize = 65_536;

/// A token bucket (requests a second, two seconds of burst).
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Takes a token at `now`; the wait for the next one if there is none.
    fn take(&mut self, rate: f64, now: Instant) -> Result<(), Duration> {
        let capacity = (rate * 2.0).max(1.0);
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(capacity);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }
}

/// Failures in a window, and the offender's record of blocks.
#[derive(Clone, Copy, Debug)]
struct Offender {
    failures: u32,
    window_start: Instant,
    until: Option<Instant>,
    /// Blocks or bans so far: the next lasts `ban × 2^offences`.
    offences: u32,
    last_seen: Instant,
}

impl Offender {
    fn new(now: Instant) -> Offender {
        Offender {
            failures: 0,
            window_start: now,
            until: None,
            offences: 0,
            last_seen: now,
        }
    }

    fn blocked(&self, now: Instant) -> Option<Duration> {
        self.until
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    /// Counts a failure; a new block's length when this one crosses `limit`.
    fn fail(&mut self, limit: u32, config: &SecurityConfig, now: Instant) -> Option<Duration> {
        self.last_seen = now;
        if now.saturating_duration_since(self.window_start) > config.failure_window {
            self.failures = 0;
            self.window_start = now;
        }
        self.failures += 1;
        if self.failures < limit || self.blocked(now).is_some() {
            return None;
        }
        let length = config
            .ban
            .saturating_mul(1u32 << self.offences.min(20))
            .min(config.max_ban);
        self.offences += 1;
        self.failures = 0;
        self.until = Some(now + length);
        Some(length)
    }

    /// Whether nothing would be lost by forgetting it: not blocked, and quiet for the
    /// longest ban if it ever offended (so that a repeat offender within that time is
    /// punished harder), for the window if it has failures.
    fn forgettable(&self, config: &SecurityConfig, now: Instant) -> bool {
        let quiet = now.saturating_duration_since(self.last_seen);
        if self.blocked(now).is_some() {
            false
        } else if self.offences > 0 {
            quiet > config.max_ban
        } else if self.failures > 0 {
            quiet > config.failure_window
        } else {
            true
        }
    }
}

/// One source address.
#[derive(Clone, Copy, Debug)]
struct Source {
    buckets: [Bucket; 4],
    offender: Offender,
}

impl Source {
    fn new(rates: &Rates, now: Instant) -> Source {
        let full = |rate: f64| Bucket {
            tokens: (rate * 2.0).max(1.0),
            at: now,
        };
        Source {
            buckets: [
                full(rates.invite),
                full(rates.register),
                full(rates.options),
                full(rates.connections),
            ],
            offender: Offender::new(now),
        }
    }
}

/// Bytes of a user name kept as a key and in logs: a stranger's names are unbounded
/// otherwise (a header may be kilobytes long), agents' names are short.
const USER_KEY: usize = 64;

/// `user` cut to [`USER_KEY`] bytes, at a character boundary.
fn user_key(user: &str) -> String {
    let mut end = user.len().min(USER_KEY);
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    user[..end].to_owned()
}

/// Rates, failures, blocks and bans, shared by every transport.
#[derive(Debug)]
pub struct Security {
    config: SecurityConfig,
    sources: DashMap<IpAddr, Source>,
    pairs: DashMap<(IpAddr, String), Offender>,
    /// Connections open, by source; a source without any has no entry.
    connections: DashMap<IpAddr, Open>,
    counters: Arc<SipCounters>,
}

/// A source's open connections.
#[derive(Clone, Copy, Debug, Default)]
struct Open {
    connections: u32,
    /// Whether a refusal was logged since the source was last under its cap: one line
    /// for a source at its cap, however often it tries.
    logged: bool,
}

/// One open connection of a source, counted in [`Security`] until it is dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    security: Arc<Security>,
    source: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.security
            .connections
            .remove_if_mut(&self.source, |_, open| {
                open.connections -= 1;
                open.logged = false;
                open.connections == 0
            });
        self.security
            .counters
            .connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Security {
    /// Empty tables.
    pub fn new(config: SecurityConfig, counters: Arc<SipCounters>) -> Security {
        Security {
            config,
            sources: DashMap::new(),
            pairs: DashMap::new(),
            connections: DashMap::new(),
            counters,
        }
    }

    /// The counters it writes.
    pub(crate) fn counters(&self) -> &SipCounters {
        &self.counters
    }

    /// Whether `source` is banned at `now` (checked before anything else is done with
    /// what it sends).
    pub fn banned(&self, source: IpAddr, now: Instant) -> bool {
        self.sources
            .get(&source)
            .is_some_and(|s| s.offender.blocked(now).is_some())
    }

    /// Whether a request that starts something (`method`) from `source` may go on.
    pub fn admit(&self, source: IpAddr, method: Limited, trusted: bool, now: Instant) -> Admission {
        let rates = if trusted {
            &self.config.trusted_rates
        } else {
            &self.config.stranger_rates
        };
        let rate = rates.of(method);
        let take = |source: &mut Source| {
            if rate <= 0.0 {
                return Admission::Pass;
            }
            match source.buckets[method.index()].take(rate, now) {
                Ok(()) => Admission::Pass,
                Err(wait) => Admission::Limited(wait),
            }
        };
        if let Some(mut entry) = self.sources.get_mut(&source) {
            if entry.offender.blocked(now).is_some() {
                return Admission::Banned;
            }
            return take(&mut entry);
        }
        if rate <= 0.0 {
            // Nothing to remember about a source that is not limited.
            return Admission::Pass;
        }
        if self.sources.len() >= MAX_SOURCES {
            return Admission::Limited(Duration::from_secs(1));
        }
        let mut fresh = Source::new(rates, now);
        let verdict = take(&mut fresh);
        self.sources.insert(source, fresh);
        verdict
    }

    /// A new connection from `source`: its slot, to hold while it is open, or `None`
    /// (counted as refused, `reason="connections"`) when the source already holds
    /// `connections_per_source`. A trusted trunk's address is counted but not capped.
    pub fn open_connection(
        self: &Arc<Self>,
        source: IpAddr,
        trusted: bool,
    ) -> Option<ConnectionSlot> {
        let limit = self.config.connections_per_source;
        let mut open = self.connections.entry(source).or_default();
        if limit > 0 && !trusted && open.connections >= limit {
            if !std::mem::replace(&mut open.logged, true) {
                warn!(
                    "SIP connection refused source={source} open={limit}, the most \
                     connections_per_source allows"
                );
            }
            drop(open);
            self.counters.refused("connections");
            return None;
        }
        open.connections += 1;
        self.counters.connections.fetch_add(1, Ordering::Relaxed);
        Some(ConnectionSlot {
            security: self.clone(),
            source,
        })
    }

    /// How long `user` stays blocked from `source`, if it is.
    pub fn user_blocked(&self, source: IpAddr, user: &str, now: Instant) -> Option<Duration> {
        self.pairs
            .get(&(source, user_key(user)))
            .and_then(|pair| pair.blocked(now))
    }

    /// Records a failed authentication: logs it as one stable line, counts it, and
    /// blocks the user from the source, or bans the source, when it crosses a limit.
    ///
    /// The line reads `SIP authentication failed source=ADDRESS method=METHOD
    /// reason=REASON user="NAME"`: the address comes first, before anything the sender
    /// chose, so a log filter cannot be fooled by a crafted user name.
    pub fn auth_failed(
        &self,
        source: IpAddr,
        user: &str,
        method: &str,
        failure: AuthFailure,
        trusted: bool,
        now: Instant,
    ) {
        let user = user_key(user);
        warn!(
            "SIP authentication failed source={source} method={method} reason={} user={user:?}",
            failure.as_str()
        );
        self.counters.auth_failures.fetch_add(1, Ordering::Relaxed);
        let config = &self.config;
        let pair_key = (source, user.clone());
        if self.pairs.len() < MAX_PAIRS || self.pairs.contains_key(&pair_key) {
            let block = self
                .pairs
                .entry(pair_key)
                .or_insert_with(|| Offender::new(now))
                .fail(config.failures_per_user, config, now);
            if let Some(length) = block {
                self.user_was_blocked(source, &user, length);
            }
        }
        if trusted {
            return;
        }
        let rates = &self.config.stranger_rates;
        let mut entry = match self.sources.get_mut(&source) {
            Some(entry) => entry,
            None if self.sources.len() < MAX_SOURCES => self
                .sources
                .entry(source)
                .or_insert_with(|| Source::new(rates, now)),
            None => return,
        };
        if let Some(length) = entry.offender.fail(config.failures_per_source, config, now) {
            warn!(
                "SIP source banned source={source} seconds={} after {} failed authentications",
                length.as_secs(),
                config.failures_per_source
            );
            self.counters.bans.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn user_was_blocked(&self, source: IpAddr, user: &str, length: Duration) {
        warn!(
            "SIP user blocked source={source} seconds={} user={user:?}",
            length.as_secs()
        );
        self.counters.user_blocks.fetch_add(1, Ordering::Relaxed);
    }

    /// A right answer: the user's failures from this source are forgiven (a phone with
    /// a mistyped password that is fixed starts afresh).
    pub fn auth_succeeded(&self, source: IpAddr, user: &str) {
        self.pairs
            .remove_if(&(source, user_key(user)), |_, pair| pair.offences == 0);
    }

    /// Forgets what is over and quiet, and publishes how many sources are banned.
    pub fn sweep(&self, now: Instant) {
        let config = &self.config;
        self.pairs.retain(|_, pair| !pair.forgettable(config, now));
        let mut banned = 0u64;
        self.sources.retain(|_, source| {
            if source.offender.blocked(now).is_some() {
                banned += 1;
                return true;
            }
            // Idle buckets refill completely within two seconds; after that a new entry
            // is the same as the old one.
            let idle = source
                .buckets
                .iter()
                .all(|b| now.saturating_duration_since(b.at) > Duration::from_secs(2));
            !(idle && source.offender.forgettable(config, now))
        });
        self.counters
            .banned_sources
            .store(banned, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn security(config: SecurityConfig) -> Security {
        Security::new(config, Arc::new(SipCounters::default()))
    }

    const ATTACKER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 9));
    const AGENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    #[test]
    fn rates_allow_a_burst_then_limit_then_refill() {
        let security = security(SecurityConfig::default());
        let t0 = Instant::now();
        // 20 INVITEs a second: a burst of 40 passes, the 41st waits 50 ms.
        for _ in 0..40 {
            assert_eq!(
                security.admit(ATTACKER, Limited::Invite, false, t0),
                Admission::Pass
            );
        }
        assert_eq!(
            security.admit(ATTACKER, Limited::Invite, false, t0),
            Admission::Limited(Duration::from_millis(50))
        );
        // Other methods and other sources have buckets of their own.
        assert_eq!(
            security.admit(ATTACKER, Limited::Options, false, t0),
            Admission::Pass
        );
        assert_eq!(
            security.admit(AGENT, Limited::Invite, false, t0),
            Admission::Pass
        );
        // Trusted trunks are not limited by default.
        for _ in 0..1000 {
            assert_eq!(
                security.admit(AGENT, Limited::Invite, true, t0),
                Admission::Pass
            );
        }
        let later = t0 + Duration::from_millis(100);
        assert_eq!(
            security.admit(ATTACKER, Limited::Invite, false, later),
            Admission::Pass
        );
        assert_eq!(
            security.admit(ATTACKER, Limited::Invite, false, later),
            Admission::Pass
        );
        assert!(matches!(
            security.admit(ATTACKER, Limited::Invite, false, later),
            Admission::Limited(_)
        ));
    }

    #[test]
    fn failures_block_the_user_then_ban_the_source_longer_each_time() {
        let security = security(SecurityConfig::default());
        let t0 = Instant::now();
        for i in 0..5 {
            assert_eq!(security.user_blocked(ATTACKER, "anna", t0), None, "{i}");
            security.auth_failed(
                ATTACKER,
                "anna",
                "REGISTER",
                AuthFailure::WrongPassword,
                false,
                t0,
            );
        }
        assert_eq!(
            security.user_blocked(ATTACKER, "anna", t0),
            Some(Duration::from_secs(60))
        );
        // Not from the agent's own address, and not another user.
        assert_eq!(security.user_blocked(AGENT, "anna", t0), None);
        assert_eq!(security.user_blocked(ATTACKER, "bruno", t0), None);
        assert!(!security.banned(ATTACKER, t0));
        // Spraying other names: 20 failures in the window ban the source.
        for n in 0..15 {
            security.auth_failed(
                ATTACKER,
                &format!("user{n}"),
                "REGISTER",
                AuthFailure::UnknownUser,
                false,
                t0,
            );
        }
        assert!(security.banned(ATTACKER, t0));
        assert_eq!(
            security.admit(ATTACKER, Limited::Options, false, t0),
            Admission::Banned
        );
        assert!(!security.banned(AGENT, t0));
        assert_eq!(security.counters.auth_failures.load(Ordering::Relaxed), 20);
        assert_eq!(security.counters.bans.load(Ordering::Relaxed), 1);
        security.sweep(t0);
        assert_eq!(security.counters.banned_sources.load(Ordering::Relaxed), 1);

        // The ban expires, and the next one lasts twice as long.
        let t1 = t0 + Duration::from_secs(61);
        assert!(!security.banned(ATTACKER, t1));
        for n in 0..20 {
            security.auth_failed(
                ATTACKER,
                &format!("x{n}"),
                "INVITE",
                AuthFailure::UnknownUser,
                false,
                t1,
            );
        }
        assert!(security.banned(ATTACKER, t1 + Duration::from_secs(119)));
        assert!(!security.banned(ATTACKER, t1 + Duration::from_secs(121)));
        security.sweep(t1 + Duration::from_secs(121));
        assert_eq!(security.counters.banned_sources.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_trusted_address_is_never_banned_and_a_right_answer_forgives() {
        let security = security(SecurityConfig::default());
        let t0 = Instant::now();
        for n in 0..50 {
            security.auth_failed(
                AGENT,
                &format!("u{n}"),
                "REGISTER",
                AuthFailure::UnknownUser,
                true,
                t0,
            );
        }
        assert!(!security.banned(AGENT, t0));
        for _ in 0..3 {
            security.auth_failed(
                AGENT,
                "anna",
                "REGISTER",
                AuthFailure::WrongPassword,
                false,
                t0,
            );
        }
        security.auth_succeeded(AGENT, "anna");
        for _ in 0..4 {
            security.auth_failed(
                AGENT,
                "anna",
                "REGISTER",
                AuthFailure::WrongPassword,
                false,
                t0,
            );
        }
        assert_eq!(security.user_blocked(AGENT, "anna", t0), None);
    }

    #[test]
    fn connections_opened_faster_than_their_rate_are_refused() {
        let security = security(SecurityConfig::default());
        let t0 = Instant::now();
        // 50 connections a second: a burst of 100 passes, the 101st waits 20 ms.
        for _ in 0..100 {
            assert_eq!(
                security.admit(ATTACKER, Limited::Connection, false, t0),
                Admission::Pass
            );
        }
        assert_eq!(
            security.admit(ATTACKER, Limited::Connection, false, t0),
            Admission::Limited(Duration::from_millis(20))
        );
        // Requests have buckets of their own; a trusted trunk's address has no limit.
        assert_eq!(
            security.admit(ATTACKER, Limited::Register, false, t0),
            Admission::Pass
        );
        for _ in 0..1000 {
            assert_eq!(
                security.admit(AGENT, Limited::Connection, true, t0),
                Admission::Pass
            );
        }
        assert_eq!(
            security.admit(
                ATTACKER,
                Limited::Connection,
                false,
                t0 + Duration::from_millis(21)
            ),
            Admission::Pass
        );
    }

    #[test]
    fn connections_are_capped_per_source_and_given_back_when_dropped() {
        let security = Arc::new(security(SecurityConfig {
            connections_per_source: 2,
            ..SecurityConfig::default()
        }));
        let first = security.open_connection(ATTACKER, false).unwrap();
        let second = security.open_connection(ATTACKER, false).unwrap();
        assert!(security.open_connection(ATTACKER, false).is_none());
        assert!(security.open_connection(ATTACKER, false).is_none());
        // Another address has a cap of its own; a trusted trunk's address has none.
        let agent = security.open_connection(AGENT, false).unwrap();
        let trunk: Vec<_> = (0..5)
            .map(|_| security.open_connection(AGENT, true).unwrap())
            .collect();
        assert_eq!(security.counters.connections_open(), 8);
        let refused = |security: &Security| {
            security
                .counters
                .refusals()
                .find(|(reason, _)| *reason == "connections")
                .unwrap()
                .1
        };
        assert_eq!(refused(&security), 2);

        drop(first);
        let third = security.open_connection(ATTACKER, false).unwrap();
        assert!(security.open_connection(ATTACKER, false).is_none());
        assert_eq!(refused(&security), 3);

        // A source without connections leaves no entry behind.
        drop((second, third, agent, trunk));
        assert!(security.connections.is_empty());
        assert_eq!(security.counters.connections_open(), 0);

        // 0: no cap.
        let open = Arc::new(Security::new(
            SecurityConfig {
                connections_per_source: 0,
                ..SecurityConfig::default()
            },
            Arc::new(SipCounters::default()),
        ));
        let many: Vec<_> = (0..1000)
            .map(|_| open.open_connection(ATTACKER, false).unwrap())
            .collect();
        assert_eq!(open.counters.connections_open(), 1000);
        drop(many);
        assert!(open.connections.is_empty());
    }

    #[test]
    fn the_tables_are_swept_and_bounded() {
        let security = security(SecurityConfig::default());
        let t0 = Instant::now();
        for n in 0..100u8 {
            let source = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, n));
            security.admit(source, Limited::Register, false, t0);
            security.auth_failed(
                source,
                "anna",
                "REGISTER",
                AuthFailure::WrongPassword,
                false,
                t0,
            );
        }
        assert_eq!(security.sources.len(), 100);
        security.sweep(t0 + Duration::from_secs(10));
        assert_eq!(
            security.sources.len(),
            100,
            "failures are remembered for the window"
        );
        security.sweep(t0 + Duration::from_secs(3601));
        assert!(security.sources.is_empty() && security.pairs.is_empty());
    }
}
