//! The sans-IO heart of a media session: every decision about who sends what, with time as
//! an argument and packets in and out as bytes. [`crate::MediaSession`] only moves bytes
//! between it and the sockets.

use crate::counters::{DropReason, MediaCounters};
use crate::dtmf::{DtmfDetector, TelephoneEvent};
use crate::source::{AudioSource, ComfortNoise, FRAME_SAMPLES, Frame};
use crate::stream::{Header, OutgoingStream, build_packet};
use crate::{Codec, Leg, MediaEvent, RemoteMedia, SessionConfig, g711};
use rtp_rs::RtpReader;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One frame of G.711 every 20 ms (RFC 3551 §4.5).
const FRAME_DURATION: Duration = Duration::from_millis(20);

/// How long the latched source must have been silent before another source may take its place
/// (a NAT rebinding mid-call). Shorter would let a stranger's packets take over a call during
/// any pause; longer would cut the audio of a phone whose NAT mapping changed.
const RELATCH_AFTER: Duration = Duration::from_secs(1);

/// Why a packet is being sent, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TransmitKind {
    /// Received on one leg, sent on the other.
    Relayed,
    /// Made by Amico (comfort noise, later prompts).
    Generated,
}

/// A packet to send now.
#[derive(Debug)]
pub(crate) struct Transmit<'a> {
    /// The leg whose socket sends it.
    pub(crate) leg: Leg,
    pub(crate) destination: SocketAddr,
    pub(crate) packet: &'a [u8],
    pub(crate) kind: TransmitKind,
}

/// One leg: what its remote negotiated, where it really sends from, and our stream to it.
#[derive(Debug)]
struct LegState {
    remote: RemoteMedia,
    /// The source address RTP actually comes from (RFC 4961 symmetric RTP): once known, our
    /// packets go there instead of to the SDP address, which a NATed phone cannot be reached
    /// on.
    latched: Option<SocketAddr>,
    latched_heard_at: Option<Instant>,
    /// Last valid RTP received, or when RTP became expected (start, update): the RTP timeout
    /// counts from here.
    last_activity: Instant,
    timeout_reported: bool,
    outgoing: OutgoingStream,
    dtmf: DtmfDetector,
}

impl LegState {
    fn new(now: Instant, remote: RemoteMedia) -> Self {
        Self {
            remote,
            latched: None,
            latched_heard_at: None,
            last_activity: now,
            timeout_reported: false,
            outgoing: OutgoingStream::new(),
            dtmf: DtmfDetector::default(),
        }
    }

    fn destination(&self) -> SocketAddr {
        self.latched.unwrap_or(self.remote.addr)
    }

    fn timeout_deadline(&self, timeout: Option<Duration>) -> Option<Instant> {
        let timeout = timeout?;
        (self.remote.sends_rtp() && !self.timeout_reported).then(|| self.last_activity + timeout)
    }

    /// Symmetric RTP latching; `false` when the packet comes from a stranger.
    fn accept_source(&mut self, now: Instant, from: SocketAddr) -> bool {
        let trusted = match self.latched {
            None => true,
            Some(latched) if latched == from => true,
            // The SDP address is the remote's own word, so it always wins (a re-INVITE moving
            // the media back to where it says).
            Some(_) if from == self.remote.addr => true,
            Some(_) => self
                .latched_heard_at
                .is_none_or(|heard| now.saturating_duration_since(heard) >= RELATCH_AFTER),
        };
        if !trusted {
            return false;
        }
        if self.latched != Some(from) {
            tracing::debug!(%from, sdp = %self.remote.addr, "RTP latched on source");
            self.latched = Some(from);
        }
        self.latched_heard_at = Some(now);
        true
    }
}

/// When the next generated frame is due (packet n at start + n·20 ms).
#[derive(Debug)]
struct Pacer {
    next_due: Instant,
    /// Media time since the previous generated frame, for its timestamp.
    advance: u32,
}

/// What a received RTP payload is.
#[derive(Debug, Clone, Copy)]
enum Payload {
    Audio(Codec),
    Event(TelephoneEvent),
}

