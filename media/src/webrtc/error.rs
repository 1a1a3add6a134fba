//! Why a WebRTC agent leg could not be set up or renegotiated.

use std::io;
use std::net::SocketAddr;

/// Why a WebRTC operation failed. The SDP ones are the browser's fault and map to a 488 in
/// SIP (RFC 3261 §21.4.26); the endpoint ones are local and map to a 503 or a startup error.
#[derive(Debug, thiserror::Error)]
pub enum WebRtcError {
    /// Binding the endpoint's UDP socket failed.
    #[error("cannot bind the WebRTC socket on {address}: {source}")]
    Bind {
        /// The address that was being bound.
        address: SocketAddr,
        /// The operating system's error.
        source: io::Error,
    },
    /// The endpoint was created outside a Tokio runtime, which its socket needs.
    #[error("the WebRTC endpoint must be created inside a Tokio runtime")]
    NoRuntime,
    /// The crypto provider could not make the endpoint's DTLS certificate.
    #[error("no DTLS certificate could be generated")]
    NoCertificate,
    /// The configured media address cannot be an ICE host candidate (unspecified or
    /// multicast; RFC 8445 §5.1.1.1).
    #[error("{address} cannot be an ICE host candidate")]
    UnusableAddress {
        /// The address given.
        address: SocketAddr,
    },
    /// The random ICE ufrag of a new leg is a live leg's (one chance in about 2^95).
    #[error("the new leg's ICE ufrag is already in use")]
    UfragInUse,
    /// A leg was asked for with no codec to offer.
    #[error("a WebRTC leg needs at least one of PCMU and PCMA")]
    NoCodec,
    /// The browser's SDP could not be read.
    #[error("the browser's SDP cannot be read: {0}")]
    InvalidSdp(#[source] str0m::error::SdpError),
    /// str0m refused the browser's SDP (no fingerprint, both sides ICE-lite, a role conflict,
    /// an answer to an offer that was replaced meanwhile...).
    #[error("the browser's SDP was refused: {0}")]
    Refused(#[source] str0m::RtcError),
    /// [`WebRtcLeg::accept_answer`](crate::WebRtcLeg::accept_answer) without an offer sent
    /// first, or a second time for the same offer.
    #[error("no offer is waiting for an answer")]
    NoOfferPending,
    /// The browser's SDP has no audio stream Amico can use: declined (port 0) or with neither
    /// PCMU nor PCMA.
    #[error("the browser's SDP has no PCMU or PCMA audio")]
    NoCommonCodec,
    /// An offer from the browser for a call whose agent leg is not a WebRTC leg (or is not
    /// there, or the session has stopped).
    #[error("the call has no WebRTC agent leg")]
    NoWebRtcLeg,
}
