//! The sans-IO heart of a media session: every decision about who sends what, with time as
//! an argument and packets in and out as bytes. [`crate::MediaSession`] only moves bytes
//! between it and the sockets.

use crate::counters::{DropReason, MediaCounters};
use crate::dtmf::{DtmfDetector, DtmfSender, TelephoneEvent, digit_event};
use crate::playlist::Playback;
use crate::source::{AudioSource, ComfortNoise, FRAME_SAMPLES, Frame};
use crate::stream::{Header, OutgoingStream, build_packet};
use crate::webrtc::{Received, RtcLeg, WebRtcError};
use crate::{Codec, Leg, MediaEvent, Playlist, RemoteMedia, SessionConfig, g711};
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
    /// Made by Amico (comfort noise, prompts, music, telephone-events).
    Generated,
    /// A datagram of a WebRTC leg's str0m (SRTP, SRTCP, STUN, DTLS): the RTP inside was
    /// counted as relayed or generated when it was handed to str0m.
    WebRtc,
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

/// An agent leg to bridge: plain RTP to the address in its SDP, or a browser through str0m.
#[derive(Debug)]
pub(crate) enum AgentMedia {
    /// A SIP phone's RTP, as its SDP describes it.
    Rtp(RemoteMedia),
    /// A browser's DTLS-SRTP, negotiated by the leg itself.
    WebRtc(Box<RtcLeg>),
}

impl From<RemoteMedia> for AgentMedia {
    fn from(remote: RemoteMedia) -> Self {
        Self::Rtp(remote)
    }
}

/// How a leg's packets travel.
#[derive(Debug)]
enum Transport {
    /// Plain RTP on the leg's own socket.
    Rtp(Latch),
    /// DTLS-SRTP through a str0m session on the WebRTC endpoint's socket; ICE chose the
    /// address, so there is nothing to latch.
    WebRtc(Box<RtcLeg>),
}

/// The source address RTP actually comes from (RFC 4961 symmetric RTP): once known, our
/// packets go there instead of to the SDP address, which a NATed phone cannot be reached on.
#[derive(Debug, Default)]
struct Latch {
    address: Option<SocketAddr>,
    heard_at: Option<Instant>,
}

/// A packet made into `SessionState::packet`, not yet handed out (so that a loop can make
/// it without holding the borrow).
#[derive(Debug, Clone, Copy)]
struct Emitted {
    leg: Leg,
    destination: SocketAddr,
    len: usize,
    kind: TransmitKind,
}

/// The fields of a received RTP packet the relay reads, from a datagram or from str0m.
#[derive(Debug, Clone, Copy)]
struct RtpIn<'a> {
    payload_type: u8,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    marker: bool,
    payload: &'a [u8],
}

/// One leg: what its remote negotiated, how its packets travel, and our stream to it.
#[derive(Debug)]
struct LegState {
    remote: RemoteMedia,
    transport: Transport,
    /// Last valid RTP received, or when RTP became expected (start, update): the RTP timeout
    /// counts from here.
    last_activity: Instant,
    timeout_reported: bool,
    outgoing: OutgoingStream,
    dtmf: DtmfDetector,
    /// Key presses Amico sends to this leg (RFC 4733).
    dtmf_out: DtmfSender,
}

impl LegState {
    fn new(now: Instant, remote: RemoteMedia, transport: Transport) -> Self {
        Self {
            remote,
            transport,
            last_activity: now,
            timeout_reported: false,
            outgoing: OutgoingStream::new(),
            dtmf: DtmfDetector::default(),
            dtmf_out: DtmfSender::default(),
        }
    }

    /// Where plain RTP goes: the latched source, else the SDP address.
    fn destination(&self) -> SocketAddr {
        match &self.transport {
            Transport::Rtp(latch) => latch.address.unwrap_or(self.remote.addr),
            Transport::WebRtc(_) => self.remote.addr,
        }
    }

    /// Whether we may send media to this leg: it wants media (RFC 3264 §8.4), and for plain
    /// RTP gave a usable address (a WebRTC leg's address is ICE's).
    fn accepts_rtp(&self) -> bool {
        match self.transport {
            Transport::Rtp(_) => self.remote.accepts_rtp(),
            Transport::WebRtc(_) => self.remote.direction.receives(),
        }
    }

    /// Whether this leg is expected to keep sending, so that silence means trouble.
    fn sends_rtp(&self) -> bool {
        match self.transport {
            Transport::Rtp(_) => self.remote.sends_rtp(),
            Transport::WebRtc(_) => self.remote.direction == crate::Direction::SendRecv,
        }
    }

    fn webrtc(&mut self) -> Option<&mut RtcLeg> {
        match &mut self.transport {
            Transport::WebRtc(rtc) => Some(rtc),
            Transport::Rtp(_) => None,
        }
    }

    fn timeout_deadline(&self, timeout: Option<Duration>) -> Option<Instant> {
        let timeout = timeout?;
        (self.sends_rtp() && !self.timeout_reported).then(|| self.last_activity + timeout)
    }

    /// Symmetric RTP latching; `false` when the packet comes from a stranger.
    fn accept_source(&mut self, now: Instant, from: SocketAddr) -> bool {
        let sdp = self.remote.addr;
        let Transport::Rtp(latch) = &mut self.transport else {
            return true;
        };
        let trusted = match latch.address {
            None => true,
            Some(latched) if latched == from => true,
            // The SDP address is the remote's own word, so it always wins (a re-INVITE moving
            // the media back to where it says).
            Some(_) if from == sdp => true,
            Some(_) => latch
                .heard_at
                .is_none_or(|heard| now.saturating_duration_since(heard) >= RELATCH_AFTER),
        };
        if !trusted {
            return false;
        }
        if latch.address != Some(from) {
            tracing::debug!(%from, %sdp, "RTP latched on source");
            latch.address = Some(from);
        }
        latch.heard_at = Some(now);
        true
    }

