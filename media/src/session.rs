//! A call's media, run as one Tokio task.

use crate::counters::{DropReason, MediaCounters};
use crate::port_pool::RtpSocket;
use crate::session_state::{AgentMedia, SessionState, Transmit, TransmitKind};
use crate::webrtc::{Datagram, Link};
use crate::{Leg, MediaEvent, Playlist, RemoteMedia, WebRtcError, WebRtcLeg};
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

/// Events waiting for the call flow before new ones are dropped (with a warning): enough for
/// a burst of DTMF, small enough that a stuck consumer cannot grow memory.
const EVENT_CAPACITY: usize = 64;

/// Larger than any RTP packet a G.711 phone sends (a 1500-byte MTU), so nothing is cut.
const RECEIVE_BUFFER: usize = 2048;

thread_local! {
    /// Where an RTP datagram lands between its socket's readiness and its handling: one
    /// buffer for each runtime thread, used only between an await and the next, rather than
    /// two in each session (4 KB a call, some 6 MB at 1,000 calls a second).
    static DATAGRAM: RefCell<Vec<u8>> = RefCell::new(vec![0; RECEIVE_BUFFER]);
}

/// Packets sent at one wake-up at most. Two are normal (an audio frame and a
/// telephone-event); the bound only keeps a state that failed to advance from spinning.
const MAX_DUE_PER_WAKE: usize = 8;

/// Most datagrams read from one socket at one wake-up ([`relay_ready`]): never so many
/// that the other leg and the timers wait.
const MAX_READ_PER_WAKE: usize = 8;

/// How a [`MediaSession`] behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionConfig {
    /// No RTP received on a leg this long, while the leg is expected to send (not on hold,
    /// not inactive), raises [`MediaEvent::RtpTimeout`]. `None` disables the check.
    pub rtp_timeout: Option<Duration>,
    /// The RMS level of the comfort noise the caller hears while waiting, in dBov (e.g. -50:
    /// audible as a live line, far below speech).
    pub comfort_level_dbov: f32,
}

impl Default for SessionConfig {
    /// 30 s RTP timeout, comfort noise at -50 dBov.
    fn default() -> Self {
        Self {
            rtp_timeout: Some(Duration::from_secs(30)),
            comfort_level_dbov: -50.0,
        }
    }
}

/// An agent leg for [`MediaSession::bridge_agent`]: whatever the agent's softphone is, the
/// session relays, plays, detects keys and times out on it the same way.
#[derive(Debug)]
pub enum AgentLeg {
    /// A SIP phone: plain RTP on a socket of the port pool, to the address its SDP gave.
    Rtp(RtpSocket, RemoteMedia),
    /// A browser: DTLS-SRTP over ICE on the WebRTC endpoint's socket, its offer/answer done.
    WebRtc(WebRtcLeg),
}

/// Where a bridged agent leg's datagrams come from and go to.
#[derive(Debug)]
enum AgentSocket {
    Rtp(RtpSocket),
    WebRtc(Link),
}

/// What the agent side of the session's select loop received.
enum AgentInput {
    /// The plain RTP socket is readable (or failed to wait).
    RtpReady(io::Result<()>),
    WebRtc(Datagram),
}

/// What the handle asks of the session's task. Boxed where a variant is large: every
/// session's command queue allocates room for 32 commands at its start (Tokio's block),
/// so the largest variant sets its size; with the agent leg inline (128 bytes) that was
/// 4 KB a call, about 6 MB at 1,000 calls a second (BENCHMARKS.md).
#[derive(Debug)]
enum Command {
    Bridge(Box<AgentLeg>),
    AgentOffer(String, oneshot::Sender<Result<String, WebRtcError>>),
    Hold,
    UpdateRemote(Leg, RemoteMedia),
    Play(Playlist, u64),
    SendDtmf(Leg, char),
    Stop,
}

/// One call's media: the caller leg always, an agent leg while bridged.
///
/// The methods only queue a command for the session's task and return at once; they never
/// fail. A command sent after the session stopped is ignored. Dropping the handle stops the
/// session, closing its sockets and returning their ports.
#[derive(Debug)]
pub struct MediaSession {
    commands: mpsc::UnboundedSender<Command>,
    caller_local_addr: SocketAddr,
}

impl MediaSession {
    /// Starts serving the caller leg on `caller`, sending RTP to `caller_remote`: the caller
    /// hears the comfort stream until [`bridge`](Self::bridge). Must be called inside a Tokio
    /// runtime. Events arrive on the returned receiver until the session stops.
    pub fn start(
        caller: RtpSocket,
        caller_remote: RemoteMedia,
        config: SessionConfig,
        counters: Arc<MediaCounters>,
    ) -> (MediaSession, mpsc::Receiver<MediaEvent>) {
        let (event_sender, events) = mpsc::channel(EVENT_CAPACITY);
        let (commands, command_receiver) = mpsc::unbounded_channel();
        let caller_local_addr = caller.local_addr();
        let state = SessionState::new(now(), caller_remote, config, Arc::clone(&counters));
        tracing::debug!(
            local = %caller_local_addr,
            remote = %caller_remote.addr,
            ssrc = state.caller_ssrc(),
            "media session started"
        );
        counters.session_started();
        let active = ActiveSession(counters);
        tokio::spawn(run(state, caller, command_receiver, event_sender, active));
        (
            MediaSession {
                commands,
                caller_local_addr,
            },
            events,
        )
    }

    /// Bridges an agent leg: relays RTP both ways from now on, transcoding if the legs' laws
    /// differ. A previous agent leg, if any, is released.
    ///
    /// Playback stops when the bridge takes effect: no prompt or music packet follows the
    /// command, and the playlist is discarded (its `PlaylistDone` never comes if it had not
    /// yet), so a stale announcement never resumes after a later [`hold`](Self::hold).
    pub fn bridge(&self, agent: RtpSocket, agent_remote: RemoteMedia) {
        self.bridge_agent(AgentLeg::Rtp(agent, agent_remote));
    }

    /// [`bridge`](Self::bridge) for any kind of agent leg: a SIP phone's plain RTP or a
    /// browser's WebRTC leg (whose answer was accepted). The browser's ICE checks and DTLS
    /// handshake that arrived before are waiting for the session and are handled first; audio
    /// flows to the browser once DTLS is up, and until then the caller's packets for it are
    /// counted as dropped (`NoPeer`).
    pub fn bridge_agent(&self, agent: AgentLeg) {
        self.send(Command::Bridge(Box::new(agent)));
    }

