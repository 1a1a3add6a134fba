//! The call flow: one task per trunk call ties the trunk leg, the ACD and an agent leg.
//!
//! ```text
//! trunk INVITE ─► answer 200 (SDP) ─► welcome (whole) ─► CallArrived ─► ACD
//!          ACD ─► Ring ─► INVITE agent ─► 180 … 200 ─► OfferAnswered ─► ACD
//!          ACD ─► CallConnected ─► bridge RTP
//!     BYE either side ─► Hangup ─► ACD (abandon while waiting, completion once talking)
//! ```
//! The ACD decides; a leg only reports. An agent that answers after the ACD withdrew the
//! offer (ring timeout) gets a BYE, not the caller.
//!
//! A queue with a welcome plays it to every caller as soon as the call is answered, whole,
//! and only then does the caller join the ACD's queue (see [`CallTask::start`]). While the
//! caller waits it hears its queue's experience ([`crate::call::announce`]): its position and
//! estimated wait (from the ACD's estimate), the menu, periodic announcements, music
//! between. After the agent hangs up, a queue with a survey keeps the caller on the line
//! for a rating (1, 2 or 3) before saying goodbye.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use amico_core::{
    AgentId, CallId, Command, Event, Input, OfferFailure, Output, OverflowedTo, QueueId, Timestamp,
    Vote,
};
use amico_media::sdp::{self, SdpSession};
use amico_media::{
    Codec, Leg as MediaLeg, MediaCounters, MediaEvent, MediaSession, PortPool, RemoteMedia,
    RtpSocket, SessionConfig, WebRtcEndpoint,
};
use amico_sip::{ClientLeg, IncomingCall, LegEvent, SipEdge};
use dashmap::DashMap;
use serde_json::json;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::call::agent_media::{AgentMedia, CODECS, rand_session_id};
use crate::call::announce::{Due, Experience, Schedule};
use crate::call::keypad::{Entry, NumberEntry};
use crate::call::phrases::Language;
use crate::call::prompts::Prompts;
use crate::records::log::{Events, utc_now_us};
use crate::runner::AcdHandle;

/// Playlist ids, to tell which one finished.
const ANNOUNCEMENT: u64 = 1;
const SURVEY_QUESTION: u64 = 2;
const FAREWELL: u64 = 3;
const CALLBACK_CONFIRM: u64 = 4;
const CALLBACK_INTRO: u64 = 5;
const CALLBACK_NUMBER: u64 = 6;
const WELCOME: u64 = 7;

/// How long a called-back caller's phone may ring.
const CALLBACK_RING: Duration = Duration::from_secs(30);

/// A goodbye that never finishes playing (a caller on hold) still ends the call.
const FAREWELL_LIMIT: Duration = Duration::from_secs(15);
/// How long the caller may pause between keys of its callback number.
const KEY_TIMEOUT: Duration = Duration::from_secs(10);
/// A welcome that does not finish within its own length and this much (the caller holds
/// the call, which pauses playback, RFC 3264 §8.4) no longer keeps the caller out of the
/// queue.
const WELCOME_SLACK: Duration = Duration::from_secs(10);

/// What the ACD tells one call.
#[derive(Debug)]
enum CallCommand {
    Ring(AgentId),
    StopRinging(AgentId),
    Connected(AgentId),
    Disconnect,
    /// The ACD's answer to a wait estimate: time to announce.
    Estimate {
        position: u32,
        estimated_wait: Option<Duration>,
    },
    /// The caller overflowed into another queue.
    MovedTo(QueueId),
    /// A callback's agent is on the line: call the caller back.
    DialCaller(AgentId),
    /// A supervisor ends the call.
    HangUp,
}

/// A call in progress, as the call flow knows it.
pub(crate) struct LiveCall {
    commands: mpsc::UnboundedSender<CallCommand>,
    info: CallInfo,
}

/// The calls in progress by id, each with its task's channel: shared by the call flow and
/// the ACD's writer ([`Dispatch`]).
#[derive(Clone, Default)]
pub(crate) struct LiveCalls(Arc<DashMap<CallId, LiveCall>>);

impl std::ops::Deref for LiveCalls {
    type Target = DashMap<CallId, LiveCall>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// What becomes of each of the ACD's outputs, done by the ACD's writer as it makes them
/// (`runner::start`): recorded in the queue log, then handed to the call it concerns.
///
/// The writer hands a call its command itself, with no task in between: a task between
/// them was one more hand-over on the way from a caller's INVITE to the agent's, and at
/// an idle moment one more thread woken (BENCHMARKS.md, "Where the route time goes").
/// Recording first keeps the log in the order the ACD decided, ahead of what the call
/// task records after its command.
pub(crate) struct Dispatch {
    live: LiveCalls,
    events: Events,
}

impl Dispatch {
    pub(crate) fn new(live: LiveCalls, events: Events) -> Dispatch {
        Dispatch { live, events }
    }

    /// Records `output`, at the ACD's time `at`, and hands the call it concerns its
    /// command.
    pub(crate) fn output(&self, at: Timestamp, output: Output) {
        self.events.acd_output(at, &output);
        let (call, command) = match output {
            Output::Command(Command::Ring { call, agent, .. }) => (call, CallCommand::Ring(agent)),
            Output::Command(Command::StopRinging { call, agent }) => {
                (call, CallCommand::StopRinging(agent))
            }
            Output::Command(Command::Disconnect { call, reason }) => {
                info!(%call, ?reason, "queue limit: the call is ended");
                (call, CallCommand::Disconnect)
            }
            Output::Command(Command::RouteOut { call, destination }) => {
                // The configuration refuses external overflow targets for now.
                warn!(%call, %destination, "no route out: the call is ended");
                (call, CallCommand::Disconnect)
            }
            Output::Event(Event::CallConnected {
                call, agent, wait, ..
            }) => {
                info!(%call, %agent, wait_secs = wait.as_secs_f64(), "call connected");
                (call, CallCommand::Connected(agent))
            }
            Output::Event(Event::WaitEstimated {
                call,
                position,
                estimated_wait,
                ..
            }) => (
                call,
                CallCommand::Estimate {
                    position,
                    estimated_wait,
                },
            ),
            Output::Event(Event::CallOverflowed {
                call,
                to: OverflowedTo::Queue(queue),
                ..
            }) => (call, CallCommand::MovedTo(queue)),
            Output::Event(Event::CallbackDialing { call, agent, .. }) => {
                (call, CallCommand::DialCaller(agent))
            }
            Output::Event(Event::CallbackUnanswered { call, .. }) => {
                info!(%call, "the callback never reached the caller");
                (call, CallCommand::Disconnect)
            }
            Output::Event(event) => {
                debug!(?event, "acd");
                return;
            }
        };
        if let Some(live) = self.live.get(&call) {
            live.commands.send(command).ok();
        }
    }
}

/// Who is on a live call, for the API.
#[derive(Clone, Debug)]
pub(crate) struct CallInfo {
    /// The ACD's id.
    pub(crate) call: CallId,
    /// The caller's From, without its tag.
    pub(crate) caller: String,
    /// The number dialled.
    pub(crate) did: String,
    /// The trunk it came over.
    pub(crate) trunk: String,
    /// When it arrived, UTC microseconds.
    pub(crate) arrived_us: i64,
    /// The last position announcement the caller heard, if any.
    pub(crate) told: Option<Told>,
}

/// What a position announcement told the caller.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub(crate) struct Told {
    /// Its place in line.
    pub(crate) position: u32,
    /// The estimated wait it was given, seconds (none when the estimate was not said).
    pub(crate) estimated_wait: Option<f64>,
    /// How many position announcements it heard in all.
    pub(crate) announcements: u32,
}