    /// Sends one packet with `header` on this leg: built into `buffer` for plain RTP (the
    /// caller sends it), handed to str0m for WebRTC (its datagrams come out of
    /// [`SessionState::poll_transmit`]).
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        now: Instant,
        leg: Leg,
        buffer: &mut Vec<u8>,
        counters: &MediaCounters,
        payload_type: u8,
        header: Header,
        payload: &[u8],
        kind: TransmitKind,
    ) -> Option<Emitted> {
        let destination = self.destination();
        match &mut self.transport {
            Transport::Rtp(_) => {
                let len =
                    build_packet(buffer, self.outgoing.ssrc(), payload_type, header, payload)?;
                Some(Emitted {
                    leg,
                    destination,
                    len,
                    kind,
                })
            }
            Transport::WebRtc(rtc) => {
                let written = rtc.write_rtp(
                    now,
                    payload_type,
                    header.sequence,
                    header.timestamp,
                    header.marker,
                    payload,
                );
                match (written, kind) {
                    (true, TransmitKind::Relayed) => counters.add_relayed(),
                    (true, _) => counters.add_generated(),
                    // ICE and DTLS not up yet: audio queued now would reach the browser late.
                    (false, _) => counters.add_dropped(DropReason::NoPeer),
                }
                None
            }
        }
    }
}

/// When the next generated frame is due (packet n at start + n·20 ms).
#[derive(Debug)]
struct Pacer {
    next_due: Instant,
    /// Media time since the previous generated frame, for its timestamp.
    advance: u32,
}

/// What the caller hears while not bridged.
enum Waiting {
    /// Audio made frame by frame and encoded per frame: the comfort noise.
    Source(Box<dyn AudioSource>),
    /// A playlist's clips, sent as they were encoded at load time.
    Playlist(Playback),
}

impl Waiting {
    fn comfort(config: &SessionConfig) -> Self {
        Self::Source(Box::new(ComfortNoise::new(config.comfort_level_dbov)))
    }
}

/// What is due at a wake-up, in the order sent when due at the same time: an event first,
/// so that it starts at the timestamp of the audio frame sent with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    CallerEvent,
    AgentEvent,
    Audio,
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
    /// What the caller hears while not bridged: comfort noise after start and after a
    /// bridge, a playlist after `play`.
    waiting: Waiting,
    /// `Some` while the caller is sent generated audio.
    pacer: Option<Pacer>,
    events: VecDeque<MediaEvent>,
    // Reused for every packet so that the relay allocates nothing per packet.
    packet: Vec<u8>,
    payload: Vec<u8>,
    frame: Frame,
    /// The WebRTC datagram last handed out by `poll_transmit`.
    webrtc_out: Option<str0m::net::Transmit>,
}

impl SessionState {
    pub(crate) fn new(
        now: Instant,
        caller: RemoteMedia,
        config: SessionConfig,
        counters: Arc<MediaCounters>,
    ) -> Self {
        let mut state = Self {
            waiting: Waiting::comfort(&config),
            config,
            counters,
            caller: LegState::new(now, caller, Transport::Rtp(Latch::default())),
            agent: None,
            pacer: None,
            events: VecDeque::new(),
            packet: Vec::with_capacity(1500),
            payload: Vec::with_capacity(1500),
            frame: [0; FRAME_SAMPLES],
            webrtc_out: None,
        };
        state.refresh_pacer(now);
        state
    }

