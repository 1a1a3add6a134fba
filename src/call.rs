//! The call and what the caller hears: one task per trunk call ([`flow`]) ties the trunk
//! leg, the ACD and an agent leg, whose media ([`agent_media`]) is a SIP phone's RTP or a
//! browser's WebRTC; the caller's experience ([`announce`]) schedules the
//! welcome, position and wait announcements, music and the survey from the prompt library
//! ([`prompts`], assembled into sentences by [`phrases`]); [`keypad`] reads a callback
//! number.
//!
//! It depends on the ACD's runner and on [`crate::records`] (every leg and call is
//! recorded); nothing here knows about HTTP.

pub(crate) mod agent_media;
pub(crate) mod announce;
pub(crate) mod flow;
pub(crate) mod keypad;
pub(crate) mod phrases;
pub(crate) mod prompts;