/// The From header without its `tag` parameter (RFC 3261 §19.3: the tag names the dialog,
/// not the caller).
fn without_tag(from: &str) -> String {
    let mut kept = Vec::new();
    for (i, part) in from.split(';').enumerate() {
        if i > 0 && part.trim().to_ascii_lowercase().starts_with("tag=") {
            continue;
        }
        kept.push(part);
    }
    kept.join(";")
}

/// What the configuration says about routing calls, replaced whole on a reload: calls
/// in progress keep what they started with, new ones take the new.
#[derive(Debug, Default)]
pub(crate) struct Routing {
    /// Queue ids by name.
    pub(crate) queues: HashMap<String, QueueId>,
    /// SIP username of each agent, by id.
    pub(crate) usernames: Vec<String>,
    /// Name of each agent, by id.
    pub(crate) agent_names: Vec<String>,
    /// Agent ids by SIP username.
    pub(crate) agents_by_username: HashMap<String, AgentId>,
    pub(crate) prompts: Arc<Prompts>,
    /// Each queue's caller experience, by queue id.
    pub(crate) experiences: Vec<(Experience, Language)>,
    /// Each trunk's gateway for callbacks, by trunk name.
    pub(crate) gateways: HashMap<String, amico_sip::Gateway>,
}

/// What the server hands the call flow.
pub(crate) struct CallsParts {
    pub(crate) acd: AcdHandle,
    pub(crate) edge: Arc<SipEdge>,
    pub(crate) ports: Arc<PortPool>,
    pub(crate) webrtc: WebRtcEndpoint,
    pub(crate) media: Arc<MediaCounters>,
    pub(crate) session: SessionConfig,
    pub(crate) routing: Routing,
    /// The queue log.
    pub(crate) events: Events,
    /// The first call id to give (after every call the store knows).
    pub(crate) first_call: u64,
    /// The calls in progress, shared with the ACD's writer's [`Dispatch`].
    pub(crate) live: LiveCalls,
}

/// Everything a call task needs, shared.
pub(crate) struct Calls {
    acd: AcdHandle,
    edge: Arc<SipEdge>,
    ports: Arc<PortPool>,
    /// The socket of every browser agent's media.
    webrtc: WebRtcEndpoint,
    media: Arc<MediaCounters>,
    session: SessionConfig,
    live: LiveCalls,
    routing: arc_swap::ArcSwap<Routing>,
    next_call: AtomicU64,
    events: Events,
}

impl Calls {
    pub(crate) fn new(parts: CallsParts) -> Arc<Calls> {
        let CallsParts {
            acd,
            edge,
            ports,
            webrtc,
            media,
            session,
            routing,
            events,
            first_call,
            live,
        } = parts;
        Arc::new(Calls {
            acd,
            edge,
            ports,
            webrtc,
            media,
            session,
            live,
            routing: arc_swap::ArcSwap::from_pointee(routing),
            next_call: AtomicU64::new(first_call.max(1)),
            events,
        })
    }

    /// Takes a reloaded configuration's routing.
    pub(crate) fn reroute(&self, routing: Routing) {
        self.routing.store(Arc::new(routing));
    }

    /// The agent a SIP username belongs to.
    pub(crate) fn agent_for_username(&self, user: &str) -> Option<AgentId> {
        self.routing.load().agents_by_username.get(user).copied()
    }

    /// Calls in progress.
    pub(crate) fn active(&self) -> usize {
        self.live.len()
    }

    /// Who is on each call in progress.
    pub(crate) fn list(&self) -> Vec<CallInfo> {
        let mut calls: Vec<CallInfo> = self.live.iter().map(|c| c.info.clone()).collect();
        calls.sort_by_key(|c| c.call.0);
        calls
    }

    /// One call in progress.
    pub(crate) fn get(&self, call: CallId) -> Option<CallInfo> {
        self.live.get(&call).map(|c| c.info.clone())
    }

    /// Ends a call at once (a supervisor's hang-up); false when there is no such call.
    pub(crate) fn hang_up(&self, call: CallId) -> bool {
        self.live
            .get(&call)
            .is_some_and(|c| c.commands.send(CallCommand::HangUp).is_ok())
    }

    /// Takes an admitted trunk call and runs it to its end.
    pub(crate) fn accept(self: &Arc<Self>, call: IncomingCall) {
        let id = CallId(self.next_call.fetch_add(1, Ordering::Relaxed));
        let (sender, commands) = mpsc::unbounded_channel();
        let info = CallInfo {
            call: id,
            caller: without_tag(&call.from),
            did: call.did.clone(),
            trunk: call.trunk.clone(),
            arrived_us: utc_now_us(),
            told: None,
        };
        self.live.insert(
            id,
            LiveCall {
                commands: sender,
                info,
            },
        );
        let calls = self.clone();
        tokio::spawn(async move {
            calls.events.call_fact(
                id.0,
                "call_arrived",
                Some(&call.queue),
                json!({
                    "trunk": call.trunk,
                    "caller": without_tag(&call.from),
                    "did": call.did,
                    "sip_call_id": call.call_id,
                    "source": call.source.to_string(),
                }),
            );
            let queue = calls.routing.load().queues.get(&call.queue).copied();
            let cause = match queue {
                Some(queue) => CallTask::run(calls.clone(), id, queue, call, commands).await,
                None => {
                    warn!(queue = %call.queue, "a DID maps to a queue the ACD does not have");
                    call.leg.reject(404).ok();
                    "unknown_queue"
                }
            };
            calls.live.remove(&id);
            calls
                .events
                .call_fact(id.0, "call_ended", None, json!({ "cause": cause }));
        });
    }
}

/// The agent side of a call while it rings or talks.
struct AgentSide {
    agent: AgentId,
    leg: ClientLeg,
    /// Its media, a SIP phone's or a browser's.
    media: AgentMedia,
    /// The phone answered; waiting for the ACD to confirm the connection.
    answered: bool,
    connected: bool,
    /// Its CDR, written when the leg is over.
    trace: Option<LegTrace>,
}

/// Where a call stands, for the caller's ears.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    /// Answered, hearing the welcome; not in the ACD's queue yet. The caller joins it when
    /// the welcome ends, or at the deadline if it never does.
    Welcome { deadline: tokio::time::Instant },
    /// In the queue: announcements and music.
    Queued,
    /// Talking to an agent.
    Talking,
    /// The agent hung up; the caller is asked to rate the call. The deadline runs from the
    /// end of the question.
    Survey {
        agent: AgentId,
        deadline: Option<tokio::time::Instant>,
    },
    /// A last prompt, then BYE.
    Farewell { deadline: tokio::time::Instant },
    /// The caller pressed 1 for a callback and is asked for the number: `#` for its own,
    /// or another followed by `#`. The deadline moves with each key.
    CallbackNumber { deadline: tokio::time::Instant },
    /// The caller asked for a callback: the confirmation plays, then the line is hung up
    /// and the call waits as a callback.
    CallbackConfirm { deadline: tokio::time::Instant },
}

