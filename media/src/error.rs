//! The crate's error type.

use std::io;
use std::net::{IpAddr, SocketAddr};

/// Why a media operation failed. Each variant is one cause; the SIP layer maps the SDP ones
/// to a 488 (RFC 3261 §21.4.26) and the port ones to a 503.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// An SDP line could not be read. `line` counts from 1.
    #[error("SDP line {line} ({text:?}): expected {expected}")]
    SdpInvalidLine {
        /// The 1-based line number in the body.
        line: usize,
        /// The offending line, as received.
        text: String,
        /// What the line should have looked like.
        expected: &'static str,
    },
    /// The SDP has no `m=audio` line at all.
    #[error("SDP has no audio media line")]
    SdpNoAudio,
    /// The audio media line has no `c=` line at media or session level (RFC 4566 §5.7).
    #[error("SDP audio has no connection address (c=) at media or session level")]
    SdpNoConnection,
    /// Every audio stream was declined (port 0) or none uses plain RTP.
    #[error("SDP audio offered only over {protocol}, and Amico speaks RTP/AVP")]
    UnsupportedTransport {
        /// The transport of the first audio line, e.g. `RTP/SAVP`.
        protocol: String,
    },
    /// The remote's answer declined the audio stream (port 0, RFC 3264 §6).
    #[error("the SDP answer declined the audio stream")]
    AudioDeclined,
    /// None of the offered audio codecs is one we support.
    #[error("no common audio codec")]
    NoCommonCodec,
    /// The remote's answer chose only payload types that we did not offer (RFC 3264 §6.1).
    #[error("the SDP answer chose payload types {payload_types:?}, none of which we offered")]
    AnswerNotOffered {
        /// The audio payload types listed in the answer.
        payload_types: Vec<u8>,
    },
    /// A port range has no even port (RFC 3550 §11) or its bounds are reversed.
    #[error("RTP port range {min}-{max} holds no even port")]
    InvalidPortRange {
        /// The lowest port of the range.
        min: u16,
        /// The highest port of the range.
        max: u16,
    },
    /// Every even port of the range is in use (by us or by another process).
    #[error("RTP port range {min}-{max} on {address} is exhausted")]
    PortRangeExhausted {
        /// The address the pool binds.
        address: IpAddr,
        /// The lowest port of the range.
        min: u16,
        /// The highest port of the range.
        max: u16,
    },
    /// Binding or configuring an RTP socket failed for a reason other than the port being in
    /// use.
    #[error("cannot bind RTP socket on {address}: {source}")]
    Bind {
        /// The address that was being bound.
        address: SocketAddr,
        /// The operating system's error.
        source: io::Error,
    },
    /// A socket was requested outside a Tokio runtime, which it needs to register with.
    #[error("RTP sockets must be created inside a Tokio runtime")]
    NoRuntime,
}
