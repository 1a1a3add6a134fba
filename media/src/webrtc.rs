//! Browser agents: the agent leg as WebRTC (str0m), relayed like any other agent leg.
//!
//! # The model
//! A browser agent's audio arrives as DTLS-SRTP over ICE instead of plain RTP. Amico is an
//! ICE-lite endpoint (RFC 8445 §2.5) on one UDP socket, a [`WebRtcEndpoint`] on the
//! configured media address, shared by every browser leg: each leg is a str0m `Rtc` with
//! one host candidate on that socket, one BUNDLEd (RFC 8843) audio section with rtcp-mux
//! (RFC 5761), and PCMU and/or PCMA plus telephone-event (RFC 4733) only, so the bridge to a
//! trunk's plain G.711 never transcodes when the caller's law is offered first.
//!
//! str0m runs in RTP mode: the leg hands the media session whole RTP packets (payload,
//! timestamp, marker, payload type) and takes whole packets from it. To the session's relay,
//! prompt playback, DTMF detection and RTP timeout a WebRTC agent leg is therefore the same
//! as a plain one; only where packets come from and go to differs.
//!
//! # Use by the call flow
//! ```no_run
//! # async fn example(
//! #     session: amico_media::MediaSession,
//! #     endpoint: amico_media::WebRtcEndpoint,
//! #     answer_body: &str,
//! #     reinvite_body: &str,
//! # ) -> Result<(), amico_media::WebRtcError> {
//! use amico_media::{AgentLeg, Codec};
//!
//! // At startup, once: the socket on [rtp] address (bound inside the Tokio runtime).
//! // let endpoint = WebRtcEndpoint::bind("203.0.113.7:40000".parse().unwrap(), counters)?;
//!
//! // An agent in a browser is free: offer the caller's law first.
//! let mut leg = endpoint.create_leg(&[Codec::Pcmu, Codec::Pcma])?;
//! let offer = leg.create_offer()?; // the INVITE's body
//! // ... 200 OK from the browser ...
//! leg.accept_answer(answer_body)?;
//! session.bridge_agent(AgentLeg::WebRtc(leg));
//!
//! // A re-INVITE from the page (hold, resume): the bridge stays.
//! let answer = session.answer_agent_offer(reinvite_body).await?; // the 200 OK's body
//! # let _ = (offer, answer);
//! # Ok(())
//! # }
//! ```

mod endpoint;
mod error;
mod rtc_leg;
mod sdp;
mod stun;
#[cfg(test)]
pub(crate) mod test_browser;

pub(crate) use endpoint::{Datagram, Link};
pub use endpoint::{WebRtcEndpoint, WebRtcLeg};
pub use error::WebRtcError;
pub(crate) use rtc_leg::{Received, RtcLeg};
