//! What a media session reports to the call flow.

use std::fmt;
use std::time::Duration;

/// One side of a call's media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    /// The caller, usually arriving on a PBX trunk; present for the whole session.
    Caller,
    /// The agent's phone; present only while bridged.
    Agent,
}

impl Leg {
    /// The other leg of the bridge.
    pub const fn other(self) -> Self {
        match self {
            Self::Caller => Self::Agent,
            Self::Agent => Self::Caller,
        }
    }

    /// A lower-case name, for logs and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Caller => "caller",
            Self::Agent => "agent",
        }
    }
}

impl fmt::Display for Leg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something the call flow may act on, sent on the receiver returned by
/// [`MediaSession::start`](crate::MediaSession::start).
///
/// New variants will come (it is `#[non_exhaustive]`): a call flow's `match` needs a `_` arm
/// that ignores the events it does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaEvent {
    /// No RTP arrived on `leg` for the configured `rtp_timeout` while the leg was expected to
    /// send (not on hold, not inactive). Sent once; sent again only after RTP resumed or the
    /// leg's remote was updated, and the timeout passed again.
    RtpTimeout {
        /// The silent leg.
        leg: Leg,
    },
    /// A DTMF key press ended on `leg` (RFC 4733 §2.5: reported once per event, on the first
    /// packet with the end bit; the repeated end packets are not reported again).
    Dtmf {
        /// The leg the key was pressed on.
        leg: Leg,
        /// `0`-`9`, `*`, `#`, `A`-`D` (RFC 4733 §3.2 events 0-15), or `!` for a flash (16).
        digit: char,
        /// How long the key was held, from the event's duration field.
        duration: Duration,
    },
    /// The announcements of the playlist given to
    /// [`MediaSession::play`](crate::MediaSession::play) with this `id` have all been sent:
    /// reported once, right after the packet carrying the sequence's last frame (with the
    /// first frame for a playlist whose sequence is empty). The background, if any, goes on
    /// looping. A playlist replaced by another `play` or discarded by a bridge before its
    /// sequence ended reports nothing.
    PlaylistDone {
        /// The id given to `play`.
        id: u64,
    },
}
