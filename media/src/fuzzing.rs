//! Entry points for the fuzz targets in `fuzz/`: the paths that read what the network sends
//! (RTP datagrams, RFC 4733 telephone-events) are crate-private, driven by a
//! [`crate::MediaSession`]'s task. This module hands them to a fuzzer without sockets or a
//! runtime. Compiled only with the `fuzzing` feature; nothing else should use it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::dtmf::{DtmfDetector, DtmfSender, TelephoneEvent, digit_event};
use crate::session_state::SessionState;
use crate::{Leg, MediaCounters, MediaEvent, RemoteMedia, SessionConfig};

/// A packet the session wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The leg whose socket sends it.
    pub leg: Leg,
    /// Where to.
    pub destination: SocketAddr,
    /// The whole RTP packet.
    pub packet: Vec<u8>,
}

/// One call's media decisions (the sans-IO state a [`crate::MediaSession`] runs), with
/// time as an argument.
pub struct Session {
    state: SessionState,
}

impl Session {
    /// A session serving the caller leg, as [`crate::MediaSession::start`] makes it.
    pub fn new(
        now: Instant,
        caller: RemoteMedia,
        config: SessionConfig,
        counters: Arc<MediaCounters>,
    ) -> Self {
        Self {
            state: SessionState::new(now, caller, config, counters),
        }
    }

    /// As [`crate::MediaSession::bridge`].
    pub fn bridge(&mut self, now: Instant, agent: RemoteMedia) {
        self.state.handle_bridge(now, agent);
    }

    /// As [`crate::MediaSession::hold`].
    pub fn hold(&mut self, now: Instant) {
        self.state.handle_hold(now);
    }

    /// As [`crate::MediaSession::update_remote`].
    pub fn update_remote(&mut self, now: Instant, leg: Leg, remote: RemoteMedia) {
        self.state.handle_update_remote(now, leg, remote);
    }

    /// As [`crate::MediaSession::send_dtmf`].
    pub fn send_dtmf(&mut self, now: Instant, leg: Leg, digit: char) {
        self.state.handle_send_dtmf(now, leg, digit);
    }

    /// A datagram arrived on `leg`'s socket from `from`: the packet relayed to the other
    /// leg, if any.
    pub fn datagram(
        &mut self,
        now: Instant,
        leg: Leg,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Option<Sent> {
        self.state
            .handle_datagram(now, leg, from, datagram)
            .map(|transmit| Sent {
                leg: transmit.leg,
                destination: transmit.destination,
                packet: transmit.packet.to_vec(),
            })
    }

    /// When [`Session::timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.state.poll_timeout()
    }

    /// Time passed: the packet due first at `now`, if any.
    pub fn timeout(&mut self, now: Instant) -> Option<Sent> {
        self.state.handle_timeout(now).map(|transmit| Sent {
            leg: transmit.leg,
            destination: transmit.destination,
            packet: transmit.packet.to_vec(),
        })
    }

    /// The next event for the call flow.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.state.poll_event()
    }
}

/// An RFC 4733 §2.3 payload read: `(event, end, duration)`, or `None` when shorter than
/// four bytes.
pub fn telephone_event(payload: &[u8]) -> Option<(u8, bool, u16)> {
    TelephoneEvent::parse(payload).map(|event| (event.event, event.end, event.duration))
}

/// The detector of one incoming stream's key presses.
#[derive(Debug, Default)]
pub struct Detector(DtmfDetector);

impl Detector {
    /// A telephone-event packet's payload arrived with this SSRC and RTP timestamp: the key
    /// and how long it was held, on the first end packet of a DTMF event.
    pub fn handle(
        &mut self,
        ssrc: u32,
        timestamp: u32,
        payload: &[u8],
    ) -> Option<(char, Duration)> {
        let event = TelephoneEvent::parse(payload)?;
        self.0.handle(ssrc, timestamp, event)
    }
}

/// One packet of a telephone-event Amico sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    /// The event's start, the same in all of its packets.
    pub timestamp: u32,
    /// On the event's first packet only.
    pub marker: bool,
    /// The 4-byte payload of RFC 4733 §2.3.
    pub payload: [u8; 4],
}

/// The key presses Amico sends on one leg.
#[derive(Debug, Default)]
pub struct Sender(DtmfSender);

impl Sender {
    /// Queues the key `digit`; `false` when it is no DTMF key or too many wait.
    pub fn push(&mut self, now: Instant, digit: char) -> bool {
        digit_event(digit).is_some_and(|event| self.0.push(now, event))
    }

    /// When the next packet is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.0.poll_timeout()
    }

    /// The packet due at `now`, if any; a new event starts at `timestamp_now`.
    pub fn next_packet(&mut self, now: Instant, timestamp_now: u32) -> Option<EventPacket> {
        self.0
            .next_packet(now, timestamp_now)
            .map(|packet| EventPacket {
                timestamp: packet.timestamp,
                marker: packet.marker,
                payload: packet.payload,
            })
    }
}