struct CallTask {
    calls: Arc<Calls>,
    id: CallId,
    queue: QueueId,
    media: MediaSession,
    media_events: mpsc::Receiver<MediaEvent>,
    caller_format: RemoteMedia,
    from: String,
    agent: Option<AgentSide>,
    phase: Phase,
    /// When the caller joined its current queue (the schedule's zero).
    joined: tokio::time::Instant,
    experience: Experience,
    schedule: Schedule,
    first_announcement: bool,
    /// The ACD was told the call ended.
    acd_told: bool,
    /// Why the call ended, for its record (`call_ended`): `ended` once it was in the
    /// queue (the ACD's events say the rest), else what ended it during the welcome.
    cause: &'static str,
    /// Where a callback would be dialled out; none: no callbacks for this call.
    gateway: Option<amico_sip::Gateway>,
    /// The number the caller dialled (the callback comes from it).
    did: String,
    /// The callback number being keyed in.
    entry: NumberEntry,
    /// The number the caller keyed in for its callback; none: the caller's own.
    callback_number: Option<String>,
    /// The number of the next leg of the call (the caller's is 0).
    next_leg: u64,
    /// The prompts and music loaded when the call began (a reload loads new ones for new
    /// calls).
    prompts: Arc<Prompts>,
}

/// What to do after an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    End,
    /// The caller hung up for a callback: the call goes on without its first leg.
    Callback,
}

