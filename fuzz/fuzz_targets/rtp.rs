//! RTP datagrams arriving on a call's two legs, mixed with the call flow's commands
//! (bridge, hold, re-INVITEs, DTMF to send) and the passing of time, driving the media
//! session's sans-IO state as its task does. The input's bytes pick the legs' formats,
//! then each operation and how far the clock moves before it.
//!
//! Checked besides "no panic":
//! - every packet we send is RTP version 2 that reads back (RFC 3550 §5.1);
//! - a relayed packet goes out on the other leg, with the received payload's length
//!   (G.711 transcodes byte for byte) or the received telephone-event payload unchanged;
//! - we send only to a leg's SDP address or an address that sent that leg RTP (RFC 4961
//!   symmetric RTP), never somewhere an attacker merely named;
//! - at any instant, a handful of wake-ups clears everything due (the task never spins);
//! - a DTMF event reports a key of RFC 4733 §3.2.
//!
//! amico-media reads no RTCP (the odd port of each pair is not opened), so RTP it is.

#![no_main]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use amico_media::fuzzing::{Sent, Session};
use amico_media::{
    AudioFormat, Codec, Direction, Leg, MediaCounters, MediaEvent, RemoteMedia, SessionConfig,
};
use libfuzzer_sys::fuzz_target;
use rtp_rs::RtpReader;

/// Larger than any datagram the session task reads (its receive buffer).
const MAX_DATAGRAM: usize = 2048;

/// Packets one wake-up may send before the state must have moved its deadline past now
/// (the session task's own bound).
const MAX_DUE_PER_WAKE: usize = 8;

const CALLER: &str = "192.0.2.10:4000";
const AGENT: &str = "192.0.2.20:5000";
const STRANGERS: [&str; 2] = ["198.51.100.1:4000", "198.51.100.2:4002"];

/// The fuzz input, read front to back; zeros once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&first, rest)) => {
                self.0 = rest;
                first
            }
            None => 0,
        }
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("an address")
}

/// A leg's SDP, from one byte: law, dynamic or static payload type, telephone-event PT,
/// direction, and sometimes an address of 0.0.0.0 (an RFC 2543 hold).
fn remote(at: &str, byte: u8) -> RemoteMedia {
    let codec = if byte & 1 == 0 {
        Codec::Pcmu
    } else {
        Codec::Pcma
    };
    let mut format = AudioFormat::new(codec, (byte & 2 != 0).then_some(101));
    if byte & 4 != 0 {
        format.payload_type = 96;
    }
    let direction = match (byte >> 3) & 3 {
        0 => Direction::SendRecv,
        1 => Direction::SendOnly,
        2 => Direction::RecvOnly,
        _ => Direction::Inactive,
    };
    let mut addr = addr(at);
    if byte & 0x60 == 0x60 {
        addr.set_ip("0.0.0.0".parse().expect("an address"));
    }
    RemoteMedia {
        addr,
        format,
        direction,
    }
}