    /// Answers an SDP offer from the bridged browser agent (a re-INVITE from the page: hold,
    /// resume, an ICE restart): the answer for the 200 OK. The bridge stays up and follows
    /// the new direction. Fails with [`WebRtcError::NoWebRtcLeg`] when the agent leg is not
    /// a browser's (or the session has stopped), and with the SDP errors when the offer cannot
    /// be taken (a 488 in SIP).
    pub async fn answer_agent_offer(&self, offer: &str) -> Result<String, WebRtcError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::AgentOffer(offer.to_owned(), reply));
        answer.await.unwrap_or(Err(WebRtcError::NoWebRtcLeg))
    }

    /// Releases the agent leg (if any), closing its socket, and gives the caller the waiting
    /// audio again: comfort noise, unless [`play`](Self::play) was called since the bridge.
    /// To play something after a hold (a survey), call `hold()` then `play(...)`: commands
    /// run in order, and the playlist starts at the next 20 ms frame. Without a bridge, `hold`
    /// changes nothing (a playlist playing goes on).
    pub fn hold(&self) {
        self.send(Command::Hold);
    }

    /// Plays `playlist` to the caller: its sequence once, then its background looped. It
    /// replaces whatever the caller hears while waiting (comfort noise or a previous playlist,
    /// which then never reports `PlaylistDone`) at the next 20 ms frame boundary, continuing
    /// the same RTP stream (sequence +1, timestamp +160 per frame, the marker bit on the first
    /// packet of each new clip, RFC 3551 §4.1).
    ///
    /// [`MediaEvent::PlaylistDone`] with this `id` comes once the sequence has been sent; a
    /// following `play` issued on that event takes over at the next frame, so announcements
    /// chain without a gap. The frames are the clips' own, encoded at load time in the law
    /// the caller negotiated; a late wake-up of the task delays the audio rather than
    /// skipping any of it.
    ///
    /// While bridged, the playlist is kept for the next [`hold`](Self::hold); while the
    /// caller holds the call (sendonly or inactive, RFC 3264 §8.4) playback pauses and resumes
    /// where it was.
    pub fn play(&self, playlist: Playlist, id: u64) {
        self.send(Command::Play(playlist, id));
    }

    /// Sends the DTMF key `digit` (`0`-`9`, `*`, `#`, `A`-`D`; `!` for a flash) to `leg` as
    /// RFC 4733 telephone-events, on that leg's negotiated telephone-event payload type: a
    /// 100 ms tone as packets every 20 ms sharing one timestamp (the event's start), the
    /// first with the marker bit, durations growing 160, 320, ... 800, the final packet sent
    /// three times with the end bit (RFC 4733 §2.5.1.2, §2.5.1.4). Keys sent in a row follow
    /// one another 60 ms apart. The packets take their places in the leg's sequence numbers
    /// between the audio packets, whose timestamps they do not disturb.
    ///
    /// Ignored, with a debug log and [`MediaCounters::dtmf_ignored`] counted, when the leg
    /// negotiated no telephone-event, is the agent leg while not bridged, takes no media
    /// (on hold), or `digit` is no DTMF key.
    pub fn send_dtmf(&self, leg: Leg, digit: char) {
        self.send(Command::SendDtmf(leg, digit));
    }

    /// Applies an in-dialog re-INVITE on `leg` (hold, unhold, new address, new codec): the
    /// session keeps running and a bridge stays up. Ignored for the agent leg when not bridged.
    pub fn update_remote(&self, leg: Leg, remote: RemoteMedia) {
        self.send(Command::UpdateRemote(leg, remote));
    }

    /// Stops the session: no more packets or events; the sockets close. Also done on drop.
    pub fn stop(&self) {
        self.send(Command::Stop);
    }

    /// The caller leg's local address, as put in the SDP answer.
    pub fn caller_local_addr(&self) -> SocketAddr {
        self.caller_local_addr
    }

    fn send(&self, command: Command) {
        // An error only means the task has already ended; there is nothing left to command.
        let _ = self.commands.send(command);
    }
}

impl Drop for MediaSession {
    fn drop(&mut self) {
        self.send(Command::Stop);
    }
}

/// Keeps `sessions_active` right however the task ends, even dropped unpolled at shutdown.
struct ActiveSession(Arc<MediaCounters>);

impl Drop for ActiveSession {
    fn drop(&mut self) {
        self.0.session_ended();
    }
}

fn now() -> Instant {
    // Tokio's clock, so that a paused test runtime is respected.
    tokio::time::Instant::now().into_std()
}

