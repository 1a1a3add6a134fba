//! Amico's media edge: the RTP of each call, anchored on Amico.
//!
//! # The model
//! Amico is a B2BUA, so each call has up to two **legs**, each with its own RTP socket on
//! Amico (a [`RtpSocket`] from a [`PortPool`]) and its own negotiated [`AudioFormat`]:
//!
//! * the **caller** leg ([`Leg::Caller`]), usually a PBX trunk, present for the whole call;
//! * the **agent** leg ([`Leg::Agent`]), the agent's phone, present only while bridged.
//!
//! A [`MediaSession`] owns a call's legs and runs as one Tokio task:
//!
//! | state | caller hears | agent hears |
//! |---|---|---|
//! | waiting: after `start` or `hold` | comfort noise, or the [`Playlist`] given to `play`, one packet per 20 ms | nothing |
//! | bridged: after `bridge` | the agent, relayed | the caller, relayed |
//!
//! Each leg's outgoing RTP is one stream (one SSRC) whose sequence numbers and timestamps
//! continue across every switch of what feeds it, with the marker bit on the first packet
//! after a switch, so phones' jitter buffers never see a jump back. Relayed audio is
//! transcoded PCMU↔PCMA by table when the legs differ; RFC 4733 telephone-events pass with
//! their payload type rewritten and are also reported as [`MediaEvent::Dtmf`]. Each leg sends
//! to the address in its SDP until valid RTP arrives from elsewhere, then to that source
//! (symmetric RTP, for phones behind NAT). A leg that stops sending while it should raises
//! [`MediaEvent::RtpTimeout`]. Malformed datagrams are counted in [`MediaCounters`] and
//! dropped.
//!
//! # Prompts, music on hold and DTMF
//! Prompts and music are [`Clip`]s, loaded once from 8 kHz WAV files (at startup, not per
//! call) and held pre-encoded in both laws, so that playing one to any number of callers only
//! copies 160-byte frames into packets. [`MediaSession::play`] gives the caller a
//! [`Playlist`]: announcements once each, then a background looped (music on hold). It takes
//! over at the next 20 ms frame and continues the caller's stream without a gap; once the
//! announcements are sent the session reports [`MediaEvent::PlaylistDone`]. A bridge stops
//! playback at once and discards the playlist; after a `hold` the caller hears comfort noise
//! until the next `play`. Comfort noise itself comes from a [`source::AudioSource`] encoded
//! frame by frame.
//!
//! [`MediaSession::send_dtmf`] sends a key press to either leg as RFC 4733 telephone-events,
//! interleaved with that leg's audio in one sequence-number space.
//!
//! # SDP
//! [`sdp`] turns offers and answers into [`RemoteMedia`] and writes Amico's side.
//!
//! # Use by the call flow
//! ```no_run
//! # async fn example(offer_body: &str) -> Result<(), amico_media::MediaError> {
//! use amico_media::{sdp, Codec, MediaCounters, MediaEvent, MediaSession, PortPool, SessionConfig};
//! use std::sync::Arc;
//!
//! let pool = PortPool::new("203.0.113.7".parse().unwrap(), 30000, 39999)?;
//! let counters = Arc::new(MediaCounters::default());
//! let codecs = [Codec::Pcmu, Codec::Pcma];
//!
//! // At startup: load the prompts once (a bad file stops startup with a message naming it).
//! let welcome = amico_media::Clip::from_wav("prompts/it/welcome.wav".as_ref())?;
//! let music = amico_media::Clip::from_wav("prompts/music.wav".as_ref())?;
//!
//! // INVITE from the trunk: answer its offer and start the comfort stream.
//! let caller_socket = pool.allocate()?;
//! let mut caller_sdp = sdp::SdpSession::new(1);
//! let offer = sdp::parse(offer_body)?;
//! let (answer_body, caller_remote) =
//!     sdp::answer(&offer, caller_socket.local_addr(), &codecs, &caller_sdp)?;
//! let (session, mut events) =
//!     MediaSession::start(caller_socket, caller_remote, SessionConfig::default(), counters);
//! // Welcome, then music until an agent answers.
//! session.play(amico_media::Playlist::new(vec![welcome], Some(music)), 1);
//!
//! // An agent is free: offer the caller's own law so that nothing is transcoded.
//! let agent_socket = pool.allocate()?;
//! let agent_sdp = sdp::SdpSession::new(2);
//! let agent_offer = sdp::offer(
//!     agent_socket.local_addr(),
//!     &[caller_remote.format.codec],
//!     Some(sdp::DEFAULT_TELEPHONE_EVENT_PT),
//!     &agent_sdp,
//! );
//! # let agent_answer_body = agent_offer.clone();
//! // ... send agent_offer in an INVITE, get the 200 OK's body ...
//! let agent_remote =
//!     sdp::accept_answer(&sdp::parse(&agent_answer_body)?, &[caller_remote.format.codec])?;
//! session.bridge(agent_socket, agent_remote);
//!
//! while let Some(event) = events.recv().await {
//!     match event {
//!         MediaEvent::Dtmf { digit, .. } => println!("caller pressed {digit}"),
//!         MediaEvent::PlaylistDone { id } => println!("announcement {id} played"),
//!         MediaEvent::RtpTimeout { .. } => break, // hang up
//!         _ => {} // events added later
//!     }
//! }
//! # let _ = (answer_body, &mut caller_sdp);
//! # Ok(())
//! # }
//! ```

mod clip;
mod codec;
mod counters;
mod dtmf;
mod error;
mod event;
mod format;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod g711;
mod playlist;
mod port_pool;
pub mod sdp;
mod session;
mod session_state;
pub mod source;
mod stream;
#[cfg(test)]
mod test_support;
pub mod webrtc;

pub use clip::Clip;
pub use codec::Codec;
pub use counters::{DropReason, MediaCounters};
pub use error::{MediaError, WavFormat, WavProblem};
pub use event::{Leg, MediaEvent};
pub use format::{AudioFormat, Direction, RemoteMedia};
pub use playlist::Playlist;
pub use port_pool::{PortPool, RtpSocket};
pub use session::{AgentLeg, MediaSession, SessionConfig};
pub use webrtc::{WebRtcEndpoint, WebRtcError, WebRtcLeg};