/// An RTP packet from fields, so that most inputs get past the header.
fn rtp(bytes: &mut Bytes<'_>, format: AudioFormat) -> Vec<u8> {
    let choice = bytes.byte();
    let payload_type = match choice % 5 {
        0 => format.payload_type,
        1 => format.telephone_event.unwrap_or(101),
        2 => 0,
        3 => 8,
        _ => choice & 0x7f,
    };
    let marker = choice & 0x80;
    let sequence = bytes.u16();
    let timestamp = bytes.u32();
    let ssrc = u32::from(bytes.byte() & 3);
    let length = usize::from(bytes.byte());
    let mut packet = vec![0x80, marker | payload_type];
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(&timestamp.to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet.extend_from_slice(bytes.take(length));
    packet
}

struct Call {
    session: Session,
    caller: RemoteMedia,
    agent: Option<RemoteMedia>,
    /// Addresses that sent each leg something: where symmetric RTP may send.
    heard: [HashSet<SocketAddr>; 2],
    now: Instant,
}

fn index(leg: Leg) -> usize {
    match leg {
        Leg::Caller => 0,
        Leg::Agent => 1,
    }
}

impl Call {
    fn remote(&self, leg: Leg) -> Option<RemoteMedia> {
        match leg {
            Leg::Caller => Some(self.caller),
            Leg::Agent => self.agent,
        }
    }

    fn check_sent(&self, sent: &Sent) {
        let reader = RtpReader::new(&sent.packet)
            .unwrap_or_else(|e| panic!("we sent RTP that does not read back: {e:?}"));
        assert_eq!(reader.version(), 2);
        let remote = self
            .remote(sent.leg)
            .unwrap_or_else(|| panic!("sent on the {} leg, which is not there", sent.leg));
        assert!(
            sent.destination == remote.addr
                || self.heard[index(sent.leg)].contains(&sent.destination),
            "sent to {} on the {} leg: neither its SDP address {} nor a source it heard",
            sent.destination,
            sent.leg,
            remote.addr
        );
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            if let MediaEvent::Dtmf { digit, .. } = event {
                assert!("0123456789*#ABCD!".contains(digit), "digit {digit:?}");
            }
        }
    }

    /// Moves the clock and runs every wake-up due on the way, as the task does.
    fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        loop {
            match self.session.poll_timeout() {
                Some(due) if due <= target => {
                    self.now = self.now.max(due);
                    let mut sent = 0;
                    while self
                        .session
                        .poll_timeout()
                        .is_some_and(|due| due <= self.now)
                    {
                        sent += 1;
                        assert!(
                            sent <= MAX_DUE_PER_WAKE,
                            "the session does not advance past {:?}",
                            self.now
                        );
                        if let Some(packet) = self.session.timeout(self.now) {
                            self.check_sent(&packet);
                        }
                        self.drain_events();
                    }
                }
                _ => break,
            }
        }
        self.now = target;
    }

    fn datagram(&mut self, leg: Leg, from: SocketAddr, datagram: &[u8]) {
        let received = RtpReader::new(datagram)
            .ok()
            .map(|reader| (reader.payload_type(), reader.payload().to_vec()));
        if received.is_some() {
            self.heard[index(leg)].insert(from);
        }
        let relayed = self.session.datagram(self.now, leg, from, datagram);
        self.drain_events();
        let Some(relayed) = relayed else { return };
        let (payload_type, payload) = received.expect("only valid RTP is relayed");
        assert_eq!(
            relayed.leg,
            leg.other(),
            "relayed back on the leg it came from"
        );
        self.check_sent(&relayed);
        let input = self
            .remote(leg)
            .expect("received on a leg that is there")
            .format;
        let out = RtpReader::new(&relayed.packet).expect("checked");
        if Some(payload_type) == input.telephone_event {
            assert_eq!(out.payload(), &payload[..], "telephone-event altered");
        } else {
            assert_eq!(out.payload().len(), payload.len(), "G.711 changed length");
        }
    }
}

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = Bytes(data);
    let setup = bytes.byte();
    let now = origin();
    let caller = remote(CALLER, bytes.byte());
    let config = SessionConfig {
        rtp_timeout: (setup & 1 != 0).then(|| Duration::from_millis(500)),
        comfort_level_dbov: -50.0,
    };
    let counters = Arc::new(MediaCounters::default());
    let mut call = Call {
        session: Session::new(now, caller, config, counters),
        caller,
        agent: None,
        heard: [HashSet::new(), HashSet::new()],
        now,
    };
    for _ in 0..256 {
        if bytes.is_empty() {
            break;
        }
        let op = bytes.byte();
        // Up to a second between operations, in 4 ms steps.
        call.advance(Duration::from_millis(u64::from(bytes.byte()) * 4));
        let leg = if op & 0x10 == 0 {
            Leg::Caller
        } else {
            Leg::Agent
        };
        let from = match (op >> 5) & 3 {
            0 | 1 => call.remote(leg).map_or(addr(STRANGERS[0]), |r| r.addr),
            2 => addr(STRANGERS[0]),
            _ => addr(STRANGERS[1]),
        };
        match op & 0x0f {
            0..=2 => {
                let length = usize::from(bytes.u16()) % (MAX_DATAGRAM + 1);
                let datagram = bytes.take(length).to_vec();
                call.datagram(leg, from, &datagram);
            }
            3..=8 => {
                let format = call.remote(leg).map_or(caller.format, |r| r.format);
                let datagram = rtp(&mut bytes, format);
                call.datagram(leg, from, &datagram);
            }
            9 => {
                let agent = remote(AGENT, bytes.byte());
                call.session.bridge(call.now, agent);
                call.agent = Some(agent);
                call.heard[1].clear();
            }
            10 => {
                call.session.hold(call.now);
                call.agent = None;
                call.heard[1].clear();
            }
            11 => {
                let at = if leg == Leg::Caller { CALLER } else { AGENT };
                let updated = remote(at, bytes.byte());
                call.session.update_remote(call.now, leg, updated);
                match leg {
                    Leg::Caller => call.caller = updated,
                    Leg::Agent => {
                        if call.agent.is_some() {
                            call.agent = Some(updated);
                        }
                    }
                }
            }
            _ => {
                let digit = char::from(bytes.byte());
                call.session.send_dtmf(call.now, leg, digit);
            }
        }
    }
    call.advance(Duration::from_secs(2));
});