async fn receive(socket: Option<&mut AgentSocket>) -> AgentInput {
    match socket {
        Some(AgentSocket::Rtp(socket)) => AgentInput::RtpReady(socket.socket().readable().await),
        Some(AgentSocket::WebRtc(link)) => match link.recv().await {
            Some(datagram) => AgentInput::WebRtc(datagram),
            // The link holds a sender of its own queue, so this never ends; if it did, the
            // leg would simply be silent.
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// Relays what `leg`'s plain RTP socket holds, now that it is readable: read into the
/// thread's buffer until the socket is empty (its readiness is cleared then, so the next
/// wait sleeps), at most [`MAX_READ_PER_WAKE`] datagrams.
fn relay_ready(
    leg: Leg,
    state: &mut SessionState,
    caller: &RtpSocket,
    agent: &mut Option<AgentSocket>,
    counters: &MediaCounters,
) {
    DATAGRAM.with_borrow_mut(|buffer| {
        for _ in 0..MAX_READ_PER_WAKE {
            let socket = match (leg, &*agent) {
                (Leg::Caller, _) => caller.socket(),
                (Leg::Agent, Some(AgentSocket::Rtp(socket))) => socket.socket(),
                (Leg::Agent, _) => return,
            };
            let Some((len, from)) = try_read(socket, buffer, leg) else {
                return;
            };
            let transmit = state.handle_datagram(now(), leg, from, &buffer[..len]);
            send(transmit, caller, agent.as_mut(), counters);
        }
    });
}

/// One datagram from a socket that was readable, into `buffer`: its length and source, or
/// None when the readiness was stale or the read failed.
fn try_read(socket: &UdpSocket, buffer: &mut [u8], leg: Leg) -> Option<(usize, SocketAddr)> {
    match socket.try_recv_from(buffer) {
        Ok(received) => Some(received),
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => None,
        // ICMP errors from earlier sends surface here (ECONNREFUSED on Linux); the socket is
        // still fine.
        Err(error) => {
            tracing::trace!(%error, ?leg, "RTP receive error");
            None
        }
    }
}

fn send(
    transmit: Option<Transmit<'_>>,
    caller: &RtpSocket,
    agent: Option<&mut AgentSocket>,
    counters: &MediaCounters,
) {
    let Some(transmit) = transmit else { return };
    // try_send_to never waits: a full socket buffer drops this packet rather than delaying
    // every later one.
    let sent = match (transmit.leg, agent) {
        (Leg::Caller, _) => caller
            .socket()
            .try_send_to(transmit.packet, transmit.destination),
        (Leg::Agent, Some(AgentSocket::Rtp(socket))) => socket
            .socket()
            .try_send_to(transmit.packet, transmit.destination),
        (Leg::Agent, Some(AgentSocket::WebRtc(link))) => {
            link.send(transmit.destination, transmit.packet)
        }
        (Leg::Agent, None) => return counters.add_dropped(DropReason::NoPeer),
    };
    match sent {
        Ok(_) => match transmit.kind {
            TransmitKind::Relayed => counters.add_relayed(),
            TransmitKind::Generated => counters.add_generated(),
            // The RTP inside was counted when it was handed to str0m.
            TransmitKind::WebRtc => {}
        },
        Err(error) => {
            let (leg, destination) = (transmit.leg, transmit.destination);
            tracing::debug!(%leg, %destination, %error, "RTP send failed");
            counters.add_dropped(DropReason::SendFailed);
        }
    }
}

async fn run(
    mut state: SessionState,
    caller: RtpSocket,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::Sender<MediaEvent>,
    active: ActiveSession,
) {
    let counters = Arc::clone(&active.0);
    let mut agent: Option<AgentSocket> = None;
    loop {
        let deadline = state.poll_timeout();
        // A far-away wake-up stands in for "none"; the branch is disabled then anyway.
        let wake_at = deadline.map_or_else(
            || tokio::time::Instant::now() + Duration::from_secs(3600),
            tokio::time::Instant::from_std,
        );
        tokio::select! {
            command = commands.recv() => match command {
                None | Some(Command::Stop) => break,
                Some(Command::Bridge(leg)) => match *leg {
                    AgentLeg::Rtp(socket, remote) => {
                        let local = socket.local_addr();
                        tracing::debug!(%local, remote = %remote.addr, "agent leg bridged");
                        agent = Some(AgentSocket::Rtp(socket));
                        state.handle_bridge(now(), AgentMedia::Rtp(remote));
                    }
                    AgentLeg::WebRtc(leg) => {
                        let (rtc, link) = leg.into_parts();
                        let local = link.local_addr();
                        tracing::debug!(%local, ?rtc, "WebRTC agent leg bridged");
                        agent = Some(AgentSocket::WebRtc(link));
                        state.handle_bridge(now(), AgentMedia::WebRtc(rtc));
                    }
                },
                Some(Command::AgentOffer(offer, reply)) => {
                    let _ = reply.send(state.handle_agent_offer(now(), &offer));
                }
                Some(Command::Hold) => {
                    agent = None;
                    state.handle_hold(now());
                }
                Some(Command::UpdateRemote(leg, remote)) => {
                    state.handle_update_remote(now(), leg, remote);
                }
                Some(Command::Play(playlist, id)) => state.handle_play(playlist, id),
                Some(Command::SendDtmf(leg, digit)) => state.handle_send_dtmf(now(), leg, digit),
            },
            ready = caller.socket().readable() => match ready {
                Ok(()) => relay_ready(Leg::Caller, &mut state, &caller, &mut agent, &counters),
                Err(error) => tracing::trace!(%error, "caller RTP wait error"),
            },
            received = receive(agent.as_mut()) => match received {
                AgentInput::RtpReady(Ok(())) => {
                    relay_ready(Leg::Agent, &mut state, &caller, &mut agent, &counters);
                }
                AgentInput::RtpReady(Err(error)) => tracing::trace!(%error, "agent RTP wait error"),
                AgentInput::WebRtc(datagram) => {
                    let local = match &agent {
                        Some(AgentSocket::WebRtc(link)) => link.local_addr(),
                        _ => continue,
                    };
                    let Datagram { source, received_at, bytes } = datagram;
                    state.handle_webrtc_datagram(received_at, source, local, &bytes);
                }
            },
            () = tokio::time::sleep_until(wake_at), if deadline.is_some() => {
                let now = now();
                for _ in 0..MAX_DUE_PER_WAKE {
                    let transmit = state.handle_timeout(now);
                    send(transmit, &caller, agent.as_mut(), &counters);
                    if state.poll_timeout().is_none_or(|next| next > now) {
                        break;
                    }
                }
            }
        }
        // What the input left behind: a browser leg's datagrams, its audio for the caller.
        while let Some(transmit) = state.poll_transmit() {
            send(Some(transmit), &caller, agent.as_mut(), &counters);
        }
        while let Some(event) = state.poll_event() {
            if let Err(error) = events.try_send(event) {
                tracing::warn!(%error, "media event dropped: the call flow is not reading events");
            }
        }
    }
    tracing::debug!(local = %caller.local_addr(), "media session stopped");
    // Sockets closed and the session uncounted before the event channel closes, so a call
    // flow that sees the channel end can rely on both.
    drop(agent);
    drop(caller);
    drop(active);
    drop(events);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{goertzel_ratio, rms, tone};
    use crate::{AudioFormat, Clip, Codec, Direction, g711};
    use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};
    use tokio::net::UdpSocket;
    use tokio::time::timeout;

    /// Every wait in these tests ends here at the latest, so a broken session fails the test
    /// instead of hanging it.
    const DEADLINE: Duration = Duration::from_secs(5);

    fn localhost() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    /// A received RTP packet, decoded.
    #[derive(Debug, Clone)]
    struct Packet {
        from: SocketAddr,
        payload_type: u8,
        sequence: u16,
        timestamp: u32,
        ssrc: u32,
        marker: bool,
        payload: Vec<u8>,
    }

    impl Packet {
        fn linear(&self, codec: Codec) -> Vec<i16> {
            let mut linear = Vec::new();
            g711::decode(codec, &self.payload, &mut linear);
            linear
        }

        /// Relayed test tones are loud; comfort noise is at -50 dBov.
        fn is_loud(&self, codec: Codec) -> bool {
            rms(&self.linear(codec)) > 1000.0
        }
    }

    /// A fake phone: a plain UDP socket speaking RTP.
    struct Phone {
        socket: UdpSocket,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
    }

    impl Phone {
        async fn new() -> Self {
            Self {
                socket: UdpSocket::bind(localhost()).await.unwrap(),
                ssrc: 0x5EED_0001,
                sequence: 1000,
                timestamp: 50_000,
            }
        }

        fn addr(&self) -> SocketAddr {
            self.socket.local_addr().unwrap()
        }

        fn remote(&self, codec: Codec, telephone_event: Option<u8>) -> RemoteMedia {
            RemoteMedia {
                addr: self.addr(),
                format: AudioFormat::new(codec, telephone_event),
                direction: Direction::SendRecv,
            }
        }

        async fn send_raw(&self, to: SocketAddr, datagram: &[u8]) {
            self.socket.send_to(datagram, to).await.unwrap();
        }

        /// Sends the next 20 ms of audio and returns nothing; sequence and timestamp advance.
        async fn send_audio(&mut self, to: SocketAddr, payload_type: u8, payload: &[u8]) {
            self.send_packet(to, payload_type, false, payload).await;
            self.timestamp = self.timestamp.wrapping_add(payload.len() as u32);
        }

        async fn send_packet(
            &mut self,
            to: SocketAddr,
            payload_type: u8,
            marker: bool,
            payload: &[u8],
        ) {
            let packet = RtpPacketBuilder::new()
                .payload_type(payload_type)
                .marked(marker)
                .sequence(Seq::from(self.sequence))
                .timestamp(self.timestamp)
                .ssrc(self.ssrc)
                .payload(payload)
                .build()
                .unwrap();
            self.sequence = self.sequence.wrapping_add(1);
            self.send_raw(to, &packet).await;
        }

        async fn try_recv(&self, wait: Duration) -> Option<Packet> {
            let mut buffer = [0; 2048];
            let (len, from) = timeout(wait, self.socket.recv_from(&mut buffer))
                .await
                .ok()?
                .unwrap();
            let reader = RtpReader::new(&buffer[..len]).expect("Amico sends valid RTP version 2");
            assert_eq!(reader.version(), 2);
            Some(Packet {
                from,
                payload_type: reader.payload_type(),
                sequence: reader.sequence_number().into(),
                timestamp: reader.timestamp(),
                ssrc: reader.ssrc(),
                marker: reader.mark(),
                payload: reader.payload().to_vec(),
            })
        }

        async fn recv(&self) -> Packet {
            self.try_recv(DEADLINE)
                .await
                .expect("an RTP packet before the deadline")
        }
    }

    /// 20 ms frames of a tone in `codec`'s law.
    fn tone_frames(codec: Codec, frequency_hz: f64, frames: usize) -> Vec<Vec<u8>> {
        let samples = tone(frequency_hz, -10.0, frames * 160);
        samples
            .chunks(160)
            .map(|chunk| {
                let mut payload = Vec::new();
                g711::encode(codec, chunk, &mut payload);
                payload
            })
            .collect()
    }

    /// `sender` keeps sending tone frames to `to` until `receiver` got `wanted` loud packets
    /// (commands reach the session asynchronously, so the first frames may meet no bridge
    /// yet). Between sends it waits up to 20 ms for a packet; the whole pump has a deadline.
    async fn pump(
        sender: &mut Phone,
        to: SocketAddr,
        codec: Codec,
        frequency_hz: f64,
        receiver: &Phone,
        receiver_codec: Codec,
        wanted: usize,
    ) -> Vec<Packet> {
        let frames = tone_frames(codec, frequency_hz, 50);
        let mut all = Vec::new();
        let pumping = async {
            let mut loud = 0;
            for frame in frames.iter().cycle() {
                sender.send_audio(to, codec.payload_type(), frame).await;
                while let Some(packet) = receiver.try_recv(Duration::from_millis(20)).await {
                    loud += usize::from(packet.is_loud(receiver_codec));
                    all.push(packet);
                    if loud == wanted {
                        return;
                    }
                }
            }
        };
        timeout(DEADLINE, pumping)
            .await
            .expect("the relayed packets before the deadline");
        all
    }

    fn start(
        caller: &Phone,
        codec: Codec,
        telephone_event: Option<u8>,
        rtp_timeout: Option<Duration>,
    ) -> (MediaSession, mpsc::Receiver<MediaEvent>, Arc<MediaCounters>) {
        let counters = Arc::new(MediaCounters::default());
        let socket = RtpSocket::bind(localhost()).unwrap();
        let config = SessionConfig {
            rtp_timeout,
            comfort_level_dbov: -50.0,
        };
        let (session, events) = MediaSession::start(
            socket,
            caller.remote(codec, telephone_event),
            config,
            Arc::clone(&counters),
        );
        (session, events, counters)
    }

    fn wrapping_after(a: u32, b: u32) -> bool {
        (a.wrapping_sub(b) as i32) > 0
    }

    #[tokio::test]
    async fn caller_hears_a_paced_comfort_stream_in_its_law() {
        let caller = Phone::new().await;
        let (session, _events, counters) = start(&caller, Codec::Pcma, None, None);
        let mut packets = Vec::new();
        for _ in 0..25 {
            packets.push(caller.recv().await);
        }
        let first = &packets[0];
        assert_eq!(first.from, session.caller_local_addr());
        assert!(first.marker, "RFC 3551 §4.1: marker on the first packet");
        let mut heard = Vec::new();
        for pair in packets.windows(2) {
            let (previous, packet) = (&pair[0], &pair[1]);
            assert_eq!(packet.payload_type, 8);
            assert_eq!(packet.ssrc, first.ssrc);
            assert!(!packet.marker);
            assert_eq!(packet.sequence, previous.sequence.wrapping_add(1));
            // +160 per packet; a loaded test machine may make the task skip frames, which
            // then shows as a multiple of 160 (the exact pacing is tested in session_state).
            let advance = packet.timestamp.wrapping_sub(previous.timestamp);
            assert!(
                advance >= 160 && advance % 160 == 0,
                "timestamp advance {advance}"
            );
            assert_eq!(packet.payload.len(), 160);
            heard.extend(packet.linear(Codec::Pcma));
        }
        let level = 20.0 * (rms(&heard) / 32767.0).log10();
        assert!(
            (-53.0..=-47.0).contains(&level),
            "comfort noise at {level} dBov"
        );
        assert!(counters.packets_generated() >= 25);
        assert_eq!(counters.sessions_active(), 1);
    }

    #[tokio::test]
    async fn bridge_relays_tones_both_ways_transcoding_pcmu_and_pcma() {
        let mut caller = Phone::new().await;
        let mut agent = Phone::new().await;
        agent.ssrc = 0xA6E7;
        let (session, _events, counters) = start(&caller, Codec::Pcmu, None, None);
        let caller_port = session.caller_local_addr();
        let agent_socket = RtpSocket::bind(localhost()).unwrap();
        let agent_port = agent_socket.local_addr();
        session.bridge(agent_socket, agent.remote(Codec::Pcma, None));

        let to_agent = pump(
            &mut caller,
            caller_port,
            Codec::Pcmu,
            1000.0,
            &agent,
            Codec::Pcma,
            20,
        )
        .await;
        assert!(
            to_agent
                .iter()
                .all(|p| p.payload_type == 8 && p.from == agent_port)
        );
        let heard: Vec<i16> = to_agent
            .iter()
            .flat_map(|p| p.linear(Codec::Pcma))
            .collect();
        let ratio = goertzel_ratio(&heard, 1000.0, 1400.0);
        assert!(
            ratio > 100.0,
            "agent hears the caller's 1 kHz tone (ratio {ratio})"
        );

        let to_caller = pump(
            &mut agent,
            agent_port,
            Codec::Pcma,
            600.0,
            &caller,
            Codec::Pcmu,
            20,
        )
        .await;
        let relayed: Vec<&Packet> = to_caller
            .iter()
            .filter(|p| p.is_loud(Codec::Pcmu))
            .collect();
        assert!(relayed.iter().all(|p| p.payload_type == 0));
        let heard: Vec<i16> = relayed.iter().flat_map(|p| p.linear(Codec::Pcmu)).collect();
        let ratio = goertzel_ratio(&heard, 600.0, 800.0);
        assert!(
            ratio > 100.0,
            "caller hears the agent's 600 Hz tone (ratio {ratio})"
        );
        assert!(counters.packets_relayed() >= 40);
    }

    #[tokio::test]
    async fn the_callers_stream_stays_continuous_from_comfort_to_relay_and_back() {
        let caller = Phone::new().await;
        let mut agent = Phone::new().await;
        let (session, _events, _counters) = start(&caller, Codec::Pcmu, None, None);
        let mut received = Vec::new();
        for _ in 0..3 {
            received.push(caller.recv().await);
        }
        let agent_socket = RtpSocket::bind(localhost()).unwrap();
        let agent_port = agent_socket.local_addr();
        session.bridge(agent_socket, agent.remote(Codec::Pcmu, None));
        received.extend(
            pump(
                &mut agent,
                agent_port,
                Codec::Pcmu,
                600.0,
                &caller,
                Codec::Pcmu,
                10,
            )
            .await,
        );
        session.hold();
        loop {
            let packet = caller.recv().await;
            let quiet = !packet.is_loud(Codec::Pcmu);
            received.push(packet);
            if quiet
                && received
                    .iter()
                    .rev()
                    .take(3)
                    .all(|p| !p.is_loud(Codec::Pcmu))
            {
                break;
            }
        }

        let ssrc = received[0].ssrc;
        let mut switches = Vec::new();
        for (index, pair) in received.windows(2).enumerate() {
            let (previous, packet) = (&pair[0], &pair[1]);
            assert_eq!(packet.ssrc, ssrc, "one SSRC for the caller's stream");
            assert_eq!(
                packet.sequence,
                previous.sequence.wrapping_add(1),
                "packet {}",
                index + 1
            );
            assert!(
                wrapping_after(packet.timestamp, previous.timestamp),
                "timestamps move forward at packet {}",
                index + 1
            );
            if packet.is_loud(Codec::Pcmu) != previous.is_loud(Codec::Pcmu) {
                switches.push(index + 1);
                assert!(
                    packet.marker,
                    "marker on the first packet after a switch (packet {})",
                    index + 1
                );
            } else {
                assert!(
                    !packet.marker,
                    "no marker inside a run (packet {})",
                    index + 1
                );
            }
        }
        assert_eq!(switches.len(), 2, "comfort → relay → comfort");
    }

    #[tokio::test]
    async fn telephone_events_cross_with_the_agents_payload_type_and_raise_one_dtmf_event() {
        let mut caller = Phone::new().await;
        let agent = Phone::new().await;
        let (session, mut events, _counters) = start(&caller, Codec::Pcmu, Some(101), None);
        let caller_port = session.caller_local_addr();
        session.bridge(
            RtpSocket::bind(localhost()).unwrap(),
            agent.remote(Codec::Pcmu, Some(96)),
        );
        pump(
            &mut caller,
            caller_port,
            Codec::Pcmu,
            1000.0,
            &agent,
            Codec::Pcmu,
            3,
        )
        .await;

        // RFC 4733 §2.5: key '#' held 100 ms; the end packet three times.
        let steps = [
            (true, 0x0A, 160u16),
            (false, 0x0A, 320),
            (false, 0x0A, 480),
            (false, 0x8A, 800),
            (false, 0x8A, 800),
            (false, 0x8A, 800),
        ];
        for (marker, flags, duration) in steps {
            let [high, low] = duration.to_be_bytes();
            caller
                .send_packet(caller_port, 101, marker, &[11, flags, high, low])
                .await;
        }
        let mut events_seen = Vec::new();
        while events_seen.len() < 6 {
            let packet = agent.recv().await;
            if packet.payload_type == 96 {
                events_seen.push(packet);
            }
        }
        assert!(
            events_seen
                .iter()
                .all(|p| p.timestamp == events_seen[0].timestamp),
            "one timestamp per event"
        );
        assert!(events_seen[0].marker);
        assert_eq!(events_seen[5].payload, [11, 0x8A, 0x03, 0x20]);
        let event = timeout(DEADLINE, events.recv()).await.unwrap().unwrap();
        assert_eq!(
            event,
            MediaEvent::Dtmf {
                leg: Leg::Caller,
                digit: '#',
                duration: Duration::from_millis(100)
            }
        );
        assert!(
            events.try_recv().is_err(),
            "the repeated end packets are not reported again"
        );
    }

    #[tokio::test]
    async fn rtp_goes_to_where_the_caller_really_sends_from() {
        let sdp_address = Phone::new().await;
        let mut behind_nat = Phone::new().await;
        let (session, _events, _counters) = start(&sdp_address, Codec::Pcmu, None, None);
        sdp_address.recv().await;
        let frame = &tone_frames(Codec::Pcmu, 1000.0, 1)[0];
        behind_nat
            .send_audio(session.caller_local_addr(), 0, frame)
            .await;
        let packet = behind_nat.recv().await;
        assert_eq!(packet.from, session.caller_local_addr());
        assert_eq!(packet.payload_type, 0);
    }

    #[tokio::test]
    async fn a_silent_leg_times_out_but_not_while_on_hold() {
        let caller = Phone::new().await;
        let agent = Phone::new().await;
        let holding = RemoteMedia {
            direction: Direction::SendOnly,
            ..caller.remote(Codec::Pcmu, None)
        };
        let counters = Arc::new(MediaCounters::default());
        let config = SessionConfig {
            rtp_timeout: Some(Duration::from_millis(200)),
            comfort_level_dbov: -50.0,
        };
        let (session, mut events) = MediaSession::start(
            RtpSocket::bind(localhost()).unwrap(),
            holding,
            config,
            counters,
        );
        // The agent leg joins later than the caller; only a holding caller keeps the
        // caller's timeout (due first) from being reported first.
        session.bridge(
            RtpSocket::bind(localhost()).unwrap(),
            agent.remote(Codec::Pcmu, None),
        );
        let event = timeout(DEADLINE, events.recv()).await.unwrap().unwrap();
        assert_eq!(event, MediaEvent::RtpTimeout { leg: Leg::Agent });
        // Unhold: the caller is expected to send again, and does not.
        session.update_remote(Leg::Caller, caller.remote(Codec::Pcmu, None));
        let event = timeout(DEADLINE, events.recv()).await.unwrap().unwrap();
        assert_eq!(event, MediaEvent::RtpTimeout { leg: Leg::Caller });
    }

    #[tokio::test]
    async fn malformed_datagrams_are_counted_and_the_relay_goes_on() {
        let mut caller = Phone::new().await;
        let agent = Phone::new().await;
        let (session, _events, counters) = start(&caller, Codec::Pcmu, None, None);
        let caller_port = session.caller_local_addr();
        session.bridge(
            RtpSocket::bind(localhost()).unwrap(),
            agent.remote(Codec::Pcmu, None),
        );
        let mut version_1 = tone_frames(Codec::Pcmu, 1000.0, 1)[0].clone();
        version_1.splice(0..0, [0x40, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
        for garbage in [&b"\x80\x00"[..], b"GET / HTTP/1.1\r\n\r\n", &version_1] {
            caller.send_raw(caller_port, garbage).await;
        }
        let received = pump(
            &mut caller,
            caller_port,
            Codec::Pcmu,
            1000.0,
            &agent,
            Codec::Pcmu,
            10,
        )
        .await;
        let heard: Vec<i16> = received
            .iter()
            .flat_map(|p| p.linear(Codec::Pcmu))
            .collect();
        assert!(goertzel_ratio(&heard, 1000.0, 1400.0) > 100.0);
        assert_eq!(counters.packets_dropped(DropReason::Malformed), 3);
    }

    #[tokio::test]
    async fn an_agent_reinvite_moves_the_stream_without_breaking_the_bridge() {
        let mut caller = Phone::new().await;
        let first = Phone::new().await;
        let second = Phone::new().await;
        let (session, _events, _counters) = start(&caller, Codec::Pcmu, None, None);
        let caller_port = session.caller_local_addr();
        session.bridge(
            RtpSocket::bind(localhost()).unwrap(),
            first.remote(Codec::Pcmu, None),
        );
        let before = pump(
            &mut caller,
            caller_port,
            Codec::Pcmu,
            1000.0,
            &first,
            Codec::Pcmu,
            5,
        )
        .await;
        session.update_remote(Leg::Agent, second.remote(Codec::Pcma, None));
        let after = pump(
            &mut caller,
            caller_port,
            Codec::Pcmu,
            1000.0,
            &second,
            Codec::Pcma,
            5,
        )
        .await;
        let (last, next) = (before.last().unwrap(), &after[0]);
        assert_eq!(
            next.ssrc, last.ssrc,
            "the agent's stream is the same stream"
        );
        assert!((next.sequence.wrapping_sub(last.sequence) as i16) > 0);
        assert!(
            after.iter().all(|p| p.payload_type == 8),
            "now transcoded to the new law"
        );
        let heard: Vec<i16> = after.iter().flat_map(|p| p.linear(Codec::Pcma)).collect();
        assert!(goertzel_ratio(&heard, 1000.0, 1400.0) > 100.0);
    }

    #[tokio::test]
    async fn stopping_or_dropping_ends_the_task_and_closes_the_sockets() {
        let caller = Phone::new().await;
        let (session, mut events, counters) = start(&caller, Codec::Pcmu, None, None);
        let port = session.caller_local_addr();
        session.stop();
        assert_eq!(
            timeout(DEADLINE, events.recv()).await.unwrap(),
            None,
            "the event channel closes"
        );
        assert_eq!(counters.sessions_active(), 0);
        std::net::UdpSocket::bind(port).expect("the caller's port is free again");

        let (session, mut events, counters) = start(&caller, Codec::Pcmu, None, None);
        assert_eq!(counters.sessions_active(), 1);
        drop(session);
        assert_eq!(timeout(DEADLINE, events.recv()).await.unwrap(), None);
        assert_eq!(counters.sessions_active(), 0);
    }

    #[tokio::test]
    async fn the_caller_hears_a_played_clip_in_its_law_then_playlist_done() {
        let caller = Phone::new().await;
        let (session, mut events, _counters) = start(&caller, Codec::Pcma, None, None);
        let mut received = vec![caller.recv().await];
        let clip = Clip::from_samples(&tone(1000.0, -10.0, 160 * 25), "1 kHz");
        session.play(Playlist::new(vec![clip.clone()], None), 42);

        // Every packet up to the event, then the rest of what was sent before it: the clip
        // ends with the first quiet packet after its loud ones.
        let listening = async {
            let event = loop {
                tokio::select! {
                    packet = caller.recv() => received.push(packet),
                    event = events.recv() => break event,
                }
            };
            while !received
                .iter()
                .skip_while(|p| !p.is_loud(Codec::Pcma))
                .any(|p| !p.is_loud(Codec::Pcma))
            {
                received.push(caller.recv().await);
            }
            event
        };
        let event = timeout(DEADLINE, listening)
            .await
            .expect("the playlist's end before the deadline");
        assert_eq!(event, Some(MediaEvent::PlaylistDone { id: 42 }));

        let loud: Vec<&Packet> = received.iter().filter(|p| p.is_loud(Codec::Pcma)).collect();
        assert_eq!(loud.len(), clip.frames(), "every frame of the clip, once");
        for (n, packet) in loud.iter().enumerate() {
            assert_eq!(packet.payload_type, 8);
            assert_eq!(packet.payload, clip.frame(Codec::Pcma, n).unwrap());
            assert_eq!(packet.marker, n == 0, "marked as new audio, once");
        }
        let heard: Vec<i16> = loud.iter().flat_map(|p| p.linear(Codec::Pcma)).collect();
        let ratio = goertzel_ratio(&heard, 1000.0, 1400.0);
        assert!(
            ratio > 100.0,
            "the caller hears the 1 kHz tone (ratio {ratio})"
        );
        for pair in received.windows(2) {
            assert_eq!(pair[1].ssrc, pair[0].ssrc);
            assert_eq!(pair[1].sequence, pair[0].sequence.wrapping_add(1));
            // +160 per packet; a loaded machine may skip frames in time (never in the clip).
            let advance = pair[1].timestamp.wrapping_sub(pair[0].timestamp);
            assert!(
                advance >= 160 && advance % 160 == 0,
                "timestamp advance {advance}"
            );
        }
    }

    #[tokio::test]
    async fn send_dtmf_reaches_the_trunk_between_the_audio_packets() {
        let caller = Phone::new().await;
        let (session, _events, counters) = start(&caller, Codec::Pcmu, Some(101), None);
        let mut received = vec![caller.recv().await];
        session.send_dtmf(Leg::Caller, '#');
        let listening = async {
            // Until the last end packet and one audio packet after it.
            while received.iter().filter(|p| p.payload_type == 101).count() < 7
                || received.last().is_some_and(|p| p.payload_type == 101)
            {
                received.push(caller.recv().await);
            }
        };
        timeout(DEADLINE, listening)
            .await
            .expect("the key press before the deadline");
        let events: Vec<&Packet> = received.iter().filter(|p| p.payload_type == 101).collect();
        let payloads: Vec<&[u8]> = events.iter().map(|p| &p.payload[..]).collect();
        assert_eq!(
            payloads,
            [
                &[11, 0x0A, 0x00, 0xA0][..],
                &[11, 0x0A, 0x01, 0x40],
                &[11, 0x0A, 0x01, 0xE0],
                &[11, 0x0A, 0x02, 0x80],
                &[11, 0x8A, 0x03, 0x20],
                &[11, 0x8A, 0x03, 0x20],
                &[11, 0x8A, 0x03, 0x20],
            ],
            "RFC 4733 §2.3: '#' (11), -10 dBm0, growing duration, three end packets"
        );
        assert!(events.iter().all(|p| p.timestamp == events[0].timestamp));
        assert!(events[0].marker && events[1..].iter().all(|p| !p.marker));
        for pair in received.windows(2) {
            assert_eq!(pair[1].ssrc, pair[0].ssrc, "one stream");
            assert_eq!(pair[1].sequence, pair[0].sequence.wrapping_add(1));
        }
        assert_eq!(counters.dtmf_sent(), 1);
    }

    /// The browser stand-in (str0m, full ICE, Chrome's codecs) on a real loopback socket.
    struct BrowserPeer {
        browser: crate::webrtc::test_browser::Browser,
        socket: UdpSocket,
    }

    impl BrowserPeer {
        async fn new() -> Self {
            let socket = UdpSocket::bind(localhost()).await.unwrap();
            let addr = socket.local_addr().unwrap();
            Self {
                browser: crate::webrtc::test_browser::Browser::new(now(), addr),
                socket,
            }
        }

        /// Runs the browser for `wait`: sends what it has to send, feeds it what arrives and
        /// fires its timers.
        async fn run_for(&mut self, wait: Duration) {
            let end = tokio::time::Instant::now() + wait;
            let mut buffer = [0; 2048];
            loop {
                while let Some((to, bytes)) = self.browser.outbox.pop_front() {
                    self.socket.send_to(&bytes, to).await.unwrap();
                }
                let wake = tokio::time::Instant::from_std(self.browser.poll_timeout()).min(end);
                tokio::select! {
                    received = self.socket.recv_from(&mut buffer) => {
                        let (len, from) = received.unwrap();
                        self.browser.receive(now(), from, &buffer[..len]);
                    }
                    () = tokio::time::sleep_until(wake) => {
                        if tokio::time::Instant::now() >= end {
                            return;
                        }
                        self.browser.handle_timeout(now());
                    }
                }
            }
        }

        /// Runs the browser until `done`, failing the test at the deadline.
        async fn run_until(&mut self, what: &str, done: impl Fn(&Self) -> bool) {
            let deadline = tokio::time::Instant::now() + DEADLINE;
            while !done(self) {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{what} before the deadline"
                );
                self.run_for(Duration::from_millis(10)).await;
            }
        }

        /// The loud audio the browser received on payload type `payload_type`, decoded.
        fn heard(&self, payload_type: u8, codec: Codec) -> Vec<i16> {
            let mut linear = Vec::new();
            for packet in &self.browser.received {
                if *packet.header.payload_type != payload_type {
                    continue;
                }
                let mut frame = Vec::new();
                g711::decode(codec, &packet.payload, &mut frame);
                if rms(&frame) > 1000.0 {
                    linear.extend(frame);
                }
            }
            linear
        }
    }

    /// A caller's tone reaches the browser and back while `browser` runs; returns what the
    /// browser heard loud after `from` packets it already had.
    async fn caller_to_browser(
        caller: &mut Phone,
        to: SocketAddr,
        peer: &mut BrowserPeer,
    ) -> usize {
        let before = peer.heard(0, Codec::Pcmu).len();
        let frames = tone_frames(Codec::Pcmu, 1000.0, 25);
        for frame in &frames {
            caller.send_audio(to, 0, frame).await;
            peer.run_for(Duration::from_millis(20)).await;
        }
        peer.run_for(Duration::from_millis(100)).await;
        peer.heard(0, Codec::Pcmu).len() - before
    }

    #[tokio::test]
    async fn a_browser_leg_is_bridged_over_dtls_srtp_with_its_keys_and_a_hold_from_the_page() {
        let mut caller = Phone::new().await;
        let (session, mut events, counters) = start(&caller, Codec::Pcmu, Some(101), None);
        let caller_port = session.caller_local_addr();
        let endpoint = crate::WebRtcEndpoint::bind(localhost(), Arc::clone(&counters)).unwrap();

        // Amico offers (RFC 8829 §5.2.1): DTLS-SRTP, ICE-lite, rtcp-mux, BUNDLE, G.711 only.
        let mut leg = endpoint.create_leg(&[Codec::Pcmu, Codec::Pcma]).unwrap();
        let offer = leg.create_offer().unwrap();
        let port = endpoint.local_addr().port();
        for wanted in [
            &format!("m=audio {port} UDP/TLS/RTP/SAVPF 0 8 101") as &str,
            "c=IN IP4 127.0.0.1",
            "a=ice-lite",
            "a=fingerprint:sha-256 ",
            "a=setup:actpass",
            "a=rtcp-mux",
            "a=group:BUNDLE ",
            "\r\no=- ",
            "a=rtpmap:101 telephone-event/8000",
            &format!("127.0.0.1 {port} typ host"),
        ] {
            assert!(offer.contains(wanted), "{wanted:?} in the offer:\n{offer}");
        }
        assert!(
            !offer.contains("opus") && !offer.contains("str0m"),
            "{offer}"
        );

        let mut peer = BrowserPeer::new().await;
        let answer = peer.browser.answer(now(), &offer);
        let format = leg.accept_answer(&answer).unwrap();
        assert_eq!(
            (format.codec, format.telephone_event),
            (Codec::Pcmu, Some(101))
        );
        session.bridge_agent(AgentLeg::WebRtc(leg));
        peer.run_until("ICE and DTLS", |peer| peer.browser.connected)
            .await;

        // The caller's tone reaches the browser, decrypted, as PCMU.
        caller_to_browser(&mut caller, caller_port, &mut peer).await;
        peer.run_until("the caller's tone in the browser", |peer| {
            peer.heard(0, Codec::Pcmu).len() >= 10 * 160
        })
        .await;
        let heard = peer.heard(0, Codec::Pcmu);
        assert!(goertzel_ratio(&heard, 1000.0, 1600.0) > 100.0);

        // The browser's tone reaches the caller as plain RTP.
        let frames = tone_frames(Codec::Pcmu, 1600.0, 50);
        let mut loud = Vec::new();
        let mut timestamp = 90_000u32;
        for frame in frames.iter().cycle().take(200) {
            peer.browser.write(now(), 0, timestamp, false, frame);
            timestamp = timestamp.wrapping_add(160);
            peer.run_for(Duration::from_millis(20)).await;
            while let Some(packet) = caller.try_recv(Duration::ZERO).await {
                if packet.payload_type == 0 && packet.is_loud(Codec::Pcmu) {
                    assert_eq!(packet.from, caller_port);
                    loud.extend(packet.linear(Codec::Pcmu));
                }
            }
            if loud.len() >= 10 * 160 {
                break;
            }
        }
        assert!(loud.len() >= 10 * 160, "the browser's tone at the caller");
        assert!(goertzel_ratio(&loud, 1600.0, 1000.0) > 100.0);

        // A key pressed on the page: RFC 4733, on the type our offer gave telephone-event.
        for (n, duration) in [160u16, 320, 480, 480].into_iter().enumerate() {
            let end = if n >= 2 { 0x80 } else { 0 };
            let [high, low] = duration.to_be_bytes();
            let payload = [5, end | 10, high, low];
            peer.browser.write(now(), 101, timestamp, n == 0, &payload);
            peer.run_for(Duration::from_millis(20)).await;
        }
        let key = timeout(DEADLINE, async {
            loop {
                match events.recv().await.expect("the session runs") {
                    MediaEvent::Dtmf { leg, digit, .. } => return (leg, digit),
                    _ => continue,
                }
            }
        })
        .await
        .expect("the key before the deadline");
        assert_eq!(key, (Leg::Agent, '5'));

        // Hold from the page: a re-offer, sendonly. The answer is recvonly and carries only
        // what we take; the bridge stays, and the caller's audio stops going to the page.
        let (hold, pending) = peer
            .browser
            .reoffer(now(), str0m::media::Direction::SendOnly);
        let answer = session.answer_agent_offer(&hold).await.unwrap();
        assert!(answer.contains("a=recvonly"), "{answer}");
        assert!(
            !answer.contains("opus") && !answer.contains("G722"),
            "{answer}"
        );
        peer.browser.accept_answer(now(), pending, &answer);
        peer.run_for(Duration::from_millis(100)).await;
        assert_eq!(
            caller_to_browser(&mut caller, caller_port, &mut peer).await,
            0
        );

        // Resumed: the caller is heard again on the same bridge.
        let (resume, pending) = peer
            .browser
            .reoffer(now(), str0m::media::Direction::SendRecv);
        let answer = session.answer_agent_offer(&resume).await.unwrap();
        assert!(answer.contains("a=sendrecv"), "{answer}");
        peer.browser.accept_answer(now(), pending, &answer);
        let mut resumed = 0;
        for _ in 0..10 {
            resumed += caller_to_browser(&mut caller, caller_port, &mut peer).await;
            if resumed > 0 {
                break;
            }
        }
        assert!(resumed > 0, "the caller heard in the page after resuming");

        // Plain RTP from a stranger to the WebRTC socket goes nowhere.
        let stranger = Phone::new().await;
        let dropped = counters.packets_dropped(DropReason::ForeignSource);
        stranger
            .send_raw(
                endpoint.local_addr(),
                &[0x80, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9],
            )
            .await;
        timeout(DEADLINE, async {
            while counters.packets_dropped(DropReason::ForeignSource) == dropped {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the stranger's packet counted");

        // An offer for a session whose agent is a SIP phone is refused.
        session.hold();
        assert!(matches!(
            session.answer_agent_offer(&resume).await,
            Err(WebRtcError::NoWebRtcLeg)
        ));
        assert!(counters.packets_relayed() > 0);
    }
}
