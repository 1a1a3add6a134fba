//! What each leg negotiated: codec, payload types, address and direction.

use crate::Codec;
use std::net::SocketAddr;

/// The negotiated audio format of one leg.
///
/// `payload_type` is usually the codec's static type but may be a dynamic one when the
/// remote mapped PCMU or PCMA to a dynamic number in its `a=rtpmap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AudioFormat {
    /// The G.711 law spoken on this leg.
    pub codec: Codec,
    /// The RTP payload type carrying `codec` on this leg.
    pub payload_type: u8,
    /// The RFC 4733 `telephone-event/8000` payload type, if the leg negotiated one.
    pub telephone_event: Option<u8>,
}

impl AudioFormat {
    /// A format using the codec's static payload type.
    pub const fn new(codec: Codec, telephone_event: Option<u8>) -> Self {
        Self {
            codec,
            payload_type: codec.payload_type(),
            telephone_event,
        }
    }
}

/// An SDP media direction attribute (RFC 3264 §5.1), from the point of view of the side
/// whose SDP carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// `a=sendrecv`, also the default when no direction is given (RFC 4566 §6).
    #[default]
    SendRecv,
    /// `a=sendonly`: the side sends but will not receive (a hold, RFC 3264 §8.4).
    SendOnly,
    /// `a=recvonly`: the side receives but will not send.
    RecvOnly,
    /// `a=inactive`: neither.
    Inactive,
}

impl Direction {
    /// The direction the answerer states for an offer with this one (RFC 3264 §6.1).
    pub const fn mirrored(self) -> Self {
        match self {
            Self::SendRecv => Self::SendRecv,
            Self::SendOnly => Self::RecvOnly,
            Self::RecvOnly => Self::SendOnly,
            Self::Inactive => Self::Inactive,
        }
    }

    /// Whether the side stating this direction sends media.
    pub const fn sends(self) -> bool {
        matches!(self, Self::SendRecv | Self::SendOnly)
    }

    /// Whether the side stating this direction wants to receive media.
    pub const fn receives(self) -> bool {
        matches!(self, Self::SendRecv | Self::RecvOnly)
    }

    /// The attribute name as written in SDP.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }
}

/// What a remote side's SDP says about its audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RemoteMedia {
    /// Where the remote wants its RTP: the `c=` address and the `m=` port. An unspecified
    /// address (`0.0.0.0`) means the remote is on hold in the RFC 2543 style (RFC 3264 §8.4).
    pub addr: SocketAddr,
    /// The format both sides agreed for this leg.
    pub format: AudioFormat,
    /// The direction as the remote stated it: `SendOnly` means the remote put us on hold.
    pub direction: Direction,
}

impl RemoteMedia {
    /// Whether we may send RTP to this remote: it wants media and gave a usable address.
    pub fn accepts_rtp(&self) -> bool {
        self.direction.receives() && !self.addr.ip().is_unspecified() && self.addr.port() != 0
    }

    /// Whether this remote is expected to keep sending RTP, so silence means trouble.
    /// False while it holds the call, by either hold style (RFC 3264 §8.4, RFC 2543).
    pub fn sends_rtp(&self) -> bool {
        self.direction == Direction::SendRecv && !self.addr.ip().is_unspecified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(addr: &str, direction: Direction) -> RemoteMedia {
        RemoteMedia {
            addr: addr.parse().unwrap(),
            format: AudioFormat::new(Codec::Pcmu, Some(101)),
            direction,
        }
    }

    #[test]
    fn direction_mirrors_as_rfc_3264_says() {
        assert_eq!(Direction::SendOnly.mirrored(), Direction::RecvOnly);
        assert_eq!(Direction::RecvOnly.mirrored(), Direction::SendOnly);
        assert_eq!(Direction::Inactive.mirrored(), Direction::Inactive);
        assert_eq!(Direction::SendRecv.mirrored(), Direction::SendRecv);
    }

    #[test]
    fn hold_in_either_style_stops_sending_and_expecting() {
        let active = remote("192.0.2.1:4000", Direction::SendRecv);
        assert!(active.accepts_rtp() && active.sends_rtp());
        let sendonly = remote("192.0.2.1:4000", Direction::SendOnly);
        assert!(!sendonly.accepts_rtp() && !sendonly.sends_rtp());
        let zero = remote("0.0.0.0:4000", Direction::SendRecv);
        assert!(!zero.accepts_rtp() && !zero.sends_rtp());
        let inactive = remote("192.0.2.1:4000", Direction::Inactive);
        assert!(!inactive.accepts_rtp() && !inactive.sends_rtp());
    }
}
