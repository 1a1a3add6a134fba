//! The media of an agent leg, whatever the agent's softphone is: a SIP phone's plain RTP on
//! a port of the pool, or a browser's WebRTC (DTLS-SRTP over ICE) on the WebRTC endpoint.
//! The call flow offers, takes the answer, bridges and answers re-offers through
//! [`AgentMedia`] alone; which kind it is decides only what goes in the SDP and how the
//! media session carries the packets.

use std::net::SocketAddr;

use amico_media::sdp::{self, SdpSession};
use amico_media::{
    AgentLeg, Codec, Leg as MediaLeg, MediaSession, PortPool, RemoteMedia, RtpSocket,
    WebRtcEndpoint, WebRtcLeg,
};
use amico_sip::Transport;

/// What we offer agents, in order of preference after the caller's own law.
pub(crate) const CODECS: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

/// The telephone-event payload type we offer (RFC 4733 §7.1.1).
const TELEPHONE_EVENT: u8 = 101;

/// An agent leg's media from the offer until the bridge, then what a re-offer needs.
#[derive(Debug)]
pub(crate) enum AgentMedia {
    /// A SIP phone: our socket until bridged, its answer, our SDP session for re-answers.
    Rtp {
        socket: Option<RtpSocket>,
        sdp: SdpSession,
        local: SocketAddr,
        remote: Option<RemoteMedia>,
    },
    /// A browser: the str0m leg until bridged (the media session holds it after).
    WebRtc {
        leg: Option<WebRtcLeg>,
        answered: bool,
    },
}

impl AgentMedia {
    /// Media for an agent reached over `transport`, and the SDP offer for its INVITE, with
    /// `first` first (the caller's law: both legs then agree and nothing is transcoded). A
    /// browser (registered over a WebSocket) gets a WebRTC offer, as RFC 8827 §6.5 requires of
    /// it; anything else plain RTP (RFC 3264). The error says why the leg cannot be offered.
    pub(crate) fn offer(
        ports: &PortPool,
        webrtc: &WebRtcEndpoint,
        transport: Transport,
        first: Codec,
    ) -> Result<(AgentMedia, String), String> {
        let mut codecs = vec![first];
        codecs.extend(CODECS.iter().copied().filter(|c| *c != first));
        if transport == Transport::Ws {
            let mut leg = webrtc
                .create_leg(&codecs)
                .map_err(|error| error.to_string())?;
            let offer = leg.create_offer().map_err(|error| error.to_string())?;
            let media = AgentMedia::WebRtc {
                leg: Some(leg),
                answered: false,
            };
            return Ok((media, offer));
        }
        let socket = ports.allocate().map_err(|error| error.to_string())?;
        let local = socket.local_addr();
        let session = SdpSession::new(rand_session_id());
        let offer = sdp::offer(local, &codecs, Some(TELEPHONE_EVENT), &session);
        let media = AgentMedia::Rtp {
            socket: Some(socket),
            sdp: session,
            local,
            remote: None,
        };
        Ok((media, offer))
    }

    /// Takes the agent's SDP answer from its 200 OK; `false` when it is unusable (no G.711,
    /// unreadable, or for a browser no DTLS fingerprint...), and the offer has failed.
    pub(crate) fn accept_answer(&mut self, body: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(body) else {
            return false;
        };
        match self {
            AgentMedia::Rtp { remote, .. } => {
                let answer = sdp::parse(text)
                    .ok()
                    .and_then(|answer| sdp::accept_answer(&answer, &CODECS).ok());
                *remote = answer;
                remote.is_some()
            }
            AgentMedia::WebRtc { leg, answered } => {
                let Some(leg) = leg else { return false };
                match leg.accept_answer(text) {
                    Ok(_) => *answered = true,
                    Err(error) => tracing::info!(%error, "the browser's answer is unusable"),
                }
                *answered
            }
        }
    }

    /// Bridges the agent's media to the caller's, once an answer was taken; later calls do
    /// nothing.
    pub(crate) fn bridge(&mut self, media: &MediaSession) {
        match self {
            AgentMedia::Rtp { socket, remote, .. } => {
                if let (Some(remote), Some(socket)) = (*remote, socket.take()) {
                    media.bridge_agent(AgentLeg::Rtp(socket, remote));
                }
            }
            AgentMedia::WebRtc { leg, answered } => {
                if *answered && let Some(leg) = leg.take() {
                    media.bridge_agent(AgentLeg::WebRtc(leg));
                }
            }
        }
    }

    /// Our answer to the agent's in-dialog re-offer (hold, resume, a new address or codec;
    /// RFC 3264 §8): `Err` with the status to refuse it with (488, RFC 3261 §21.4.26).
    /// `bridged` is the session to update when the agent's media is bridged to it.
    pub(crate) async fn reoffer(
        &mut self,
        body: &[u8],
        bridged: Option<&MediaSession>,
    ) -> Result<String, u16> {
        let text = std::str::from_utf8(body).map_err(|_| 488u16)?;
        match self {
            AgentMedia::Rtp {
                sdp: session,
                local,
                remote,
                ..
            } => {
                let offer = sdp::parse(text).map_err(|_| 488u16)?;
                session.bump();
                let (answer, new_remote) =
                    sdp::answer(&offer, *local, &CODECS, session).map_err(|_| 488u16)?;
                *remote = Some(new_remote);
                if let Some(media) = bridged {
                    media.update_remote(MediaLeg::Agent, new_remote);
                }
                Ok(answer)
            }
            // Not bridged yet: the leg is still ours.
            AgentMedia::WebRtc { leg: Some(leg), .. } => leg.accept_offer(text).map_err(|error| {
                tracing::info!(%error, "the browser's re-offer is refused");
                488
            }),
            AgentMedia::WebRtc { leg: None, .. } => {
                let Some(media) = bridged else {
                    return Err(488);
                };
                media.answer_agent_offer(text).await.map_err(|error| {
                    tracing::info!(%error, "the browser's re-offer is refused");
                    488
                })
            }
        }
    }
}

/// A new SDP session id (RFC 8866 §5.2: a number unique enough for the origin).
pub(crate) fn rand_session_id() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now()) >> 1
}