/// A call's media decisions: the caller leg, the agent leg while bridged, and what the caller
/// hears in between.
pub(crate) struct SessionState {
    config: SessionConfig,
    counters: Arc<MediaCounters>,
    caller: LegState,
    agent: Option<LegState>,
    /// What the caller hears while not bridged.
    source: Box<dyn AudioSource>,
    /// `Some` while the caller is sent generated audio.
    pacer: Option<Pacer>,
    events: VecDeque<MediaEvent>,
    // Reused for every packet so that the relay allocates nothing per packet.
    packet: Vec<u8>,
    payload: Vec<u8>,
    frame: Frame,
}

impl SessionState {
    pub(crate) fn new(
        now: Instant,
        caller: RemoteMedia,
        config: SessionConfig,
        counters: Arc<MediaCounters>,
    ) -> Self {
        let source = Box::new(ComfortNoise::new(config.comfort_level_dbov));
        let mut state = Self {
            config,
            counters,
            caller: LegState::new(now, caller),
            agent: None,
            source,
            pacer: None,
            events: VecDeque::new(),
            packet: Vec::with_capacity(1500),
            payload: Vec::with_capacity(1500),
            frame: [0; FRAME_SAMPLES],
        };
        state.refresh_pacer(now);
        state
    }

    /// Replaces what the caller hears while waiting (prompts and music will come this way).
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "the prompt and music commands will use it")
    )]
    pub(crate) fn set_source(&mut self, source: Box<dyn AudioSource>) {
        self.source = source;
    }

    pub(crate) fn caller_ssrc(&self) -> u32 {
        self.caller.outgoing.ssrc()
    }

    /// Starts or stops generating for the caller: only while not bridged and while the caller
    /// accepts media (not holding us, RFC 3264 §8.4).
    fn refresh_pacer(&mut self, now: Instant) {
        let wanted = self.agent.is_none() && self.caller.remote.accepts_rtp();
        match (wanted, self.pacer.is_some()) {
            (true, false) => {
                self.caller.outgoing.switch();
                self.pacer = Some(Pacer {
                    next_due: now,
                    advance: FRAME_SAMPLES as u32,
                });
            }
            (false, true) => self.pacer = None,
            _ => {}
        }
    }

    /// Bridges an agent leg: from now on RTP is relayed both ways.
    pub(crate) fn handle_bridge(&mut self, now: Instant, agent: RemoteMedia) {
        self.agent = Some(LegState::new(now, agent));
        self.pacer = None;
        self.caller.outgoing.switch();
    }

    /// Releases the agent leg; the caller hears the waiting audio again.
    pub(crate) fn handle_hold(&mut self, now: Instant) {
        if self.agent.take().is_some() {
            self.caller.outgoing.switch();
        }
        self.refresh_pacer(now);
    }

    /// A re-INVITE changed what `leg`'s remote wants. The leg keeps its outgoing stream, so the
    /// bridge and the receiver's view of our stream survive.
    pub(crate) fn handle_update_remote(&mut self, now: Instant, leg: Leg, remote: RemoteMedia) {
        let Some(state) = self.leg_mut(leg) else {
            tracing::debug!(%leg, "remote update for a leg that is not there");
            return;
        };
        if remote.addr != state.remote.addr {
            // A new address in SDP makes the old latch stale; relearn from what arrives.
            state.latched = None;
            state.latched_heard_at = None;
        }
        let resumed = remote.accepts_rtp() && !state.remote.accepts_rtp();
        state.remote = remote;
        state.last_activity = now;
        state.timeout_reported = false;
        if resumed {
            state.outgoing.switch();
        }
        if leg == Leg::Caller {
            self.refresh_pacer(now);
        }
    }

    fn leg_mut(&mut self, leg: Leg) -> Option<&mut LegState> {
        match leg {
            Leg::Caller => Some(&mut self.caller),
            Leg::Agent => self.agent.as_mut(),
        }
    }

    /// The next event for the call flow.
    pub(crate) fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// When [`SessionState::handle_timeout`] must run next.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let timeout = self.config.rtp_timeout;
        [
            self.pacer.as_ref().map(|pacer| pacer.next_due),
            self.caller.timeout_deadline(timeout),
            self.agent
                .as_ref()
                .and_then(|agent| agent.timeout_deadline(timeout)),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Time passed: reports silent legs and makes the due frame, if any.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Option<Transmit<'_>> {
        let timeout = self.config.rtp_timeout;
        for (leg, state) in [
            (Leg::Caller, Some(&mut self.caller)),
            (Leg::Agent, self.agent.as_mut()),
        ] {
            let Some(state) = state else { continue };
            if state
                .timeout_deadline(timeout)
                .is_some_and(|deadline| now >= deadline)
            {
                state.timeout_reported = true;
                tracing::info!(%leg, "no RTP received within the timeout");
                self.events.push_back(MediaEvent::RtpTimeout { leg });
            }
        }
        self.generate(now)
    }

    fn generate(&mut self, now: Instant) -> Option<Transmit<'_>> {
        let pacer = self.pacer.as_mut().filter(|pacer| now >= pacer.next_due)?;
        let advance = pacer.advance;
        // Packet n is due at start + n·20 ms. A task that woke late sends the frame once and
        // skips the frames whose time has passed rather than bursting them (the timestamp
        // still covers them, RFC 3550 §5.1).
        pacer.next_due += FRAME_DURATION;
        pacer.advance = FRAME_SAMPLES as u32;
        while pacer.next_due <= now {
            pacer.next_due += FRAME_DURATION;
            pacer.advance += FRAME_SAMPLES as u32;
        }

        if !self.source.next_frame(&mut self.frame) {
            // A finished source gives way to comfort noise rather than dead air.
            self.source = Box::new(ComfortNoise::new(self.config.comfort_level_dbov));
            self.source.next_frame(&mut self.frame);
        }
        let caller = &mut self.caller;
        g711::encode(caller.remote.format.codec, &self.frame, &mut self.payload);
        let header = caller
            .outgoing
            .next_generated(now, advance, FRAME_SAMPLES as u32);
        let len = build_packet(
            &mut self.packet,
            caller.outgoing.ssrc(),
            caller.remote.format.payload_type,
            header,
            &self.payload,
        )?;
        Some(Transmit {
            leg: Leg::Caller,
            destination: caller.destination(),
            packet: &self.packet[..len],
            kind: TransmitKind::Generated,
        })
    }

    /// A datagram arrived on `leg`'s socket from `from`.
    pub(crate) fn handle_datagram(
        &mut self,
        now: Instant,
        leg: Leg,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Option<Transmit<'_>> {
        let counters: &MediaCounters = &self.counters;
        let dropped = |reason| {
            counters.add_dropped(reason);
            None
        };
        let (input, output) = match leg {
            Leg::Caller => (&mut self.caller, self.agent.as_mut()),
            Leg::Agent => match self.agent.as_mut() {
                Some(agent) => (agent, Some(&mut self.caller)),
                None => return dropped(DropReason::NoPeer),
            },
        };
        // rtp-rs checks the version, the length against CSRCs, extension and padding
        // (RFC 3550 §5.1, §5.3.1), so nothing below can read past the datagram.
        let Ok(rtp) = RtpReader::new(datagram) else {
            return dropped(DropReason::Malformed);
        };
        let payload_type = rtp.payload_type();
        let format = input.remote.format;
        let payload = if Some(payload_type) == format.telephone_event {
            match TelephoneEvent::parse(rtp.payload()) {
                Some(event) => Payload::Event(event),
                None => return dropped(DropReason::Malformed),
            }
        } else if payload_type == format.payload_type {
            Payload::Audio(format.codec)
        } else if let Some(codec) = Codec::from_static_payload_type(payload_type) {
            // The other law on its static type: phones answering an offer of both may switch
            // between them (RFC 3264 §6.1), and the table transcodes either.
            Payload::Audio(codec)
        } else {
            return dropped(DropReason::UnknownPayloadType);
        };
        if !input.accept_source(now, from) {
            return dropped(DropReason::ForeignSource);
        }
        input.last_activity = now;
        input.timeout_reported = false;

        if let Payload::Event(event) = payload
            && let Some((digit, duration)) = input.dtmf.handle(rtp.ssrc(), rtp.timestamp(), event)
        {
            tracing::debug!(%leg, %digit, ?duration, "DTMF");
            counters.add_dtmf();
            self.events.push_back(MediaEvent::Dtmf {
                leg,
                digit,
                duration,
            });
        }

        let Some(output) = output.filter(|output| output.remote.accepts_rtp()) else {
            return dropped(DropReason::NoPeer);
        };
        let target = output.remote.format;
        let (payload_type, duration) = match payload {
            Payload::Audio(codec) => {
                g711::transcode(codec, target.codec, rtp.payload(), &mut self.payload);
                (target.payload_type, self.payload.len() as u32)
            }
            Payload::Event(event) => {
                // RFC 4733 §2.1: events travel under the payload type each side negotiated.
                let Some(payload_type) = target.telephone_event else {
                    return dropped(DropReason::UnknownPayloadType);
                };
                self.payload.clear();
                self.payload.extend_from_slice(rtp.payload());
                (payload_type, u32::from(event.duration))
            }
        };
        let header: Header = output.outgoing.next_relayed(
            now,
            rtp.ssrc(),
            rtp.sequence_number().into(),
            rtp.timestamp(),
            rtp.mark(),
            duration,
        );
        let len = build_packet(
            &mut self.packet,
            output.outgoing.ssrc(),
            payload_type,
            header,
            &self.payload,
        )?;
        Some(Transmit {
            leg: leg.other(),
            destination: output.destination(),
            packet: &self.packet[..len],
            kind: TransmitKind::Relayed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Tone;
    use crate::test_support::{goertzel_ratio, rms};
    use crate::{AudioFormat, Direction};
    use rtp_rs::{RtpPacketBuilder, Seq};

    const CALLER: &str = "192.0.2.10:4000";
    const AGENT: &str = "192.0.2.20:5000";

    fn remote(addr: &str, codec: Codec, telephone_event: Option<u8>) -> RemoteMedia {
        RemoteMedia {
            addr: addr.parse().unwrap(),
            format: AudioFormat::new(codec, telephone_event),
            direction: Direction::SendRecv,
        }
    }

    fn config(rtp_timeout: Option<Duration>) -> SessionConfig {
        SessionConfig {
            rtp_timeout,
            comfort_level_dbov: -50.0,
        }
    }

    fn at(t0: Instant, millis: u64) -> Instant {
        t0 + Duration::from_millis(millis)
    }

    fn rtp(payload_type: u8, sequence: u16, timestamp: u32, payload: &[u8]) -> Vec<u8> {
        RtpPacketBuilder::new()
            .payload_type(payload_type)
            .sequence(Seq::from(sequence))
            .timestamp(timestamp)
            .ssrc(0x1111)
            .payload(payload)
            .build()
            .unwrap()
    }

    struct Sent {
        leg: Leg,
        destination: SocketAddr,
        payload_type: u8,
        sequence: u16,
        timestamp: u32,
        marker: bool,
        payload: Vec<u8>,
    }

    fn read(transmit: Option<Transmit<'_>>) -> Option<Sent> {
        let transmit = transmit?;
        let reader = RtpReader::new(transmit.packet).unwrap();
        Some(Sent {
            leg: transmit.leg,
            destination: transmit.destination,
            payload_type: reader.payload_type(),
            sequence: reader.sequence_number().into(),
            timestamp: reader.timestamp(),
            marker: reader.mark(),
            payload: reader.payload().to_vec(),
        })
    }

    #[test]
    fn comfort_frames_are_paced_by_the_clock_and_skip_ahead_when_late() {
        let t0 = Instant::now();
        let mut state = SessionState::new(
            t0,
            remote(CALLER, Codec::Pcmu, None),
            config(None),
            Arc::default(),
        );
        assert_eq!(state.poll_timeout(), Some(t0));
        let first = read(state.handle_timeout(t0)).unwrap();
        assert!(first.marker);
        assert_eq!(state.poll_timeout(), Some(at(t0, 20)));
        assert!(
            read(state.handle_timeout(at(t0, 19))).is_none(),
            "not due yet"
        );
        let second = read(state.handle_timeout(at(t0, 21))).unwrap();
        assert_eq!(second.timestamp.wrapping_sub(first.timestamp), 160);
        // The schedule stays on start + n·20 ms even when a wake-up was late.
        assert_eq!(state.poll_timeout(), Some(at(t0, 40)));
        // Woken 55 ms late: one packet, the frames due at 60 and 80 ms skipped, no burst.
        let late = read(state.handle_timeout(at(t0, 95))).unwrap();
        assert_eq!(late.sequence, second.sequence.wrapping_add(1));
        assert_eq!(state.poll_timeout(), Some(at(t0, 100)));
        assert!(read(state.handle_timeout(at(t0, 99))).is_none());
        let resumed = read(state.handle_timeout(at(t0, 100))).unwrap();
        assert_eq!(resumed.sequence, late.sequence.wrapping_add(1));
        assert_eq!(
            resumed.timestamp.wrapping_sub(late.timestamp),
            480,
            "the skipped frames' media time"
        );
        assert!(!resumed.marker);
    }

    #[test]
    fn comfort_noise_is_encoded_in_the_callers_law_and_payload_type() {
        let t0 = Instant::now();
        let caller = RemoteMedia {
            format: AudioFormat {
                codec: Codec::Pcma,
                payload_type: 8,
                telephone_event: None,
            },
            ..remote(CALLER, Codec::Pcma, None)
        };
        let counters = Arc::new(MediaCounters::default());
        let mut state = SessionState::new(t0, caller, config(None), counters);
        let mut samples = Vec::new();
        for n in 0..50 {
            let sent = read(state.handle_timeout(at(t0, 20 * n))).unwrap();
            assert_eq!(
                (sent.leg, sent.payload_type, sent.payload.len()),
                (Leg::Caller, 8, 160)
            );
            assert_eq!(sent.destination, CALLER.parse().unwrap());
            let mut linear = Vec::new();
            g711::decode(Codec::Pcma, &sent.payload, &mut linear);
            samples.extend(linear);
        }
        let level = 20.0 * (rms(&samples) / 32767.0).log10();
        assert!(
            (-53.0..=-47.0).contains(&level),
            "comfort noise at {level} dBov"
        );
    }

    #[test]
    fn the_waiting_audio_comes_from_the_source_and_falls_back_to_noise() {
        struct Beep(Tone, usize);
        impl AudioSource for Beep {
            fn next_frame(&mut self, frame: &mut Frame) -> bool {
                self.1 = self.1.saturating_sub(1);
                self.1 > 0 && self.0.next_frame(frame)
            }
        }
        let t0 = Instant::now();
        let mut state = SessionState::new(
            t0,
            remote(CALLER, Codec::Pcmu, None),
            config(None),
            Arc::default(),
        );
        state.set_source(Box::new(Beep(Tone::new(1000.0, -10.0), 26)));
        let mut heard = Vec::new();
        for n in 0..50 {
            let sent = read(state.handle_timeout(at(t0, 20 * n))).unwrap();
            let mut linear = Vec::new();
            g711::decode(Codec::Pcmu, &sent.payload, &mut linear);
            heard.push(linear);
        }
        let tone: Vec<i16> = heard[..25].concat();
        assert!(goertzel_ratio(&tone, 1000.0, 1400.0) > 100.0);
        let after: Vec<i16> = heard[25..].concat();
        assert!(
            rms(&after) < 300.0 && rms(&after) > 10.0,
            "comfort noise after the source ended"
        );
    }

    #[test]
    fn rtp_timeout_fires_once_per_silence_and_never_on_hold() {
        let t0 = Instant::now();
        let timeout = Some(Duration::from_secs(5));
        let mut state = SessionState::new(
            t0,
            remote(CALLER, Codec::Pcmu, None),
            config(timeout),
            Arc::default(),
        );
        let from: SocketAddr = CALLER.parse().unwrap();
        state.handle_datagram(
            at(t0, 1000),
            Leg::Caller,
            from,
            &rtp(0, 1, 160, &[0xFF; 160]),
        );
        state.handle_timeout(at(t0, 5999));
        assert_eq!(state.poll_event(), None);
        state.handle_timeout(at(t0, 6000));
        assert_eq!(
            state.poll_event(),
            Some(MediaEvent::RtpTimeout { leg: Leg::Caller })
        );
        state.handle_timeout(at(t0, 9000));
        assert_eq!(state.poll_event(), None, "reported once");
        // RTP resumes, then the caller holds (sendonly): silence is expected, no event.
        state.handle_datagram(
            at(t0, 10_000),
            Leg::Caller,
            from,
            &rtp(0, 2, 320, &[0xFF; 160]),
        );
        let hold = RemoteMedia {
            direction: Direction::SendOnly,
            ..remote(CALLER, Codec::Pcmu, None)
        };
        state.handle_update_remote(at(t0, 10_500), Leg::Caller, hold);
        assert_eq!(
            state.poll_timeout(),
            None,
            "no comfort to a holding caller, no timeout"
        );
        state.handle_timeout(at(t0, 60_000));
        assert_eq!(state.poll_event(), None);
        // Unhold: the timeout counts from the re-INVITE.
        state.handle_update_remote(
            at(t0, 60_000),
            Leg::Caller,
            remote(CALLER, Codec::Pcmu, None),
        );
        state.handle_timeout(at(t0, 65_000));
        assert_eq!(
            state.poll_event(),
            Some(MediaEvent::RtpTimeout { leg: Leg::Caller })
        );
    }

    #[test]
    fn latching_prefers_the_live_source_and_resists_strangers() {
        let t0 = Instant::now();
        let counters = Arc::new(MediaCounters::default());
        let mut state = SessionState::new(
            t0,
            remote(CALLER, Codec::Pcmu, None),
            config(None),
            Arc::clone(&counters),
        );
        assert_eq!(
            read(state.handle_timeout(t0)).unwrap().destination,
            CALLER.parse().unwrap()
        );
        // The NATed caller's packets come from its public address.
        let nat: SocketAddr = "198.51.100.1:61000".parse().unwrap();
        state.handle_datagram(at(t0, 5), Leg::Caller, nat, &rtp(0, 1, 160, &[0xFF; 160]));
        assert_eq!(
            read(state.handle_timeout(at(t0, 20))).unwrap().destination,
            nat
        );
        // A stranger while the caller is live is dropped and changes nothing.
        let stranger: SocketAddr = "203.0.113.66:1234".parse().unwrap();
        state.handle_datagram(
            at(t0, 30),
            Leg::Caller,
            stranger,
            &rtp(0, 9, 9, &[0xFF; 160]),
        );
        assert_eq!(counters.packets_dropped(DropReason::ForeignSource), 1);
        assert_eq!(
            read(state.handle_timeout(at(t0, 40))).unwrap().destination,
            nat
        );
        // Invalid RTP never latches.
        state.handle_datagram(at(t0, 2000), Leg::Caller, stranger, &rtp(13, 9, 9, &[0; 1]));
        assert_eq!(
            read(state.handle_timeout(at(t0, 2000)))
                .unwrap()
                .destination,
            nat
        );
        // After the latched source fell silent, a new source (a NAT rebinding) takes over.
        let rebound: SocketAddr = "198.51.100.1:61002".parse().unwrap();
        state.handle_datagram(
            at(t0, 2005),
            Leg::Caller,
            rebound,
            &rtp(0, 2, 320, &[0xFF; 160]),
        );
        assert_eq!(
            read(state.handle_timeout(at(t0, 2020)))
                .unwrap()
                .destination,
            rebound
        );
    }

    #[test]
    fn relay_transcodes_and_rewrites_telephone_events() {
        let t0 = Instant::now();
        let counters = Arc::new(MediaCounters::default());
        let mut state = SessionState::new(
            t0,
            remote(CALLER, Codec::Pcmu, Some(101)),
            config(None),
            Arc::clone(&counters),
        );
        state.handle_bridge(t0, remote(AGENT, Codec::Pcma, Some(96)));
        assert_eq!(state.poll_timeout(), None, "no comfort while bridged");
        let caller: SocketAddr = CALLER.parse().unwrap();
        let ulaw: Vec<u8> = crate::test_support::tone(1000.0, -10.0, 160)
            .iter()
            .map(|&s| g711::ulaw_encode(s))
            .collect();
        let sent =
            read(state.handle_datagram(at(t0, 1), Leg::Caller, caller, &rtp(0, 1, 0, &ulaw)))
                .unwrap();
        assert_eq!((sent.leg, sent.payload_type), (Leg::Agent, 8));
        assert!(sent.marker, "first packet of the agent's stream");
        let expected: Vec<u8> = ulaw
            .iter()
            .map(|&code| g711::alaw_encode(g711::ulaw_decode(code)))
            .collect();
        assert_eq!(sent.payload, expected);

        // A key press: three packets of one event, then three end packets.
        let mut stamps = Vec::new();
        for (n, (flags, duration)) in [
            (0x0A, 160u16),
            (0x0A, 320),
            (0x8A, 480),
            (0x8A, 480),
            (0x8A, 480),
        ]
        .into_iter()
        .enumerate()
        {
            let [high, low] = duration.to_be_bytes();
            let packet = rtp(101, 2 + n as u16, 160, &[5, flags, high, low]);
            let sent = read(state.handle_datagram(
                at(t0, 20 + 20 * n as u64),
                Leg::Caller,
                caller,
                &packet,
            ))
            .unwrap();
            assert_eq!(sent.payload_type, 96);
            assert_eq!(sent.payload, [5, flags, high, low]);
            stamps.push(sent.timestamp);
        }
        assert!(
            stamps.windows(2).all(|w| w[0] == w[1]),
            "one timestamp per event: {stamps:?}"
        );
        assert_eq!(
            state.poll_event(),
            Some(MediaEvent::Dtmf {
                leg: Leg::Caller,
                digit: '5',
                duration: Duration::from_millis(60)
            })
        );
        assert_eq!(state.poll_event(), None);

        // An agent leg without telephone-event cannot carry it: dropped and counted.
        state.handle_bridge(at(t0, 200), remote(AGENT, Codec::Pcma, None));
        let packet = rtp(101, 9, 800, &[7, 0x8A, 0, 160]);
        assert!(read(state.handle_datagram(at(t0, 201), Leg::Caller, caller, &packet)).is_none());
        assert_eq!(counters.packets_dropped(DropReason::UnknownPayloadType), 1);
        assert_eq!(
            state
                .poll_event()
                .map(|e| matches!(e, MediaEvent::Dtmf { digit: '7', .. })),
            Some(true)
        );
    }

    #[test]
    fn garbage_is_counted_and_changes_nothing() {
        let t0 = Instant::now();
        let counters = Arc::new(MediaCounters::default());
        let mut state = SessionState::new(
            t0,
            remote(CALLER, Codec::Pcmu, Some(101)),
            config(None),
            Arc::clone(&counters),
        );
        state.handle_bridge(t0, remote(AGENT, Codec::Pcmu, Some(101)));
        let stranger: SocketAddr = "203.0.113.66:1234".parse().unwrap();
        let mut version_1 = rtp(0, 1, 0, &[0xFF; 160]);
        version_1[0] = (version_1[0] & 0x3F) | 0x40;
        let mut truncated_csrc = rtp(0, 1, 0, &[]);
        truncated_csrc[0] |= 0x0F;
        let short_event = rtp(101, 1, 0, &[1, 2]);
        for datagram in [
            &b""[..],
            b"\x80",
            b"hello, world!",
            &version_1,
            &truncated_csrc,
            &short_event,
            &[0xFF; 64],
        ] {
            assert!(
                state
                    .handle_datagram(at(t0, 1), Leg::Caller, stranger, datagram)
                    .is_none()
            );
            assert!(
                state
                    .handle_datagram(at(t0, 1), Leg::Agent, stranger, datagram)
                    .is_none()
            );
        }
        assert_eq!(counters.packets_dropped(DropReason::Malformed), 14);
        // Nothing latched: a real packet from the SDP address is relayed to the SDP address.
        let caller: SocketAddr = CALLER.parse().unwrap();
        let sent = read(state.handle_datagram(
            at(t0, 2),
            Leg::Caller,
            caller,
            &rtp(0, 1, 0, &[0xFF; 160]),
        ))
        .unwrap();
        assert_eq!(sent.destination, AGENT.parse().unwrap());
    }
}
