//! # amico-sip
//!
//! Amico's SIP edge, on rsipstack's transports, transactions and dialogs (RFC 3261). It
//! speaks protocol and knows nothing about queues: it admits trunk calls, registers
//! agents' phones, places and ends legs, and tells the application what happened.
//!
//! - [`edge::SipEdge`] listens on UDP and TCP. Every UDP datagram passes a first look
//!   ([`sniff`]) so that a malformed request gets a 400 naming the problem, an unknown
//!   method a 501, and garbage a log line: none of it reaches or disturbs the stack.
//! - [`registrar::Registrar`] binds agents' phones after digest authentication
//!   ([`digest`]: MD5 and SHA-256, RFC 8760).
//! - Trunk INVITEs are admitted by source address or digest credentials; the dialled
//!   number picks the queue (403 for an untrusted source, 404 for an unknown number).
//! - [`counters::SipCounters`] counts requests by method and responses by class.

pub mod counters;
pub mod digest;
pub mod edge;
mod guard;
pub mod registrar;
pub mod sniff;

pub use counters::SipCounters;
pub use edge::{
    ClientLeg, EdgeConfig, EdgeEvent, EndReason, IncomingCall, LegEvent, Responder, ServerLeg,
    SipEdge, Trunk, Unregistered,
};
pub use registrar::{Binding, RegistrarConfig, Transport};

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
    fn stack(error: rsipstack::Error) -> SipError {
        SipError::Stack(error.to_string())
    }
}
