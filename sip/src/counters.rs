//! SIP counters for the metrics exporter: plain atomics, written on the message path,
//! read when Prometheus scrapes.

use std::sync::atomic::{AtomicU64, Ordering};

/// Methods counted one by one; anything else is counted as `other`.
pub const COUNTED_METHODS: [&str; 10] = [
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO", "UPDATE", "PRACK", "other",
];

/// Response classes 1xx..6xx.
pub const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];

/// Process-wide SIP counters.
#[derive(Debug, Default)]
pub struct SipCounters {
    requests_received: [AtomicU64; COUNTED_METHODS.len()],
    requests_sent: [AtomicU64; COUNTED_METHODS.len()],
    responses_received: [AtomicU64; CLASSES.len()],
    responses_sent: [AtomicU64; CLASSES.len()],
    malformed: AtomicU64,
    /// Of the malformed ones, those answered (400 or 501).
    malformed_answered: AtomicU64,
    /// Failed authentications (wrong password, unknown user, replay, other user).
    pub(crate) auth_failures: AtomicU64,
    /// Users blocked from a source after repeated failures.
    pub(crate) user_blocks: AtomicU64,
    /// Sources banned after repeated failures.
    pub(crate) bans: AtomicU64,
    /// Sources banned right now.
    pub(crate) banned_sources: AtomicU64,
    /// TCP, TLS and WebSocket connections open now.
    pub(crate) connections: AtomicU64,
    /// Requests refused, by reason (`REFUSALS` order).
    refused: [AtomicU64; REFUSALS.len()],
}

/// Why a request or a connection was refused before it was handled: over its source's
/// rate, a user blocked from the source, a trunk at its concurrent-call limit, the server
/// overloaded (requests all answered 503 with Retry-After, connections closed at once), a
/// banned source (dropped), or a connection over its source's cap (closed at once).
pub const REFUSALS: [&str; 6] = [
    "rate",
    "user_blocked",
    "trunk_calls",
    "overload",
    "banned",
    "connections",
];

fn method_index(method: &str) -> usize {
    COUNTED_METHODS
        .iter()
        .position(|m| *m == method)
        .unwrap_or(COUNTED_METHODS.len() - 1)
}

fn class_index(status: u16) -> Option<usize> {
    (100..700)
        .contains(&status)
        .then(|| usize::from(status / 100) - 1)
}

impl SipCounters {
    /// A request arrived.
    pub fn request_received(&self, method: &str) {
        self.requests_received[method_index(method)].fetch_add(1, Ordering::Relaxed);
    }

    /// A request left.
    pub fn request_sent(&self, method: &str) {
        self.requests_sent[method_index(method)].fetch_add(1, Ordering::Relaxed);
    }

    /// A response arrived.
    pub fn response_received(&self, status: u16) {
        if let Some(i) = class_index(status) {
            self.responses_received[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A response left.
    pub fn response_sent(&self, status: u16) {
        if let Some(i) = class_index(status) {
            self.responses_sent[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A message could not be taken; `answered` if it got a 400 or 501.
    pub fn malformed(&self, answered: bool) {
        self.malformed.fetch_add(1, Ordering::Relaxed);
        if answered {
            self.malformed_answered.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Requests received, by method (`COUNTED_METHODS` order).
    pub fn requests_received(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        COUNTED_METHODS
            .iter()
            .zip(&self.requests_received)
            .map(|(m, c)| (*m, c.load(Ordering::Relaxed)))
    }

    /// Requests sent, by method.
    pub fn requests_sent(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        COUNTED_METHODS
            .iter()
            .zip(&self.requests_sent)
            .map(|(m, c)| (*m, c.load(Ordering::Relaxed)))
    }

    /// Responses received, by class.
    pub fn responses_received(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        CLASSES
            .iter()
            .zip(&self.responses_received)
            .map(|(m, c)| (*m, c.load(Ordering::Relaxed)))
    }

    /// Responses sent, by class.
    pub fn responses_sent(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        CLASSES
            .iter()
            .zip(&self.responses_sent)
            .map(|(m, c)| (*m, c.load(Ordering::Relaxed)))
    }

    /// A request refused for `reason` (one of [`REFUSALS`]).
    pub fn refused(&self, reason: &str) {
        if let Some(i) = REFUSALS.iter().position(|r| *r == reason) {
            self.refused[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Requests refused, by reason.
    pub fn refusals(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        REFUSALS
            .iter()
            .zip(&self.refused)
            .map(|(r, c)| (*r, c.load(Ordering::Relaxed)))
    }

    /// Failed authentications.
    pub fn auth_failures_total(&self) -> u64 {
        self.auth_failures.load(Ordering::Relaxed)
    }

    /// Users blocked from a source.
    pub fn user_blocks_total(&self) -> u64 {
        self.user_blocks.load(Ordering::Relaxed)
    }

    /// Sources banned.
    pub fn bans_total(&self) -> u64 {
        self.bans.load(Ordering::Relaxed)
    }

    /// Sources banned now.
    pub fn banned_sources(&self) -> u64 {
        self.banned_sources.load(Ordering::Relaxed)
    }

    /// TCP, TLS and WebSocket connections open now.
    pub fn connections_open(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Messages that could not be taken.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.load(Ordering::Relaxed)
    }

    /// Of those, the ones answered.
    pub fn malformed_answered_total(&self) -> u64 {
        self.malformed_answered.load(Ordering::Relaxed)
    }
}

/// Counts one message by its first line: a request's method or a response's class.
pub fn count_start_line(counters: &SipCounters, datagram: &[u8], outgoing: bool) {
    let line_end = datagram
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(datagram.len());
    let Ok(line) = std::str::from_utf8(&datagram[..line_end]) else {
        return;
    };
    if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
        if let Some(status) = rest.get(..3).and_then(|s| s.parse::<u16>().ok()) {
            if outgoing {
                counters.response_sent(status);
            } else {
                counters.response_received(status);
            }
        }
    } else if let Some(method) = line.split(' ').next().filter(|m| !m.is_empty()) {
        if outgoing {
            counters.request_sent(method);
        } else {
            counters.request_received(method);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_method_and_class() {
        let counters = SipCounters::default();
        count_start_line(&counters, b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n", false);
        count_start_line(&counters, b"FOO sip:a@b SIP/2.0\r\n", false);
        count_start_line(&counters, b"SIP/2.0 180 Ringing\r\n", true);
        count_start_line(&counters, b"SIP/2.0 486 Busy Here\r\n", false);
        count_start_line(&counters, b"\xff\xfe", false);
        let received: Vec<_> = counters
            .requests_received()
            .filter(|(_, n)| *n > 0)
            .collect();
        assert_eq!(received, [("INVITE", 1), ("other", 1)]);
        assert_eq!(
            counters.responses_sent().find(|(c, _)| *c == "1xx"),
            Some(("1xx", 1))
        );
        assert_eq!(
            counters.responses_received().find(|(c, _)| *c == "4xx"),
            Some(("4xx", 1))
        );
        counters.malformed(true);
        counters.malformed(false);
        assert_eq!(
            (
                counters.malformed_total(),
                counters.malformed_answered_total()
            ),
            (2, 1)
        );
    }
}
