//! # amico-sip
//!
//! Amico's SIP edge, on rsipstack's transports, transactions and dialogs (RFC 3261). It
//! speaks protocol and knows nothing about queues: it admits trunk calls, registers
//! agents' phones, places and ends legs, and tells the application what happened.
//!
//! - [`edge::SipEdge`] listens on UDP, TCP and TLS (RFC 3261 §26). Every UDP datagram is
//!   read whole and passes a first look ([`sniff`]) so that a malformed request gets a
//!   400 naming the problem, an unknown method a 501, one too large for UDP a 513, and
//!   garbage a log line: none of it reaches or disturbs the stack. Every parsed request,
//!   whatever its transport, passes [`strict::check`]: one value for single-valued
//!   headers, a Contact in an INVITE, bounded headers and body.
//! - [`security::Security`] limits each source's request rate, throttles failed
//!   authentication per (source, user) and per source, and bans repeat offenders.
//! - [`registrar::Registrar`] binds agents' phones after digest authentication
//!   ([`digest`]: MD5 and SHA-256, RFC 8760, with nonces bound to their request and
//!   replays refused). A name that is not an agent gets exactly what an agent gets.
//! - Trunk INVITEs are admitted by source address or digest credentials; the dialled
//!   number picks the queue (403 for an untrusted source, 404 for an unknown number),
//!   within the trunk's concurrent-call limit.
//! - [`counters::SipCounters`] counts requests by method, responses by class, refusals
//!   and authentication failures.

pub mod counters;
pub mod digest;
pub mod edge;
mod guard;
pub mod registrar;
pub mod security;
pub mod sniff;
pub mod strict;
pub mod websocket;

pub use counters::SipCounters;
pub use digest::{Account, Algorithm};
pub use edge::{
    CallHandler, ClientLeg, EdgeConfig, EdgeEvent, EndReason, Gateway, IncomingCall, LegEvent,
    OverloadCheck, Responder, ServerLeg, SipEdge, TlsSettings, Trunk, Unregistered,
};
pub use registrar::{Binding, RegistrarConfig, Transport};
pub use security::{Rates, SecurityConfig};
pub use strict::Limits;
pub use websocket::WebSocketFlow;

/// Methods the edge accepts (the Allow header).
pub const ALLOWED_METHODS: [&str; 8] = [
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO", "UPDATE",
];

/// What can go wrong in the SIP edge.
#[derive(Debug, thiserror::Error)]
pub enum SipError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The SIP stack refused an operation.
    #[error("SIP stack: {0}")]
    Stack(String),
    /// An agent to ring has no registered phone.
    #[error("agent '{0}' has no registered phone")]
    NotRegistered(String),
    /// A registered contact cannot be parsed as a SIP URI.
    #[error("registered contact '{0}' is not a SIP URI")]
    BadContact(String),
}

impl SipError {
    pub(crate) fn stack(error: rsipstack::Error) -> SipError {
        SipError::Stack(error.to_string())
    }
}