impl CallTask {
    async fn run(
        calls: Arc<Calls>,
        id: CallId,
        queue: QueueId,
        call: IncomingCall,
        commands: mpsc::UnboundedReceiver<CallCommand>,
    ) -> &'static str {
        let IncomingCall {
            leg,
            offer,
            from,
            did,
            trunk,
            source,
            call_id,
            ..
        } = call;
        let mut trunk_trace =
            LegTrace::new(&calls.events, id, 0, "trunk", &without_tag(&from), call_id);
        let socket = match calls.ports.allocate() {
            Ok(socket) => socket,
            Err(error) => {
                warn!(%error, "no RTP port for a trunk call");
                leg.reject(503).ok();
                trunk_trace.refused(503);
                return "refused_no_rtp_port";
            }
        };
        let local = socket.local_addr();
        let offer = match std::str::from_utf8(&offer)
            .map_err(|_| ())
            .and_then(|text| sdp::parse(text).map_err(|_| ()))
        {
            Ok(offer) => offer,
            Err(()) => {
                // No SDP offer (or an unreadable one): RFC 3261 §13.2.1 allows an
                // offer-less INVITE, which this edge does not support yet.
                info!(%source, "INVITE without a usable SDP offer refused");
                leg.reject(488).ok();
                trunk_trace.refused(488);
                return "refused_no_sdp_offer";
            }
        };
        let session = SdpSession::new(rand_session_id());
        let (answer, caller_format) = match sdp::answer(&offer, local, &CODECS, &session) {
            Ok(answer) => answer,
            Err(error) => {
                info!(%source, %error, "no common codec with the trunk");
                leg.reject(488).ok();
                trunk_trace.refused(488);
                return "refused_no_common_codec";
            }
        };
        if let Err(error) = leg.answer(answer) {
            warn!(%error, "could not answer a trunk call");
            trunk_trace.end_reason = Some("answer_failed");
            return "answer_failed";
        }
        trunk_trace.answered_us = Some(crate::records::log::utc_now_us());
        let (media, media_events) =
            MediaSession::start(socket, caller_format, calls.session, calls.media.clone());
        info!(%id, %trunk, %did, %from, "call answered");
        let routing = calls.routing.load_full();
        let (experience, language) = routing
            .experiences
            .get(queue.index())
            .cloned()
            .unwrap_or_default();
        let schedule = Schedule::new(experience.clone(), language, id.0);
        let gateway = routing.gateways.get(&trunk).copied();
        let mut task = CallTask {
            calls,
            id,
            queue,
            media,
            media_events,
            caller_format,
            from,
            agent: None,
            phase: Phase::Queued,
            joined: tokio::time::Instant::now(),
            experience,
            schedule,
            prompts: routing.prompts.clone(),
            first_announcement: true,
            acd_told: false,
            cause: "ended",
            gateway,
            did,
            entry: NumberEntry::default(),
            callback_number: None,
            next_leg: 1,
        };
        task.start();
        let callback = task.serve(leg, session, commands).await;
        // The caller's leg is over, whether the call goes on as a callback or not.
        drop(trunk_trace);
        if let Some(commands) = callback {
            task.media.stop();
            let (experience, language) = (task.experience.clone(), task.schedule.language());
            let number = task.callback_number.take().unwrap_or_else(|| {
                amico_sip::registrar::uri_user(&task.from)
                    .unwrap_or_default()
                    .to_owned()
            });
            let Some(gateway) = task.gateway else {
                return "ended";
            };
            let callback = CallbackTask {
                calls: task.calls.clone(),
                id,
                from: task.from.clone(),
                number,
                gateway,
                did: task.did.clone(),
                intro: task.prompts.clips(language, &["callback-intro".to_owned()]),
                prompts: task.prompts.clone(),
                music: experience.music,
                agent: None,
                caller: None,
                caller_deadline: None,
                media: None,
                next_leg: task.next_leg,
            };
            // Boxed: a call that turns into a callback is rare, and inline its state sized
            // every call's task (7.2 KB, now 5.3 KB; BENCHMARKS.md).
            Box::pin(callback.serve(commands)).await;
        }
        task.cause
    }

    /// The call is answered: a queue with a welcome plays it whole, and the caller joins
    /// the ACD's queue when it ends ([`CallTask::join`]); without one, the caller joins at
    /// once.
    ///
    /// Why after the welcome, as an Asterisk dialplan's `Playback()` before `Queue()`: the
    /// welcome (a privacy notice, say) is the same for every caller, so it is not time
    /// spent waiting for an agent and must not count in the queue's waits, service level
    /// or abandonment; and no agent is rung before the caller can hear one, so no agent
    /// sits on a line that is still playing a notice, and no agent's greeting is lost.
    /// The cost is the welcome's length added to a caller's time to an agent when one is
    /// free. A caller who hangs up during the welcome was never offered to the queue: the
    /// ACD never hears of it, and its record is its `call_arrived` and its `call_ended`
    /// with the cause `hung_up_in_welcome` (the CDR's outcome), once.
    fn start(&mut self) {
        let names = self.experience.entry_prompts();
        if names.is_empty() {
            self.join();
            return;
        }
        let length: Duration = self
            .prompts
            .clips(self.schedule.language(), &names)
            .iter()
            .map(amico_media::Clip::duration)
            .sum();
        self.phase = Phase::Welcome {
            deadline: tokio::time::Instant::now() + length + WELCOME_SLACK,
        };
        self.play(&names, WELCOME);
    }

    /// The caller joins its queue: from now on the ACD counts its wait, and its
    /// announcements run from here.
    fn join(&mut self) {
        self.phase = Phase::Queued;
        self.joined = tokio::time::Instant::now();
        info!(call = %self.id, "the caller joins the queue");
        self.calls.acd.send(Input::CallArrived {
            call: self.id,
            queue: self.queue,
            priority: 0,
        });
    }

    /// The ACD knows the call and has not been told it ended.
    fn in_acd(&self) -> bool {
        !self.acd_told && !matches!(self.phase, Phase::Welcome { .. })
    }

    async fn serve(
        &mut self,
        mut trunk: amico_sip::ServerLeg,
        mut trunk_sdp: SdpSession,
        mut commands: mpsc::UnboundedReceiver<CallCommand>,
    ) -> Option<mpsc::UnboundedReceiver<CallCommand>> {
        loop {
            let wake_at = self.wake_at();
            let flow = tokio::select! {
                event = trunk.next() => match event {
                    None | Some(LegEvent::Ended(_)) => {
                        info!(call = %self.id, "caller hung up");
                        match self.phase {
                            Phase::Survey { agent, .. } => self.vote(agent, None),
                            Phase::Welcome { .. } => self.cause = "hung_up_in_welcome",
                            _ => {}
                        }
                        Flow::End
                    }
                    Some(LegEvent::Reoffer { sdp, responder }) => {
                        match reanswer(&sdp, self.media.caller_local_addr(), &mut trunk_sdp) {
                            Some((answer, remote)) => {
                                self.media.update_remote(MediaLeg::Caller, remote);
                                responder.answer(answer).await;
                            }
                            None => responder.reject(488).await,
                        }
                        Flow::Continue
                    }
                    // SIP INFO DTMF (RFC 2976, application/dtmf-relay), a fallback for
                    // trunks that do not send RFC 4733 events.
                    Some(LegEvent::Info { content_type, body }) => match info_digit(&content_type, &body) {
                        Some(digit) => self.key(digit),
                        None => Flow::Continue,
                    },
                    Some(_) => Flow::Continue,
                },
                command = commands.recv() => match command {
                    Some(CallCommand::Ring(agent)) => {
                        self.ring(agent);
                        Flow::Continue
                    }
                    Some(CallCommand::StopRinging(agent)) => {
                        self.stop_ringing(agent).await;
                        Flow::Continue
                    }
                    Some(CallCommand::Connected(agent)) => {
                        self.connected(agent);
                        Flow::Continue
                    }
                    Some(CallCommand::Estimate { position, estimated_wait }) => {
                        self.announce_position(position, estimated_wait);
                        Flow::Continue
                    }
                    Some(CallCommand::MovedTo(queue)) => {
                        self.moved_to(queue);
                        Flow::Continue
                    }
                    Some(CallCommand::DialCaller(_)) => Flow::Continue,
                    Some(CallCommand::HangUp) => {
                        info!(call = %self.id, "a supervisor hangs the call up");
                        // Before an answer a removal, not the caller's abandon; during the
                        // welcome the ACD has nothing to remove.
                        if matches!(self.phase, Phase::Welcome { .. }) {
                            self.cause = "removed_in_welcome";
                        } else if self.in_acd() {
                            self.calls.acd.send(Input::RemoveCall { call: self.id });
                            self.acd_told = true;
                        }
                        Flow::End
                    }
                    Some(CallCommand::Disconnect) => {
                        // The ACD is done with the call (a queue limit, the caller's choice).
                        self.acd_told = true;
                        self.farewell("goodbye")
                    }
                    None => Flow::End,
                },
                event = next_agent_event(&mut self.agent) => self.agent_event(event).await,
                event = self.media_events.recv() => match event {
                    Some(MediaEvent::RtpTimeout { leg }) => {
                        warn!(call = %self.id, ?leg, "no RTP: the call is ended");
                        if matches!(self.phase, Phase::Welcome { .. }) {
                            self.cause = "no_rtp_in_welcome";
                        }
                        Flow::End
                    }
                    Some(MediaEvent::Dtmf { leg: MediaLeg::Caller, digit, .. }) => self.key(digit),
                    Some(MediaEvent::PlaylistDone { id }) => self.played(id),
                    Some(_) => Flow::Continue,
                    None => Flow::End,
                },
                _ = sleep_until(wake_at) => self.timer(),
            };
            match flow {
                Flow::Continue => {}
                Flow::End => {
                    if matches!(self.phase, Phase::Welcome { .. }) && self.cause == "ended" {
                        self.cause = "ended_in_welcome";
                    }
                    self.end(trunk);
                    return None;
                }
                Flow::Callback => {
                    // The ACD keeps the call as a callback; only the caller's line ends.
                    self.acd_told = true;
                    self.end(trunk);
                    return Some(commands);
                }
            }
        }
    }

    /// When the call next needs waking: an announcement, a survey timeout, a farewell limit.
    fn wake_at(&self) -> Option<tokio::time::Instant> {
        match self.phase {
            Phase::Queued => self.schedule.next_due().map(|due| self.joined + due),
            Phase::Talking => None,
            Phase::Survey { deadline, .. } => deadline,
            Phase::Welcome { deadline }
            | Phase::Farewell { deadline }
            | Phase::CallbackNumber { deadline }
            | Phase::CallbackConfirm { deadline } => Some(deadline),
        }
    }

    fn timer(&mut self) -> Flow {
        match self.phase {
            Phase::Welcome { .. } => {
                info!(call = %self.id, "the welcome did not end in time: the caller joins the queue");
                self.join();
                Flow::Continue
            }
            Phase::Queued => {
                match self.schedule.due(self.joined.elapsed()) {
                    Some(Due::Position) => {
                        self.calls.acd.send(Input::EstimateWait { call: self.id })
                    }
                    Some(Due::Periodic(name)) => self.play(&[name], ANNOUNCEMENT),
                    None => {}
                }
                Flow::Continue
            }
            Phase::Survey { agent, .. } => {
                self.vote(agent, None);
                self.farewell("goodbye")
            }
            Phase::Farewell { .. } => Flow::End,
            Phase::CallbackNumber { .. } => {
                info!(call = %self.id, "no callback number keyed in: back to the queue");
                self.back_to_queue(&["invalid-choice"]);
                Flow::Continue
            }
            Phase::CallbackConfirm { .. } => Flow::Callback,
            Phase::Talking => Flow::Continue,
        }
    }

    /// Plays prompts, then the queue's music.
    fn play(&self, names: &[String], id: u64) {
        let language = self.schedule.language();
        let playlist = self
            .prompts
            .playlist(language, names, &self.experience.music);
        self.media.play(playlist, id);
    }

    fn announce_position(&mut self, position: u32, estimated_wait: Option<Duration>) {
        if self.phase != Phase::Queued {
            return;
        }
        // The welcome is not part of it: every caller heard it before joining the queue.
        let mut names = self.schedule.position_prompts(position, estimated_wait);
        if self.first_announcement && self.experience.menu {
            names.push("menu".to_owned());
        }
        self.first_announcement = false;
        debug!(call = %self.id, ?names, "announcement");
        self.play(&names, ANNOUNCEMENT);
        self.told(position, estimated_wait);
    }

    /// Keeps what the caller was just told where the API and the agent's desk read it, and
    /// records it in the queue log (`announced`).
    fn told(&mut self, position: u32, estimated_wait: Option<Duration>) {
        let Some(mut live) = self.calls.live.get_mut(&self.id) else {
            return;
        };
        let told = Told {
            position,
            estimated_wait: estimated_wait.map(|wait| wait.as_secs_f64()),
            announcements: live.info.told.map_or(1, |told| told.announcements + 1),
        };
        live.info.told = Some(told);
        drop(live);
        self.calls.events.call_fact(
            self.id.0,
            "announced",
            None,
            json!({ "position": position, "estimated_wait": told.estimated_wait }),
        );
    }

    fn moved_to(&mut self, queue: QueueId) {
        self.queue = queue;
        let (experience, language) = self
            .calls
            .routing
            .load()
            .experiences
            .get(queue.index())
            .cloned()
            .unwrap_or_default();
        self.schedule = Schedule::new(experience.clone(), language, self.id.0);
        self.experience = experience;
        self.joined = tokio::time::Instant::now();
    }

    /// A key the caller pressed (RFC 4733 event or SIP INFO).
    fn key(&mut self, digit: char) -> Flow {
        debug!(call = %self.id, %digit, phase = ?self.phase, "caller key");
        match self.phase {
            // The welcome plays whole; the menu is offered once the caller is in the queue.
            Phase::Welcome { .. } => Flow::Continue,
            Phase::Queued if self.experience.menu && digit == '0' => {
                info!(call = %self.id, "the caller leaves the queue");
                self.calls.acd.send(Input::LeaveQueue { call: self.id });
                Flow::Continue
            }
            Phase::Queued if self.experience.menu && digit == '1' && self.gateway.is_some() => {
                self.entry = NumberEntry::default();
                // The prompt plays before the pause between keys counts.
                self.phase = Phase::CallbackNumber {
                    deadline: tokio::time::Instant::now() + FAREWELL_LIMIT + KEY_TIMEOUT,
                };
                self.play(&["callback-number".to_owned()], CALLBACK_NUMBER);
                Flow::Continue
            }
            Phase::CallbackNumber { .. } => {
                match self.entry.key(digit) {
                    Entry::More => {
                        self.phase = Phase::CallbackNumber {
                            deadline: tokio::time::Instant::now() + KEY_TIMEOUT,
                        }
                    }
                    Entry::Done(number) => self.request_callback(number),
                    Entry::Invalid => {
                        self.phase = Phase::CallbackNumber {
                            deadline: tokio::time::Instant::now() + FAREWELL_LIMIT + KEY_TIMEOUT,
                        };
                        self.play(
                            &["invalid-choice".to_owned(), "callback-number".to_owned()],
                            CALLBACK_NUMBER,
                        );
                    }
                    Entry::Cancelled => {
                        info!(call = %self.id, "the caller gave up its callback");
                        self.back_to_queue(&[]);
                    }
                }
                Flow::Continue
            }
            Phase::Queued if self.experience.menu => {
                self.play(&["invalid-choice".to_owned()], ANNOUNCEMENT);
                Flow::Continue
            }
            Phase::Survey { agent, .. } => match Vote::from_key(digit) {
                Some(vote) => {
                    info!(call = %self.id, ?vote, "survey vote");
                    self.vote(agent, Some(vote));
                    self.farewell("survey-thanks")
                }
                None => {
                    self.play(
                        &["invalid-choice".to_owned(), "survey".to_owned()],
                        SURVEY_QUESTION,
                    );
                    Flow::Continue
                }
            },
            _ => Flow::Continue,
        }
    }

    fn played(&mut self, id: u64) -> Flow {
        match (self.phase, id) {
            (
                Phase::Survey {
                    agent,
                    deadline: None,
                },
                SURVEY_QUESTION,
            ) => {
                let timeout = Duration::from_secs_f64(self.experience.survey_timeout);
                self.phase = Phase::Survey {
                    agent,
                    deadline: Some(tokio::time::Instant::now() + timeout),
                };
                Flow::Continue
            }
            (Phase::Welcome { .. }, WELCOME) => {
                self.join();
                Flow::Continue
            }
            (Phase::Farewell { .. }, FAREWELL) => Flow::End,
            (Phase::CallbackNumber { .. }, CALLBACK_NUMBER) => {
                self.phase = Phase::CallbackNumber {
                    deadline: tokio::time::Instant::now() + KEY_TIMEOUT,
                };
                Flow::Continue
            }
            (Phase::CallbackConfirm { .. }, CALLBACK_CONFIRM) => Flow::Callback,
            _ => Flow::Continue,
        }
    }

    /// The caller confirmed its callback number (`None`: its own): the ACD keeps its place
    /// as a callback, the confirmation plays and the line is hung up.
    fn request_callback(&mut self, number: Option<String>) {
        info!(call = %self.id, ?number, "the caller asks to be called back");
        self.callback_number = number;
        self.calls
            .acd
            .send(Input::RequestCallback { call: self.id });
        self.phase = Phase::CallbackConfirm {
            deadline: tokio::time::Instant::now() + FAREWELL_LIMIT,
        };
        self.play(&["callback-confirm".to_owned()], CALLBACK_CONFIRM);
    }

    /// Ends a callback-number entry without a callback: the caller waits on as before.
    fn back_to_queue(&mut self, prompts: &[&str]) {
        self.entry = NumberEntry::default();
        self.phase = Phase::Queued;
        let names: Vec<String> = prompts.iter().map(|name| (*name).to_owned()).collect();
        self.play(&names, ANNOUNCEMENT);
    }

    fn vote(&mut self, agent: AgentId, vote: Option<Vote>) {
        self.calls.acd.send(Input::SurveyVote {
            call: self.id,
            queue: self.queue,
            agent,
            vote,
        });
    }

    /// Says a last prompt, then ends the call.
    fn farewell(&mut self, prompt: &str) -> Flow {
        self.phase = Phase::Farewell {
            deadline: tokio::time::Instant::now() + FAREWELL_LIMIT,
        };
        self.media.hold();
        self.play(&[prompt.to_owned()], FAREWELL);
        Flow::Continue
    }

    fn ring(&mut self, agent: AgentId) {
        self.next_leg += 1;
        match ring_agent(
            &self.calls,
            self.id,
            self.next_leg - 1,
            agent,
            &self.from,
            self.caller_format.format.codec,
        ) {
            Some(side) => self.agent = Some(side),
            None => self.offer_failed(agent, OfferFailure::Unreachable),
        }
    }

    async fn stop_ringing(&mut self, agent: AgentId) {
        if let Some(mut side) = self.agent.take_if(|side| side.agent == agent) {
            side.leg.hangup().await;
        }
    }

    fn connected(&mut self, agent: AgentId) {
        let Some(side) = self.agent.as_mut().filter(|side| side.agent == agent) else {
            return;
        };
        side.connected = true;
        self.phase = Phase::Talking;
        side.media.bridge(&self.media);
    }

    /// Handles an agent-leg event.
    async fn agent_event(&mut self, event: Option<LegEvent>) -> Flow {
        let Some(side) = self.agent.as_mut() else {
            return Flow::Continue;
        };
        let (id, agent) = (self.id, side.agent);
        match event {
            Some(LegEvent::Ringing) => Flow::Continue,
            Some(LegEvent::Answered(body)) => {
                if side.media.accept_answer(&body) {
                    side.answered = true;
                    self.calls
                        .acd
                        .send(Input::OfferAnswered { call: id, agent });
                } else {
                    info!(call = %id, %agent, "agent answered with unusable SDP");
                    side.leg.hangup().await;
                    self.offer_failed(agent, OfferFailure::Unreachable);
                }
                Flow::Continue
            }
            Some(LegEvent::Failed(status)) => {
                let reason = match status {
                    486 | 600 | 603 => OfferFailure::Rejected,
                    408 | 480 | 487 => OfferFailure::NoAnswer,
                    _ => OfferFailure::Unreachable,
                };
                info!(call = %id, %agent, status, "agent did not take the call");
                self.offer_failed(agent, reason);
                Flow::Continue
            }
            Some(LegEvent::Reoffer { sdp, responder }) => {
                let bridged = side.connected.then_some(&self.media);
                match side.media.reoffer(&sdp, bridged).await {
                    Ok(answer) => responder.answer(answer).await,
                    Err(status) => responder.reject(status).await,
                }
                Flow::Continue
            }
            // Once answered, the agent's BYE ends the conversation (the ACD completes it);
            // the caller stays for the survey if the queue has one.
            Some(LegEvent::Ended(_)) | None if side.connected || side.answered => {
                info!(call = %id, %agent, "agent hung up");
                self.agent = None;
                if self.experience.survey && side_was_connected(self.phase) {
                    self.calls.acd.send(Input::Hangup { call: id });
                    self.acd_told = true;
                    self.phase = Phase::Survey {
                        agent,
                        deadline: None,
                    };
                    self.media.hold();
                    self.play(&["survey".to_owned()], SURVEY_QUESTION);
                    Flow::Continue
                } else {
                    Flow::End
                }
            }
            Some(LegEvent::Ended(_)) | None => {
                self.offer_failed(agent, OfferFailure::Unreachable);
                Flow::Continue
            }
            Some(LegEvent::Confirmed | LegEvent::Info { .. }) => Flow::Continue,
        }
    }

    /// The offer to `agent` is over without an answer: forget its leg, tell the ACD.
    fn offer_failed(&mut self, agent: AgentId, reason: OfferFailure) {
        self.agent = None;
        self.calls.acd.send(Input::OfferFailed {
            call: self.id,
            agent,
            reason,
        });
    }

    /// Ends everything: tells the ACD first, stops the media, and ends both legs at once.
    fn end(&mut self, mut trunk: amico_sip::ServerLeg) {
        // The ACD knows whether this was an abandon or the end of a conversation (and of a
        // caller who left during the welcome, nothing).
        if self.in_acd() {
            self.calls.acd.send(Input::Hangup { call: self.id });
            self.acd_told = true;
        }
        self.media.stop();
        // The call is over now; its BYEs finish on their own (a dead phone's BYE takes
        // 32 s to time out, RFC 3261 §17.1.2.2) and do not keep it among the active calls.
        let mut agent = self.agent.take();
        if let Some(side) = &mut agent {
            side.trace.take();
        }
        tokio::spawn(async move {
            let agent_leg = async {
                if let Some(mut side) = agent {
                    side.leg.hangup().await;
                }
            };
            tokio::join!(agent_leg, trunk.hangup());
        });
    }
}