    /// Replaces what the caller hears while waiting with generated audio, from the next frame.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "for generated sources (tones, beeps) to come")
    )]
    pub(crate) fn set_source(&mut self, source: Box<dyn AudioSource>) {
        self.waiting = Waiting::Source(source);
        self.caller.outgoing.mark();
    }

    /// Replaces what the caller hears while waiting with `playlist`, from the next frame: the
    /// pacer keeps its schedule, so the new audio continues the stream with no gap and no
    /// burst, its first packet marked. While bridged the playlist waits for the next hold;
    /// while the caller holds the call it starts when the caller resumes.
    pub(crate) fn handle_play(&mut self, playlist: Playlist, id: u64) {
        if let Waiting::Playlist(previous) = &self.waiting {
            tracing::debug!(previous = previous.id(), id, "playlist replaced");
        }
        self.waiting = Waiting::Playlist(Playback::new(playlist, id));
    }

    /// Queues a key press for `leg` as RFC 4733 telephone-events. Ignored (logged and counted)
    /// when `digit` is no DTMF key, the leg is not there, negotiated no telephone-event, does
    /// not accept media, or has too many keys waiting.
    pub(crate) fn handle_send_dtmf(&mut self, now: Instant, leg: Leg, digit: char) {
        let state = match leg {
            Leg::Caller => Some(&mut self.caller),
            Leg::Agent => self.agent.as_mut(),
        };
        let refused = match (digit_event(digit), state) {
            (None, _) => "not a DTMF key",
            (_, None) => "the leg is not there",
            (Some(_), Some(state)) if state.remote.format.telephone_event.is_none() => {
                "the leg negotiated no telephone-event"
            }
            (Some(_), Some(state)) if !state.accepts_rtp() => "the leg accepts no media",
            (Some(event), Some(state)) => {
                if state.dtmf_out.push(now, event) {
                    return;
                }
                "too many keys waiting"
            }
        };
        tracing::debug!(%leg, ?digit, reason = refused, "DTMF not sent");
        self.counters.add_dtmf_ignored();
    }

    pub(crate) fn caller_ssrc(&self) -> u32 {
        self.caller.outgoing.ssrc()
    }

    /// Starts or stops generating for the caller: only while not bridged and while the caller
    /// accepts media (not holding us, RFC 3264 §8.4).
    fn refresh_pacer(&mut self, now: Instant) {
        let wanted = self.agent.is_none() && self.caller.accepts_rtp();
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

    /// Bridges an agent leg: from now on RTP is relayed both ways. Playback stops at once (no
    /// generated frame after this) and the playlist is discarded, so that a stale announcement
    /// never resumes; after a hold the caller hears comfort noise unless `play` says otherwise.
    /// A WebRTC leg whose offer/answer has not completed is refused (logged): the caller goes
    /// on waiting.
    pub(crate) fn handle_bridge(&mut self, now: Instant, agent: impl Into<AgentMedia>) {
        let agent = match agent.into() {
            AgentMedia::Rtp(remote) => LegState::new(now, remote, Transport::Rtp(Latch::default())),
            AgentMedia::WebRtc(rtc) => {
                let Some(remote) = rtc.remote_media() else {
                    tracing::warn!(?rtc, "WebRTC agent leg not negotiated: not bridged");
                    return;
                };
                LegState::new(now, remote, Transport::WebRtc(rtc))
            }
        };
        self.agent = Some(agent);
        self.pacer = None;
        self.waiting = Waiting::comfort(&self.config);
        self.caller.outgoing.switch();
    }

    /// Releases the agent leg; the caller hears the waiting audio again: comfort noise, or the
    /// playlist given to `play` since the bridge.
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
        if state.webrtc().is_some() {
            tracing::debug!(%leg, "a WebRTC leg is renegotiated through its own SDP");
            return;
        }
        if remote.addr != state.remote.addr {
            // A new address in SDP makes the old latch stale; relearn from what arrives.
            state.transport = Transport::Rtp(Latch::default());
        }
        Self::apply_remote(now, state, remote);
        if leg == Leg::Caller {
            self.refresh_pacer(now);
        }
    }

    /// Answers the browser's offer on a WebRTC agent leg (a re-INVITE from the page: hold,
    /// resume). The bridge stays; the relay follows the new direction and format.
    pub(crate) fn handle_agent_offer(
        &mut self,
        now: Instant,
        offer: &str,
    ) -> Result<String, WebRtcError> {
        let state = self.agent.as_mut().ok_or(WebRtcError::NoWebRtcLeg)?;
        let rtc = state.webrtc().ok_or(WebRtcError::NoWebRtcLeg)?;
        let answer = rtc.accept_offer(offer)?;
        let remote = rtc.remote_media().ok_or(WebRtcError::NoCommonCodec)?;
        tracing::debug!(
            direction = remote.direction.as_str(),
            "WebRTC agent renegotiated"
        );
        Self::apply_remote(now, state, remote);
        Ok(answer)
    }

    /// Takes a leg's new SDP: its stream goes on, restarting as a new talkspurt if the leg
    /// takes media again; the RTP timeout counts afresh.
    fn apply_remote(now: Instant, state: &mut LegState, remote: RemoteMedia) {
        let accepted = state.accepts_rtp();
        state.remote = remote;
        let resumed = state.accepts_rtp() && !accepted;
        state.last_activity = now;
        state.timeout_reported = false;
        if resumed {
            state.outgoing.switch();
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
            self.caller.dtmf_out.poll_timeout(),
            self.agent
                .as_ref()
                .and_then(|agent| agent.timeout_deadline(timeout)),
            self.agent
                .as_ref()
                .and_then(|agent| agent.dtmf_out.poll_timeout()),
            self.agent
                .as_ref()
                .and_then(|agent| match &agent.transport {
                    Transport::WebRtc(rtc) => rtc.poll_timeout(),
                    Transport::Rtp(_) => None,
                }),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The packet to send first at `now`, if any is due.
    fn due(&self, now: Instant) -> Option<Due> {
        [
            (self.caller.dtmf_out.poll_timeout(), Due::CallerEvent),
            (
                self.agent
                    .as_ref()
                    .and_then(|agent| agent.dtmf_out.poll_timeout()),
                Due::AgentEvent,
            ),
            (self.pacer.as_ref().map(|pacer| pacer.next_due), Due::Audio),
        ]
        .into_iter()
        .filter_map(|(at, due)| at.filter(|&at| at <= now).map(|at| (at, due)))
        .min()
        .map(|(_, due)| due)
    }

    /// Time passed: reports silent legs and makes the packet due first, if any. Several may be
    /// due at once (an audio frame and a telephone-event): [`Self::poll_timeout`] is then
    /// still `<= now`, and the driver calls again.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Option<Transmit<'_>> {
        if let Some(rtc) = self.agent.as_mut().and_then(LegState::webrtc) {
            // ICE, DTLS and RTCP timers; what they send comes out of `poll_transmit`.
            rtc.handle_timeout(now);
        }
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
        let emitted = match self.due(now)? {
            Due::Audio => self.generate(now),
            Due::CallerEvent => self.send_event(now, Leg::Caller),
            Due::AgentEvent => self.send_event(now, Leg::Agent),
        }?;
        Some(self.transmit(emitted))
    }

    /// The packet `emitted` describes, in `self.packet`.
    fn transmit(&self, emitted: Emitted) -> Transmit<'_> {
        Transmit {
            leg: emitted.leg,
            destination: emitted.destination,
            packet: &self.packet[..emitted.len],
            kind: emitted.kind,
        }
    }

    /// The next packet of the telephone-event being sent to `leg`.
    fn send_event(&mut self, now: Instant, leg: Leg) -> Option<Emitted> {
        let state = match leg {
            Leg::Caller => &mut self.caller,
            Leg::Agent => self.agent.as_mut()?,
        };
        // A re-INVITE may have taken the event payload type or the media away meanwhile.
        let payload_type = state
            .remote
            .format
            .telephone_event
            .filter(|_| state.accepts_rtp());
        let Some(payload_type) = payload_type else {
            tracing::debug!(%leg, "telephone-events dropped: the leg no longer takes them");
            state.dtmf_out.clear();
            return None;
        };
        let timestamp_now = state.outgoing.timestamp_now(now);
        let event = state.dtmf_out.next_packet(now, timestamp_now)?;
        if event.marker {
            self.counters.add_dtmf_sent();
        }
        let header =
            state
                .outgoing
                .next_inserted(event.timestamp, event.marker, u32::from(event.duration));
        state.emit(
            now,
            leg,
            &mut self.packet,
            &self.counters,
            payload_type,
            header,
            &event.payload,
            TransmitKind::Generated,
        )
    }

    fn generate(&mut self, now: Instant) -> Option<Emitted> {
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

        let caller = &mut self.caller;
        let codec = caller.remote.format.codec;
        let mut ended = false;
        match &mut self.waiting {
            Waiting::Playlist(playback) => {
                let frame = playback.next_frame(codec);
                if frame.starts_clip {
                    caller.outgoing.mark();
                }
                if let Some(id) = frame.sequence_done {
                    tracing::debug!(id, "playlist sequence played");
                    self.events.push_back(MediaEvent::PlaylistDone { id });
                }
                match frame.audio {
                    // Encoded at load time: only copied here.
                    Some(audio) => {
                        self.payload.clear();
                        self.payload.extend_from_slice(audio);
                    }
                    None => ended = true,
                }
            }
            Waiting::Source(source) => {
                if source.next_frame(&mut self.frame) {
                    g711::encode(codec, &self.frame, &mut self.payload);
                } else {
                    ended = true;
                }
            }
        }
        if ended {
            // A finished source gives way to comfort noise rather than dead air.
            let mut noise = ComfortNoise::new(self.config.comfort_level_dbov);
            noise.next_frame(&mut self.frame);
            g711::encode(codec, &self.frame, &mut self.payload);
            self.waiting = Waiting::Source(Box::new(noise));
            caller.outgoing.mark();
        }
        let header = caller
            .outgoing
            .next_generated(now, advance, FRAME_SAMPLES as u32);
        let payload_type = caller.remote.format.payload_type;
        caller.emit(
            now,
            Leg::Caller,
            &mut self.packet,
            &self.counters,
            payload_type,
            header,
            &self.payload,
            TransmitKind::Generated,
        )
    }

    /// A datagram arrived on `leg`'s own RTP socket from `from`.
    pub(crate) fn handle_datagram(
        &mut self,
        now: Instant,
        leg: Leg,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Option<Transmit<'_>> {
        // rtp-rs checks the version, the length against CSRCs, extension and padding
        // (RFC 3550 §5.1, §5.3.1), so nothing below can read past the datagram.
        let Ok(rtp) = RtpReader::new(datagram) else {
            self.counters.add_dropped(DropReason::Malformed);
            return None;
        };
        let rtp = RtpIn {
            payload_type: rtp.payload_type(),
            ssrc: rtp.ssrc(),
            sequence: rtp.sequence_number().into(),
            timestamp: rtp.timestamp(),
            marker: rtp.mark(),
            payload: rtp.payload(),
        };
        let emitted = self.relay(now, leg, Some(from), rtp)?;
        Some(self.transmit(emitted))
    }

    /// A datagram arrived on the WebRTC endpoint's socket at `destination` from `source`
    /// and was routed to this session's agent leg. What it causes (a check answered, DTLS,
    /// the browser's audio relayed to the caller) comes out of [`Self::poll_transmit`].
    pub(crate) fn handle_webrtc_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        datagram: &[u8],
    ) {
        let Some(rtc) = self.agent.as_mut().and_then(LegState::webrtc) else {
            self.counters.add_dropped(DropReason::NoPeer);
            return;
        };
        match rtc.handle_receive(now, source, destination, datagram) {
            Received::Accepted => {}
            Received::NotOurs => self.counters.add_dropped(DropReason::ForeignSource),
            Received::Unreadable => self.counters.add_dropped(DropReason::Malformed),
        }
    }

    /// The next packet to send that an input left behind: a WebRTC agent leg's datagrams
    /// (from the endpoint's socket), then the browser's RTP relayed to the caller. The
    /// driver calls it until `None` after every input and wake-up.
    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit<'_>> {
        let emitted = loop {
            let rtc = self.agent.as_mut().and_then(LegState::webrtc)?;
            if let Some(transmit) = rtc.poll_transmit() {
                let destination = transmit.destination;
                let len = transmit.contents.len();
                let datagram = self.webrtc_out.insert(transmit);
                return Some(Transmit {
                    leg: Leg::Agent,
                    destination,
                    packet: &datagram.contents[..len],
                    kind: TransmitKind::WebRtc,
                });
            }
            let packet = rtc.poll_rtp()?;
            let rtp = RtpIn {
                payload_type: *packet.header.payload_type,
                ssrc: *packet.header.ssrc,
                sequence: packet.header.sequence_number,
                timestamp: packet.header.timestamp,
                marker: packet.header.marker,
                payload: &packet.payload,
            };
            if let Some(emitted) = self.relay(packet.timestamp, Leg::Agent, None, rtp) {
                break emitted;
            }
        };
        Some(self.transmit(emitted))
    }

    /// Relays one RTP packet received on `leg` to the other leg, reporting DTMF on the way.
    /// `from` is the source of a plain RTP datagram (for latching); a WebRTC packet has none.
    fn relay(
        &mut self,
        now: Instant,
        leg: Leg,
        from: Option<SocketAddr>,
        rtp: RtpIn<'_>,
    ) -> Option<Emitted> {
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
        let format = input.remote.format;
        let payload = if Some(rtp.payload_type) == format.telephone_event {
            match TelephoneEvent::parse(rtp.payload) {
                Some(event) => Payload::Event(event),
                None => return dropped(DropReason::Malformed),
            }
        } else if rtp.payload_type == format.payload_type {
            Payload::Audio(format.codec)
        } else if let Some(codec) = Codec::from_static_payload_type(rtp.payload_type) {
            // The other law on its static type: phones answering an offer of both may switch
            // between them (RFC 3264 §6.1), and the table transcodes either.
            Payload::Audio(codec)
        } else {
            return dropped(DropReason::UnknownPayloadType);
        };
        if let Some(from) = from {
            if input.webrtc().is_some() {
                // Plain RTP for a WebRTC leg can only be someone else's.
                return dropped(DropReason::ForeignSource);
            }
            if !input.accept_source(now, from) {
                return dropped(DropReason::ForeignSource);
            }
        }
        input.last_activity = now;
        input.timeout_reported = false;

        if let Payload::Event(event) = payload
            && let Some((digit, duration)) = input.dtmf.handle(rtp.ssrc, rtp.timestamp, event)
        {
            tracing::debug!(%leg, %digit, ?duration, "DTMF");
            counters.add_dtmf();
            self.events.push_back(MediaEvent::Dtmf {
                leg,
                digit,
                duration,
            });
        }

        let Some(output) = output.filter(|output| output.accepts_rtp()) else {
            return dropped(DropReason::NoPeer);
        };
        let target = output.remote.format;
        let (payload_type, duration) = match payload {
            Payload::Audio(codec) => {
                g711::transcode(codec, target.codec, rtp.payload, &mut self.payload);
                (target.payload_type, self.payload.len() as u32)
            }
            Payload::Event(event) => {
                // RFC 4733 §2.1: events travel under the payload type each side negotiated.
                let Some(payload_type) = target.telephone_event else {
                    return dropped(DropReason::UnknownPayloadType);
                };
                self.payload.clear();
                self.payload.extend_from_slice(rtp.payload);
                (payload_type, u32::from(event.duration))
            }
        };
        let header: Header = output.outgoing.next_relayed(
            now,
            rtp.ssrc,
            rtp.sequence,
            rtp.timestamp,
            rtp.marker,
            duration,
        );
        output.emit(
            now,
            leg.other(),
            &mut self.packet,
            counters,
            payload_type,
            header,
            &self.payload,
            TransmitKind::Relayed,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Tone;
    use crate::test_support::{goertzel_ratio, rms};
    use crate::{AudioFormat, Clip, Direction};
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

    #[derive(Debug, Clone)]
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

    /// A session on a virtual clock that jumps to each wake-up (`poll_timeout`), recording
    /// every packet and every event with the number of packets sent before it.
    struct Harness {
        state: SessionState,
        t0: Instant,
        now: Instant,
        sent: Vec<Sent>,
        events: Vec<(usize, MediaEvent)>,
    }

    impl Harness {
        fn new(caller: RemoteMedia, counters: Arc<MediaCounters>) -> Self {
            let t0 = Instant::now();
            Self {
                state: SessionState::new(t0, caller, config(None), counters),
                t0,
                now: t0,
                sent: Vec::new(),
                events: Vec::new(),
            }
        }

        /// Runs every wake-up up to `millis` after the start, then sets the clock there.
        /// Bounded: a state that keeps asking to wake at the same time fails the test.
        fn run_to(&mut self, millis: u64) {
            let until = at(self.t0, millis);
            for _ in 0..100_000 {
                match self.state.poll_timeout() {
                    Some(due) if due <= until => {
                        self.now = self.now.max(due);
                        let sent = read(self.state.handle_timeout(self.now));
                        self.sent.extend(sent);
                        while let Some(event) = self.state.poll_event() {
                            self.events.push((self.sent.len(), event));
                        }
                    }
                    _ => {
                        self.now = until;
                        return;
                    }
                }
            }
            panic!("the session did not advance");
        }

        /// Runs until `count` more packets were sent (each wake-up at most 20 ms apart).
        fn run_packets(&mut self, count: usize) -> &[Sent] {
            let start = self.sent.len();
            for _ in 0..100_000 {
                if self.sent.len() >= start + count {
                    return &self.sent[start..];
                }
                let due = self
                    .state
                    .poll_timeout()
                    .expect("the session has something due");
                let millis = due.saturating_duration_since(self.t0).as_millis() as u64;
                self.run_to(millis);
            }
            panic!("not enough packets");
        }
    }

    /// Checks one continuous outgoing stream: sequence +1 per packet, audio timestamps +160
    /// per audio packet.
    fn assert_continuous(sent: &[Sent], audio_payload_type: u8) {
        for pair in sent.windows(2) {
            assert_eq!(
                pair[1].sequence,
                pair[0].sequence.wrapping_add(1),
                "sequence numbers +1"
            );
        }
        let audio: Vec<&Sent> = sent
            .iter()
            .filter(|p| p.payload_type == audio_payload_type)
            .collect();
        for pair in audio.windows(2) {
            assert_eq!(
                pair[1].timestamp.wrapping_sub(pair[0].timestamp),
                160,
                "audio timestamps +160 (seq {})",
                pair[1].sequence
            );
        }
    }

    fn tone_clip(frequency_hz: f64, samples: usize, name: &str) -> Clip {
        Clip::from_samples(
            &crate::test_support::tone(frequency_hz, -10.0, samples),
            name,
        )
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

    #[test]
    fn a_playlist_plays_its_clips_once_then_loops_the_background_in_the_callers_law() {
        // A prompt of 2.5 frames, one of 2 frames, music of 3 frames.
        let first = tone_clip(1000.0, 400, "first");
        let second = tone_clip(600.0, 320, "second");
        let music = tone_clip(440.0, 480, "music");
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut harness = Harness::new(remote(CALLER, codec, None), Arc::default());
            harness.run_packets(3); // comfort noise first
            harness.state.handle_play(
                Playlist::new(vec![first.clone(), second.clone()], Some(music.clone())),
                9,
            );
            harness.run_packets(3 + 2 + 3 * 3);
            let sent = &harness.sent;
            assert_eq!(sent.len(), 17);
            assert_continuous(sent, codec.payload_type());
            assert!(sent.iter().all(|p| p.payload_type == codec.payload_type()));

            let expected: Vec<(&Clip, usize)> = (0..3)
                .map(|n| (&first, n))
                .chain((0..2).map(|n| (&second, n)))
                .chain((0..9).map(|n| (&music, n % 3)))
                .collect();
            let other = match codec {
                Codec::Pcmu => Codec::Pcma,
                Codec::Pcma => Codec::Pcmu,
            };
            for (packet, (clip, frame)) in sent[3..].iter().zip(&expected) {
                assert_eq!(
                    packet.payload,
                    clip.frame(codec, *frame).unwrap(),
                    "{codec}: frame {frame} of {}",
                    clip.name()
                );
                assert_ne!(packet.payload, clip.frame(other, *frame).unwrap());
            }
            // Decoded in the caller's law, the first prompt is its tone.
            let mut heard = Vec::new();
            for packet in &sent[3..5] {
                let mut linear = Vec::new();
                g711::decode(codec, &packet.payload, &mut linear);
                heard.extend(linear);
            }
            assert!(goertzel_ratio(&heard, 1000.0, 1400.0) > 100.0);

            // Marked: the stream's first packet, each clip's first, the music's first; not the
            // music's loops.
            let marked: Vec<usize> = (0..sent.len()).filter(|&n| sent[n].marker).collect();
            assert_eq!(marked, [0, 3, 6, 8], "{codec}");
            // Done once, right after the last frame of the sequence.
            assert_eq!(harness.events, [(8, MediaEvent::PlaylistDone { id: 9 })]);
        }
    }

    #[test]
    fn a_playlist_without_background_ends_in_comfort_noise() {
        let prompt = tone_clip(1000.0, 320, "prompt");
        let mut harness = Harness::new(remote(CALLER, Codec::Pcmu, None), Arc::default());
        harness
            .state
            .handle_play(Playlist::new(vec![prompt.clone()], None), 1);
        harness.run_packets(6);
        let sent = &harness.sent;
        assert_continuous(sent, 0);
        assert_eq!(sent[1].payload, prompt.frame(Codec::Pcmu, 1).unwrap());
        let mut after = Vec::new();
        for packet in &sent[2..] {
            let mut linear = Vec::new();
            g711::decode(Codec::Pcmu, &packet.payload, &mut linear);
            after.extend(linear);
        }
        assert!(rms(&after) < 300.0, "comfort noise after the prompt");
        assert!(sent[2].marker && !sent[3].marker);
        assert_eq!(harness.events, [(2, MediaEvent::PlaylistDone { id: 1 })]);
    }

    #[test]
    fn play_replaces_a_running_playlist_at_the_next_frame() {
        let long = tone_clip(1000.0, 160 * 50, "long");
        let next = tone_clip(600.0, 160 * 2, "next");
        let mut harness = Harness::new(remote(CALLER, Codec::Pcma, None), Arc::default());
        harness
            .state
            .handle_play(Playlist::new(vec![long.clone()], None), 1);
        harness.run_packets(3); // frames at 0, 20, 40 ms
        harness.run_to(45);
        harness
            .state
            .handle_play(Playlist::new(vec![next.clone()], None), 2);
        assert_eq!(
            harness.state.poll_timeout(),
            Some(at(harness.t0, 60)),
            "the frame schedule is kept: no burst"
        );
        harness.run_packets(2);
        let sent = &harness.sent;
        assert_continuous(sent, 8);
        assert_eq!(sent[2].payload, long.frame(Codec::Pcma, 2).unwrap());
        assert_eq!(sent[3].payload, next.frame(Codec::Pcma, 0).unwrap());
        assert!(sent[3].marker, "new audio is marked");
        assert_eq!(sent[4].payload, next.frame(Codec::Pcma, 1).unwrap());
        assert_eq!(
            harness.events,
            [(5, MediaEvent::PlaylistDone { id: 2 })],
            "the replaced playlist reports nothing"
        );
    }

    #[test]
    fn bridge_mid_clip_stops_playback_and_hold_brings_comfort_noise() {
        let prompt = tone_clip(1000.0, 160 * 50, "prompt");
        let music = tone_clip(440.0, 160 * 10, "music");
        let mut harness = Harness::new(remote(CALLER, Codec::Pcmu, None), Arc::default());
        harness
            .state
            .handle_play(Playlist::new(vec![prompt.clone()], Some(music.clone())), 3);
        harness.run_packets(4); // 0..60 ms
        harness.run_to(70);
        let now = harness.now;
        harness
            .state
            .handle_bridge(now, remote(AGENT, Codec::Pcmu, None));
        assert_eq!(
            harness.state.poll_timeout(),
            None,
            "nothing generated any more"
        );
        harness.run_to(2000);
        assert_eq!(harness.sent.len(), 4, "no prompt frame after the bridge");

        // The agent speaks: relayed, continuing the caller's stream.
        let agent: SocketAddr = AGENT.parse().unwrap();
        let relayed = read(harness.state.handle_datagram(
            at(harness.t0, 2001),
            Leg::Agent,
            agent,
            &rtp(0, 70, 9000, &[0x55; 160]),
        ))
        .unwrap();
        assert_eq!(relayed.leg, Leg::Caller);
        assert_eq!(relayed.sequence, harness.sent[3].sequence.wrapping_add(1));

        // The agent hangs up: comfort noise, not the discarded playlist.
        harness.run_to(2010);
        let now = harness.now;
        harness.state.handle_hold(now);
        harness.run_packets(10);
        let after: Vec<i16> = harness.sent[4..]
            .iter()
            .flat_map(|packet| {
                let mut linear = Vec::new();
                g711::decode(Codec::Pcmu, &packet.payload, &mut linear);
                linear
            })
            .collect();
        assert!(rms(&after) < 300.0, "comfort noise after hold");
        assert_eq!(
            harness.sent[4].sequence,
            relayed.sequence.wrapping_add(1),
            "one stream throughout"
        );
        assert!(
            harness.events.is_empty(),
            "a discarded playlist reports nothing"
        );
    }

    #[test]
    fn playback_after_hold_and_a_playlist_given_while_bridged_waits_for_the_hold() {
        let survey = tone_clip(1000.0, 160 * 3, "survey");
        let mut harness = Harness::new(remote(CALLER, Codec::Pcmu, None), Arc::default());
        harness.run_packets(2);
        let now = harness.now;
        harness
            .state
            .handle_bridge(now, remote(AGENT, Codec::Pcmu, None));
        harness
            .state
            .handle_play(Playlist::new(vec![survey.clone()], None), 5);
        harness.run_to(1000);
        assert_eq!(harness.sent.len(), 2, "nothing generated while bridged");
        let now = harness.now;
        harness.state.handle_hold(now);
        harness.run_packets(4);
        let sent = &harness.sent;
        for frame in 0..3 {
            assert_eq!(
                sent[2 + frame].payload,
                survey.frame(Codec::Pcmu, frame).unwrap()
            );
        }
        assert!(sent[2].marker);
        assert_eq!(harness.events, [(5, MediaEvent::PlaylistDone { id: 5 })]);

        // The survey flow of the next issue: hold() then play() after a bridge.
        let now = harness.now;
        harness
            .state
            .handle_bridge(now, remote(AGENT, Codec::Pcmu, None));
        harness.run_to(2000);
        let now = harness.now;
        harness.state.handle_hold(now);
        harness
            .state
            .handle_play(Playlist::new(vec![survey.clone()], None), 6);
        let sent = harness.run_packets(3).to_vec();
        assert_eq!(sent[0].payload, survey.frame(Codec::Pcmu, 0).unwrap());
        assert_eq!(sent[2].payload, survey.frame(Codec::Pcmu, 2).unwrap());
        assert_eq!(
            harness.events.last(),
            Some(&(harness.sent.len(), MediaEvent::PlaylistDone { id: 6 }))
        );
    }

    #[test]
    fn a_caller_holding_the_call_pauses_the_playlist() {
        let prompt = tone_clip(1000.0, 160 * 6, "prompt");
        let mut harness = Harness::new(remote(CALLER, Codec::Pcmu, None), Arc::default());
        harness
            .state
            .handle_play(Playlist::new(vec![prompt.clone()], None), 8);
        harness.run_packets(2);
        let holding = RemoteMedia {
            direction: Direction::SendOnly,
            ..remote(CALLER, Codec::Pcmu, None)
        };
        let now = harness.now;
        harness
            .state
            .handle_update_remote(now, Leg::Caller, holding);
        harness.run_to(5000);
        assert_eq!(harness.sent.len(), 2);
        let now = harness.now;
        harness
            .state
            .handle_update_remote(now, Leg::Caller, remote(CALLER, Codec::Pcmu, None));
        harness.run_packets(4);
        assert_eq!(
            harness.sent[2].payload,
            prompt.frame(Codec::Pcmu, 2).unwrap()
        );
        assert!(harness.sent[2].marker);
        assert_eq!(harness.events, [(6, MediaEvent::PlaylistDone { id: 8 })]);
    }

    #[test]
    fn late_wake_ups_delay_the_prompt_without_losing_any_of_it() {
        let prompt = tone_clip(1000.0, 160 * 4, "prompt");
        let mut harness = Harness::new(remote(CALLER, Codec::Pcmu, None), Arc::default());
        harness
            .state
            .handle_play(Playlist::new(vec![prompt.clone()], None), 1);
        let first = read(harness.state.handle_timeout(harness.t0)).unwrap();
        // Woken 55 ms late: the frames due at 40 and 60 ms are skipped in time...
        let late = read(harness.state.handle_timeout(at(harness.t0, 75))).unwrap();
        let next = read(harness.state.handle_timeout(at(harness.t0, 80))).unwrap();
        assert_eq!(next.timestamp.wrapping_sub(late.timestamp), 480);
        // ...but not in the prompt, which goes on where it was.
        assert_eq!(first.payload, prompt.frame(Codec::Pcmu, 0).unwrap());
        assert_eq!(late.payload, prompt.frame(Codec::Pcmu, 1).unwrap());
        assert_eq!(next.payload, prompt.frame(Codec::Pcmu, 2).unwrap());
        assert_eq!(next.sequence, late.sequence.wrapping_add(1));
    }

    /// The RFC 4733 fields of a telephone-event packet: (event, end, duration).
    fn event_fields(packet: &Sent) -> (u8, bool, u16) {
        let [event, flags, high, low] = packet.payload[..] else {
            panic!("a 4-byte event payload");
        };
        (event, flags & 0x80 != 0, u16::from_be_bytes([high, low]))
    }

    #[test]
    fn send_dtmf_interleaves_rfc_4733_packets_with_the_prompt() {
        let counters = Arc::new(MediaCounters::default());
        let prompt = tone_clip(1000.0, 160 * 50, "prompt");
        let mut harness = Harness::new(
            remote(CALLER, Codec::Pcmu, Some(101)),
            Arc::clone(&counters),
        );
        harness
            .state
            .handle_play(Playlist::new(vec![prompt.clone()], None), 1);
        harness.run_packets(3); // 0, 20, 40 ms
        harness.run_to(50);
        let now = harness.now;
        harness.state.handle_send_dtmf(now, Leg::Caller, '7');
        harness.run_to(400);
        let sent = &harness.sent;
        assert_continuous(sent, 0);
        let events: Vec<&Sent> = sent.iter().filter(|p| p.payload_type == 101).collect();
        assert_eq!(events.len(), 7);
        let fields: Vec<(u8, bool, u16)> = events.iter().map(|p| event_fields(p)).collect();
        assert_eq!(
            fields,
            [
                (7, false, 160),
                (7, false, 320),
                (7, false, 480),
                (7, false, 640),
                (7, true, 800),
                (7, true, 800),
                (7, true, 800),
            ]
        );
        let markers: Vec<bool> = events.iter().map(|p| p.marker).collect();
        assert_eq!(markers, [true, false, false, false, false, false, false]);
        assert!(events.iter().all(|p| p.timestamp == events[0].timestamp));
        // The event starts at the media time of the next audio frame.
        let next_audio = sent
            .iter()
            .skip_while(|p| p.payload_type == 0)
            .find(|p| p.payload_type == 0)
            .unwrap();
        assert_eq!(events[0].timestamp, next_audio.timestamp);
        // The prompt went on, every frame of it, unmarked.
        let audio: Vec<&Sent> = sent.iter().filter(|p| p.payload_type == 0).collect();
        assert_eq!(audio.len(), 21, "a frame every 20 ms from 0 to 400 ms");
        for (n, packet) in audio.iter().enumerate() {
            assert_eq!(packet.payload, prompt.frame(Codec::Pcmu, n).unwrap());
            assert_eq!(packet.marker, n == 0);
        }
        assert_eq!(counters.dtmf_sent(), 1);
        assert_eq!(counters.dtmf_ignored(), 0);
    }

    #[test]
    fn keys_in_a_row_are_separate_events() {
        let mut harness = Harness::new(remote(CALLER, Codec::Pcma, Some(96)), Arc::default());
        for digit in "1#".chars() {
            let now = harness.now;
            harness.state.handle_send_dtmf(now, Leg::Caller, digit);
        }
        harness.run_to(500);
        let events: Vec<&Sent> = harness
            .sent
            .iter()
            .filter(|p| p.payload_type == 96)
            .collect();
        assert_eq!(events.len(), 14);
        assert_eq!(
            (event_fields(events[0]).0, event_fields(events[7]).0),
            (1, 11)
        );
        assert!(events[0].marker && events[7].marker);
        assert!(
            wrapping_after(events[7].timestamp, events[6].timestamp.wrapping_add(800)),
            "the second key starts after the first ended"
        );
        assert_continuous(&harness.sent, 8);
    }

    fn wrapping_after(a: u32, b: u32) -> bool {
        (a.wrapping_sub(b) as i32) > 0
    }

    #[test]
    fn send_dtmf_is_ignored_and_counted_where_it_cannot_go() {
        let counters = Arc::new(MediaCounters::default());
        let mut harness = Harness::new(remote(CALLER, Codec::Pcmu, None), Arc::clone(&counters));
        let now = harness.now;
        harness.state.handle_send_dtmf(now, Leg::Caller, '5'); // no telephone-event
        harness.state.handle_send_dtmf(now, Leg::Agent, '5'); // no agent leg
        harness.run_to(300);
        assert!(harness.sent.iter().all(|p| p.payload_type == 0));
        assert_eq!(counters.dtmf_ignored(), 2);

        let mut harness = Harness::new(
            remote(CALLER, Codec::Pcmu, Some(101)),
            Arc::clone(&counters),
        );
        let now = harness.now;
        harness.state.handle_send_dtmf(now, Leg::Caller, 'x'); // not a key
        harness.run_to(300);
        assert!(harness.sent.iter().all(|p| p.payload_type == 0));
        assert_eq!((counters.dtmf_ignored(), counters.dtmf_sent()), (3, 0));
    }

    #[test]
    fn send_dtmf_to_the_agent_keeps_the_relayed_stream_in_sequence() {
        let counters = Arc::new(MediaCounters::default());
        let mut harness = Harness::new(
            remote(CALLER, Codec::Pcmu, Some(101)),
            Arc::clone(&counters),
        );
        let now = harness.now;
        harness
            .state
            .handle_bridge(now, remote(AGENT, Codec::Pcmu, Some(96)));
        let caller: SocketAddr = CALLER.parse().unwrap();
        let mut to_agent = Vec::new();
        for n in 0..15u16 {
            let millis = 20 * u64::from(n);
            harness.run_to(millis);
            // The caller's audio, relayed as it arrives (5 ms after each frame time).
            let sent = read(harness.state.handle_datagram(
                at(harness.t0, millis + 5),
                Leg::Caller,
                caller,
                &rtp(0, 500 + n, 8000 + 160 * u32::from(n), &[0xFF; 160]),
            ))
            .unwrap();
            to_agent.push(sent);
            if n == 2 {
                let now = at(harness.t0, millis + 6);
                harness.state.handle_send_dtmf(now, Leg::Agent, '9');
            }
            // Merge the generated packets sent meanwhile (the agent's events).
            to_agent.extend(harness.sent.drain(..).filter(|p| p.leg == Leg::Agent));
        }
        harness.run_to(400);
        to_agent.extend(harness.sent.drain(..).filter(|p| p.leg == Leg::Agent));
        // In sending order, whatever the random initial sequence number wraps to.
        let first = to_agent[0].sequence;
        to_agent.sort_by_key(|p| p.sequence.wrapping_sub(first));
        assert_continuous(&to_agent, 0);
        let events: Vec<&Sent> = to_agent.iter().filter(|p| p.payload_type == 96).collect();
        assert_eq!(events.len(), 7);
        assert!(events.iter().all(|p| event_fields(p).0 == 9));
        let mut sequences: Vec<u16> = to_agent.iter().map(|p| p.sequence).collect();
        sequences.dedup();
        assert_eq!(
            sequences.len(),
            22,
            "15 relayed and 7 events, no number used twice"
        );
        assert_eq!(counters.dtmf_sent(), 1);
    }
}