fn side_was_connected(phase: Phase) -> bool {
    phase == Phase::Talking
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The key in a SIP INFO body: `application/dtmf-relay` (`Signal=5`) or
/// `application/dtmf` (`5`).
fn info_digit(content_type: &str, body: &[u8]) -> Option<char> {
    let body = std::str::from_utf8(body).ok()?;
    let content_type = content_type.to_ascii_lowercase();
    let value = if content_type.contains("dtmf-relay") {
        body.lines().find_map(|line| {
            let (name, value) = line.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("signal")
                .then(|| value.trim())
        })?
    } else if content_type.contains("application/dtmf") {
        body.trim()
    } else {
        return None;
    };
    let digit = value.chars().next()?;
    (value.len() == 1 && matches!(digit, '0'..='9' | '*' | '#' | 'A'..='D' | 'a'..='d'))
        .then(|| digit.to_ascii_uppercase())
}

/// A queued callback after the caller hung up: agent first, then the caller is called
/// back through its trunk's gateway, hears the intro, and is bridged to the waiting agent.
struct CallbackTask {
    calls: Arc<Calls>,
    id: CallId,
    /// The caller's identity as received, shown on the agent's phone.
    from: String,
    /// The number to call back.
    number: String,
    gateway: amico_sip::Gateway,
    /// The number the caller dialled: the callback comes from it.
    did: String,
    intro: Vec<amico_media::Clip>,
    music: String,
    agent: Option<AgentSide>,
    caller: Option<CalledBack>,
    caller_deadline: Option<tokio::time::Instant>,
    media: Option<(MediaSession, mpsc::Receiver<MediaEvent>)>,
    /// The number of the next leg of the call.
    next_leg: u64,
    prompts: Arc<Prompts>,
}

/// The leg to the caller being called back.
struct CalledBack {
    leg: ClientLeg,
    socket: Option<RtpSocket>,
    sdp: SdpSession,
    local: std::net::SocketAddr,
    answered: bool,
    /// Its CDR, written when the leg is over.
    trace: Option<LegTrace>,
}

impl CallbackTask {
    async fn serve(mut self, mut commands: mpsc::UnboundedReceiver<CallCommand>) {
        loop {
            let flow = tokio::select! {
                command = commands.recv() => match command {
                    Some(CallCommand::Ring(agent)) => {
                        // No codec is negotiated yet with the caller: offer ours in order.
                        self.next_leg += 1;
                        match ring_agent(&self.calls, self.id, self.next_leg - 1, agent, &self.from, CODECS[0]) {
                            Some(side) => self.agent = Some(side),
                            None => self.calls.acd.send(Input::OfferFailed { call: self.id, agent, reason: OfferFailure::Unreachable }),
                        }
                        Flow::Continue
                    }
                    Some(CallCommand::StopRinging(agent)) => {
                        if let Some(mut side) = self.agent.take_if(|side| side.agent == agent) {
                            side.leg.hangup().await;
                        }
                        Flow::Continue
                    }
                    Some(CallCommand::DialCaller(agent))
                        if self.agent.as_ref().is_some_and(|side| side.agent == agent) =>
                    {
                        self.dial()
                    }
                    Some(CallCommand::Disconnect) | None => Flow::End,
                    Some(CallCommand::HangUp) => {
                        info!(call = %self.id, "a supervisor hangs the callback up");
                        self.calls.acd.send(Input::RemoveCall { call: self.id });
                        Flow::End
                    }
                    Some(_) => Flow::Continue,
                },
                event = next_agent_event(&mut self.agent) => self.agent_event(event).await,
                event = next_called_back_event(&mut self.caller) => self.caller_event(event).await,
                event = next_media_event(&mut self.media) => match event {
                    Some(MediaEvent::PlaylistDone { id: CALLBACK_INTRO }) => {
                        self.bridge();
                        Flow::Continue
                    }
                    Some(MediaEvent::RtpTimeout { leg }) => {
                        warn!(call = %self.id, ?leg, "no RTP on a callback: the call is ended");
                        self.calls.acd.send(Input::Hangup { call: self.id });
                        Flow::End
                    }
                    _ => Flow::Continue,
                },
                _ = sleep_until(self.caller_deadline) => {
                    info!(call = %self.id, "the called-back caller did not answer");
                    self.caller_deadline = None;
                    self.caller_failed().await
                }
            };
            if flow != Flow::Continue {
                self.end();
                return;
            }
        }
    }

    /// The agent is on the line: call the caller back.
    fn dial(&mut self) -> Flow {
        let socket = match self.calls.ports.allocate() {
            Ok(socket) => socket,
            Err(error) => {
                warn!(%error, "no RTP port to call a caller back");
                self.calls.acd.send(Input::CallbackFailed { call: self.id });
                return Flow::Continue;
            }
        };
        let local = socket.local_addr();
        let session = SdpSession::new(rand_session_id());
        let offer = sdp::offer(local, &CODECS, Some(101), &session);
        match self
            .calls
            .edge
            .invite_number(self.gateway, &self.number, &self.did, offer)
        {
            Ok(leg) => {
                info!(call = %self.id, number = %self.number, gateway = %self.gateway, "calling the caller back");
                self.next_leg += 1;
                let trace = LegTrace::new(
                    &self.calls.events,
                    self.id,
                    self.next_leg - 1,
                    "callback",
                    &self.number,
                    leg.call_id(),
                );
                self.caller = Some(CalledBack {
                    leg,
                    socket: Some(socket),
                    sdp: session,
                    local,
                    answered: false,
                    trace: Some(trace),
                });
                self.caller_deadline = Some(tokio::time::Instant::now() + CALLBACK_RING);
            }
            Err(error) => {
                warn!(call = %self.id, %error, "cannot call the caller back");
                self.calls.acd.send(Input::CallbackFailed { call: self.id });
            }
        }
        Flow::Continue
    }

    /// After the intro, the caller and the waiting agent are bridged.
    fn bridge(&mut self) {
        let (Some((media, _)), Some(side)) = (&self.media, self.agent.as_mut()) else {
            return;
        };
        side.media.bridge(media);
    }

    async fn caller_event(&mut self, event: Option<LegEvent>) -> Flow {
        let Some(called) = self.caller.as_mut() else {
            return Flow::Continue;
        };
        match event {
            Some(LegEvent::Answered(body)) => {
                let (Some(remote), Some(socket)) = (agent_answer(&body), called.socket.take())
                else {
                    return self.caller_failed().await;
                };
                called.answered = true;
                self.caller_deadline = None;
                info!(call = %self.id, "the caller answered its callback");
                let (media, events) = MediaSession::start(
                    socket,
                    remote,
                    self.calls.session,
                    self.calls.media.clone(),
                );
                let music = self.prompts.playlist_music(&self.music);
                media.play(
                    amico_media::Playlist::new(self.intro.clone(), music),
                    CALLBACK_INTRO,
                );
                self.media = Some((media, events));
                self.calls
                    .acd
                    .send(Input::CallbackAnswered { call: self.id });
                Flow::Continue
            }
            Some(LegEvent::Reoffer { sdp, responder }) => {
                match reanswer(&sdp, called.local, &mut called.sdp) {
                    Some((answer, remote)) => {
                        if let Some((media, _)) = &self.media {
                            media.update_remote(MediaLeg::Caller, remote);
                        }
                        responder.answer(answer).await;
                    }
                    None => responder.reject(488).await,
                }
                Flow::Continue
            }
            Some(LegEvent::Failed(status)) => {
                info!(call = %self.id, status, "the callback did not reach the caller");
                self.caller_failed().await
            }
            Some(LegEvent::Ended(_)) | None if called.answered => {
                info!(call = %self.id, "the called-back caller hung up");
                self.calls.acd.send(Input::Hangup { call: self.id });
                Flow::End
            }
            Some(LegEvent::Ended(_)) | None => self.caller_failed().await,
            Some(_) => Flow::Continue,
        }
    }

    /// The caller could not be reached: the agent is let go, the ACD retries or gives up.
    async fn caller_failed(&mut self) -> Flow {
        if let Some(mut called) = self.caller.take() {
            called.leg.hangup().await;
        }
        self.caller_deadline = None;
        if let Some(mut side) = self.agent.take() {
            side.leg.hangup().await;
        }
        self.calls.acd.send(Input::CallbackFailed { call: self.id });
        Flow::Continue
    }

    async fn agent_event(&mut self, event: Option<LegEvent>) -> Flow {
        let Some(side) = self.agent.as_mut() else {
            return Flow::Continue;
        };
        let agent = side.agent;
        match event {
            Some(LegEvent::Answered(body)) => {
                if side.media.accept_answer(&body) {
                    side.answered = true;
                    self.calls.acd.send(Input::OfferAnswered {
                        call: self.id,
                        agent,
                    });
                } else {
                    side.leg.hangup().await;
                    self.agent = None;
                    self.calls.acd.send(Input::OfferFailed {
                        call: self.id,
                        agent,
                        reason: OfferFailure::Unreachable,
                    });
                }
                Flow::Continue
            }
            Some(LegEvent::Failed(status)) => {
                let reason = match status {
                    486 | 600 | 603 => OfferFailure::Rejected,
                    408 | 480 | 487 => OfferFailure::NoAnswer,
                    _ => OfferFailure::Unreachable,
                };
                self.agent = None;
                self.calls.acd.send(Input::OfferFailed {
                    call: self.id,
                    agent,
                    reason,
                });
                Flow::Continue
            }
            Some(LegEvent::Reoffer { sdp, responder }) => {
                let bridged = self.media.as_ref().map(|(media, _)| media);
                match side.media.reoffer(&sdp, bridged).await {
                    Ok(answer) => responder.answer(answer).await,
                    Err(status) => responder.reject(status).await,
                }
                Flow::Continue
            }
            // The agent hung up: while the caller was being called back, the ACD counts a
            // failed attempt; once they talked, the call is complete.
            Some(LegEvent::Ended(_)) | None if side.answered => {
                self.agent = None;
                let talking = self.caller.as_ref().is_some_and(|c| c.answered);
                self.calls.acd.send(Input::Hangup { call: self.id });
                if let Some(mut called) = self.caller.take() {
                    called.leg.hangup().await;
                }
                self.caller_deadline = None;
                if talking { Flow::End } else { Flow::Continue }
            }
            Some(LegEvent::Ended(_)) | None => {
                self.agent = None;
                self.calls.acd.send(Input::OfferFailed {
                    call: self.id,
                    agent,
                    reason: OfferFailure::Unreachable,
                });
                Flow::Continue
            }
            Some(_) => Flow::Continue,
        }
    }

    fn end(&mut self) {
        if let Some((media, _)) = self.media.take() {
            media.stop();
        }
        let (mut agent, mut caller) = (self.agent.take(), self.caller.take());
        // The legs' records end now, not when their BYEs finish.
        if let Some(side) = &mut agent {
            side.trace.take();
        }
        if let Some(called) = &mut caller {
            called.trace.take();
        }
        tokio::spawn(async move {
            let agent_leg = async {
                if let Some(mut side) = agent {
                    side.leg.hangup().await;
                }
            };
            let caller_leg = async {
                if let Some(mut called) = caller {
                    called.leg.hangup().await;
                }
            };
            tokio::join!(agent_leg, caller_leg);
        });
    }
}

async fn next_called_back_event(caller: &mut Option<CalledBack>) -> Option<LegEvent> {
    match caller {
        Some(called) => {
            let event = called.leg.next().await;
            if let Some(trace) = &mut called.trace {
                trace.observe(&event);
            }
            event
        }
        None => std::future::pending().await,
    }
}

async fn next_media_event(
    media: &mut Option<(MediaSession, mpsc::Receiver<MediaEvent>)>,
) -> Option<MediaEvent> {
    match media {
        Some((_, events)) => events.recv().await,
        None => std::future::pending().await,
    }
}

/// Rings an agent's phone for a call from `from`, offering `first` first (the caller's
/// codec: both legs then agree and no transcoding happens); `None` if it cannot be rung.
fn ring_agent(
    calls: &Calls,
    call: CallId,
    leg_number: u64,
    agent: AgentId,
    from: &str,
    first: Codec,
) -> Option<AgentSide> {
    let routing = calls.routing.load();
    let username = routing.usernames.get(agent.index())?;
    let Some(transport) = calls.edge.agent_transport(username) else {
        info!(%call, %username, "agent unreachable: not registered");
        return None;
    };
    let (media, offer) = match AgentMedia::offer(&calls.ports, &calls.webrtc, transport, first) {
        Ok(offer) => offer,
        Err(error) => {
            warn!(%call, %username, %error, "no media for an agent leg");
            return None;
        }
    };
    match calls.edge.invite_agent(username, from, offer) {
        Ok(leg) => {
            info!(%call, %agent, %username, "ringing agent");
            let peer = routing.agent_names.get(agent.index()).unwrap_or(username);
            let trace = LegTrace::new(
                &calls.events,
                call,
                leg_number,
                "agent",
                peer,
                leg.call_id(),
            );
            Some(AgentSide {
                agent,
                leg,
                media,
                answered: false,
                connected: false,
                trace: Some(trace),
            })
        }
        Err(error) => {
            info!(%call, %username, %error, "agent unreachable");
            None
        }
    }
}

/// The agent's SDP answer, if usable.
fn agent_answer(body: &[u8]) -> Option<RemoteMedia> {
    let answer = sdp::parse(std::str::from_utf8(body).ok()?).ok()?;
    sdp::accept_answer(&answer, &CODECS).ok()
}

async fn next_agent_event(agent: &mut Option<AgentSide>) -> Option<LegEvent> {
    match agent {
        Some(side) => {
            let event = side.leg.next().await;
            if let Some(trace) = &mut side.trace {
                trace.observe(&event);
            }
            event
        }
        None => std::future::pending().await,
    }
}

/// Our answer to an in-dialog re-offer (hold, unhold, codec lock): same port, the format
/// the new offer allows, a new SDP version (RFC 3264 §8).
fn reanswer(
    body: &[u8],
    local: std::net::SocketAddr,
    session: &mut SdpSession,
) -> Option<(String, RemoteMedia)> {
    let offer = sdp::parse(std::str::from_utf8(body).ok()?).ok()?;
    session.bump();
    sdp::answer(&offer, local, &CODECS, session).ok()
}

/// One SIP leg's record (the per-leg CDR): written to the queue log as `leg_ended` when it
/// is dropped, so every leg is recorded once, whichever way it ended.
#[derive(Debug)]
struct LegTrace {
    events: Events,
    call: CallId,
    leg: u64,
    /// `trunk` (the caller's), `agent` (an agent rung) or `callback` (the caller called
    /// back).
    kind: &'static str,
    /// The caller's From, the agent's name, or the number called back.
    peer: String,
    sip_call_id: String,
    started_us: i64,
    answered_us: Option<i64>,
    /// The final SIP status of a leg that failed or that we refused.
    status: Option<u16>,
    /// Why it ended, when known better than from its answer and status.
    end_reason: Option<&'static str>,
}

impl LegTrace {
    fn new(
        events: &Events,
        call: CallId,
        leg: u64,
        kind: &'static str,
        peer: &str,
        sip_call_id: String,
    ) -> LegTrace {
        LegTrace {
            events: events.clone(),
            call,
            leg,
            kind,
            peer: peer.to_owned(),
            sip_call_id,
            started_us: utc_now_us(),
            answered_us: None,
            status: None,
            end_reason: None,
        }
    }

    /// Notes what a leg event says about the leg.
    fn observe(&mut self, event: &Option<LegEvent>) {
        match event {
            Some(LegEvent::Answered(_)) if self.answered_us.is_none() => {
                self.answered_us = Some(utc_now_us());
            }
            Some(LegEvent::Failed(status)) => self.status = Some(*status),
            _ => {}
        }
    }

    /// We refused the leg with `status`.
    fn refused(&mut self, status: u16) {
        self.status = Some(status);
        self.end_reason = Some("refused");
    }

    fn reason(&self) -> &'static str {
        if let Some(reason) = self.end_reason {
            return reason;
        }
        match (self.answered_us, self.status) {
            (Some(_), _) => "completed",
            (None, Some(486 | 600 | 603)) => "rejected",
            (None, Some(408 | 480 | 487)) => "no_answer",
            (None, Some(_)) => "failed",
            (None, None) => "cancelled",
        }
    }
}

impl Drop for LegTrace {
    fn drop(&mut self) {
        let mut fields = json!({
            "leg": self.leg,
            "leg_kind": self.kind,
            "peer": self.peer,
            "sip_call_id": self.sip_call_id,
            "started_us": self.started_us,
            "answered_us": self.answered_us,
            "status": self.status,
            "end_reason": self.reason(),
        });
        if self.kind == "agent" {
            fields["agent"] = self.peer.clone().into();
        }
        self.events
            .call_fact(self.call.0, "leg_ended", None, fields);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callers_identity_is_kept_without_the_dialog_tag() {
        assert_eq!(
            without_tag("\"Rossi\" <sip:+39055123@10.0.0.1>;tag=abc"),
            "\"Rossi\" <sip:+39055123@10.0.0.1>"
        );
        assert_eq!(
            without_tag("<sip:100@pbx>;x-id=7;TAG=9;y=2"),
            "<sip:100@pbx>;x-id=7;y=2"
        );
        assert_eq!(without_tag("sip:anon@x"), "sip:anon@x");
    }
}
