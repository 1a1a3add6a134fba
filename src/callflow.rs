//! The call flow: one task per trunk call ties the trunk leg, the ACD and an agent leg.
//!
//! ```text
//! trunk INVITE ─► answer 200 (SDP) ─► comfort stream ─► CallArrived ─► ACD
//!          ACD ─► Ring ─► INVITE agent ─► 180 … 200 ─► OfferAnswered ─► ACD
//!          ACD ─► CallConnected ─► bridge RTP
//!     BYE either side ─► Hangup ─► ACD (abandon while waiting, completion once talking)
//! ```
//! The ACD decides; a leg only reports. An agent that answers after the ACD withdrew the
//! offer (ring timeout) gets a BYE, not the caller.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use amico_core::{AgentId, CallId, Command, Event, Input, OfferFailure, Output, QueueId};
use amico_media::sdp::{self, SdpSession};
use amico_media::{
    Codec, Leg as MediaLeg, MediaCounters, MediaEvent, MediaSession, PortPool, RemoteMedia,
    RtpSocket, SessionConfig,
};
use amico_sip::{ClientLeg, IncomingCall, LegEvent, SipEdge};
use dashmap::DashMap;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::runner::AcdHandle;

/// Codecs we answer and offer with, in our order of preference.
const CODECS: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

/// What the ACD tells one call.
#[derive(Debug)]
enum CallCommand {
    Ring(AgentId),
    StopRinging(AgentId),
    Connected(AgentId),
    Disconnect,
}

/// Everything a call task needs, shared.
pub(crate) struct Calls {
    acd: AcdHandle,
    edge: Arc<SipEdge>,
    ports: Arc<PortPool>,
    media: Arc<MediaCounters>,
    session: SessionConfig,
    live: DashMap<CallId, mpsc::UnboundedSender<CallCommand>>,
    queues: HashMap<String, QueueId>,
    /// SIP username of each agent, by id.
    usernames: Vec<String>,
    next_call: AtomicU64,
}

impl Calls {
    pub(crate) fn new(
        acd: AcdHandle,
        edge: Arc<SipEdge>,
        ports: Arc<PortPool>,
        media: Arc<MediaCounters>,
        session: SessionConfig,
        queues: HashMap<String, QueueId>,
        usernames: Vec<String>,
    ) -> Arc<Calls> {
        Arc::new(Calls {
            acd,
            edge,
            ports,
            media,
            session,
            live: DashMap::new(),
            queues,
            usernames,
            next_call: AtomicU64::new(1),
        })
    }

    /// Calls in progress.
    pub(crate) fn active(&self) -> usize {
        self.live.len()
    }

    /// Routes the ACD's outputs to the calls they concern.
    pub(crate) async fn route(self: Arc<Self>, mut outputs: mpsc::UnboundedReceiver<Output>) {
        while let Some(output) = outputs.recv().await {
            let (call, command) = match output {
                Output::Command(Command::Ring { call, agent, .. }) => {
                    (call, CallCommand::Ring(agent))
                }
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
                Output::Event(event) => {
                    debug!(?event, "acd");
                    continue;
                }
            };
            if let Some(sender) = self.live.get(&call) {
                sender.send(command).ok();
            }
        }
    }

    /// Takes an admitted trunk call and runs it to its end.
    pub(crate) fn accept(self: &Arc<Self>, call: IncomingCall) {
        let id = CallId(self.next_call.fetch_add(1, Ordering::Relaxed));
        let (sender, commands) = mpsc::unbounded_channel();
        self.live.insert(id, sender);
        let calls = self.clone();
        tokio::spawn(async move {
            let queue = calls.queues.get(&call.queue).copied();
            match queue {
                Some(queue) => CallTask::run(calls.clone(), id, queue, call, commands).await,
                None => warn!(queue = %call.queue, "a DID maps to a queue the ACD does not have"),
            }
            calls.live.remove(&id);
        });
    }
}

/// The agent side of a call while it rings or talks.
struct AgentSide {
    agent: AgentId,
    leg: ClientLeg,
    socket: Option<RtpSocket>,
    sdp: SdpSession,
    local: std::net::SocketAddr,
    remote: Option<RemoteMedia>,
    /// The phone answered; waiting for the ACD to confirm the connection.
    answered: bool,
    connected: bool,
}

struct CallTask {
    calls: Arc<Calls>,
    id: CallId,
    media: MediaSession,
    media_events: mpsc::Receiver<MediaEvent>,
    caller_format: RemoteMedia,
    from: String,
    agent: Option<AgentSide>,
}

impl CallTask {
    async fn run(
        calls: Arc<Calls>,
        id: CallId,
        queue: QueueId,
        call: IncomingCall,
        commands: mpsc::UnboundedReceiver<CallCommand>,
    ) {
        let IncomingCall {
            leg,
            offer,
            from,
            did,
            trunk,
            source,
            ..
        } = call;
        let socket = match calls.ports.allocate() {
            Ok(socket) => socket,
            Err(error) => {
                warn!(%error, "no RTP port for a trunk call");
                leg.reject(503).ok();
                return;
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
                return;
            }
        };
        let session = SdpSession::new(rand_session_id());
        let (answer, caller_format) = match sdp::answer(&offer, local, &CODECS, &session) {
            Ok(answer) => answer,
            Err(error) => {
                info!(%source, %error, "no common codec with the trunk");
                leg.reject(488).ok();
                return;
            }
        };
        if let Err(error) = leg.answer(answer) {
            warn!(%error, "could not answer a trunk call");
            return;
        }
        let (media, media_events) =
            MediaSession::start(socket, caller_format, calls.session, calls.media.clone());
        info!(%id, %trunk, %did, %from, "call answered and queued");
        calls.acd.send(Input::CallArrived {
            call: id,
            queue,
            priority: 0,
        });
        let mut task = CallTask {
            calls,
            id,
            media,
            media_events,
            caller_format,
            from,
            agent: None,
        };
        task.serve(leg, session, commands).await;
    }

    async fn serve(
        &mut self,
        mut trunk: amico_sip::ServerLeg,
        mut trunk_sdp: SdpSession,
        mut commands: mpsc::UnboundedReceiver<CallCommand>,
    ) {
        loop {
            tokio::select! {
                event = trunk.next() => match event {
                    None | Some(LegEvent::Ended(_)) => {
                        info!(call = %self.id, "caller hung up");
                        self.end(&mut trunk).await;
                        return;
                    }
                    Some(LegEvent::Reoffer { sdp, responder }) => {
                        match reanswer(&sdp, self.media.caller_local_addr(), &mut trunk_sdp) {
                            Some((answer, remote)) => {
                                self.media.update_remote(MediaLeg::Caller, remote);
                                responder.answer(answer).await;
                            }
                            None => responder.reject(488).await,
                        }
                    }
                    Some(_) => {}
                },
                command = commands.recv() => match command {
                    Some(CallCommand::Ring(agent)) => self.ring(agent),
                    Some(CallCommand::StopRinging(agent)) => self.stop_ringing(agent).await,
                    Some(CallCommand::Connected(agent)) => self.connected(agent),
                    Some(CallCommand::Disconnect) | None => {
                        self.end(&mut trunk).await;
                        return;
                    }
                },
                event = next_agent_event(&mut self.agent) => {
                    if self.agent_event(event).await {
                        self.end(&mut trunk).await;
                        return;
                    }
                }
                event = self.media_events.recv() => match event {
                    Some(MediaEvent::RtpTimeout { leg }) => {
                        warn!(call = %self.id, ?leg, "no RTP: the call is ended");
                        self.end(&mut trunk).await;
                        return;
                    }
                    Some(_) => {}
                    None => {
                        self.end(&mut trunk).await;
                        return;
                    }
                },
            }
        }
    }

    fn ring(&mut self, agent: AgentId) {
        let Some(username) = self.calls.usernames.get(agent.index()).cloned() else {
            return;
        };
        let socket = match self.calls.ports.allocate() {
            Ok(socket) => socket,
            Err(error) => {
                warn!(%error, "no RTP port for an agent leg");
                self.offer_failed(agent, OfferFailure::Unreachable);
                return;
            }
        };
        let local = socket.local_addr();
        // Offer the caller's codec first: both legs then agree and no transcoding happens.
        let mut codecs = vec![self.caller_format.format.codec];
        codecs.extend(
            CODECS
                .iter()
                .copied()
                .filter(|c| *c != self.caller_format.format.codec),
        );
        let session = SdpSession::new(rand_session_id());
        let offer = sdp::offer(local, &codecs, Some(101), &session);
        match self.calls.edge.invite_agent(&username, &self.from, offer) {
            Ok(leg) => {
                info!(call = %self.id, %agent, %username, "ringing agent");
                self.agent = Some(AgentSide {
                    agent,
                    leg,
                    socket: Some(socket),
                    sdp: session,
                    local,
                    remote: None,
                    answered: false,
                    connected: false,
                });
            }
            Err(error) => {
                info!(call = %self.id, %username, %error, "agent unreachable");
                self.offer_failed(agent, OfferFailure::Unreachable);
            }
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
        if let (Some(socket), Some(remote)) = (side.socket.take(), side.remote) {
            self.media.bridge(socket, remote);
        }
    }

    /// Handles an agent-leg event; true when the call is over.
    async fn agent_event(&mut self, event: Option<LegEvent>) -> bool {
        let Some(side) = self.agent.as_mut() else {
            return false;
        };
        let (id, agent) = (self.id, side.agent);
        match event {
            Some(LegEvent::Ringing) => false,
            Some(LegEvent::Answered(body)) => {
                let remote = std::str::from_utf8(&body)
                    .ok()
                    .and_then(|text| sdp::parse(text).ok())
                    .and_then(|answer| {
                        let offered: Vec<Codec> = CODECS.to_vec();
                        sdp::accept_answer(&answer, &offered).ok()
                    });
                match remote {
                    Some(remote) => {
                        side.remote = Some(remote);
                        side.answered = true;
                        self.calls
                            .acd
                            .send(Input::OfferAnswered { call: id, agent });
                    }
                    None => {
                        info!(call = %id, %agent, "agent answered with unusable SDP");
                        side.leg.hangup().await;
                        self.offer_failed(agent, OfferFailure::Unreachable);
                    }
                }
                false
            }
            Some(LegEvent::Failed(status)) => {
                let reason = match status {
                    486 | 600 | 603 => OfferFailure::Rejected,
                    408 | 480 | 487 => OfferFailure::NoAnswer,
                    _ => OfferFailure::Unreachable,
                };
                info!(call = %id, %agent, status, "agent did not take the call");
                self.offer_failed(agent, reason);
                false
            }
            Some(LegEvent::Reoffer { sdp, responder }) => {
                match reanswer(&sdp, side.local, &mut side.sdp) {
                    Some((answer, remote)) => {
                        if side.connected {
                            self.media.update_remote(MediaLeg::Agent, remote);
                        }
                        side.remote = Some(remote);
                        responder.answer(answer).await;
                    }
                    None => responder.reject(488).await,
                }
                false
            }
            // Once answered, the agent's BYE ends the call (the ACD completes it).
            Some(LegEvent::Ended(_)) | None if side.connected || side.answered => {
                info!(call = %id, %agent, "agent hung up");
                self.agent = None;
                true
            }
            Some(LegEvent::Ended(_)) | None => {
                self.offer_failed(agent, OfferFailure::Unreachable);
                false
            }
            Some(LegEvent::Confirmed | LegEvent::Info { .. }) => false,
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

    /// Ends everything: tells the ACD first (a BYE to a dead phone may take 32 s to time
    /// out), stops the media, and ends both legs at once.
    async fn end(&mut self, trunk: &mut amico_sip::ServerLeg) {
        // The ACD knows whether this was an abandon or the end of a conversation.
        self.calls.acd.send(Input::Hangup { call: self.id });
        self.media.stop();
        let agent = self.agent.take();
        let agent_leg = async {
            if let Some(mut side) = agent {
                side.leg.hangup().await;
            }
        };
        tokio::join!(agent_leg, trunk.hangup());
    }
}

async fn next_agent_event(agent: &mut Option<AgentSide>) -> Option<LegEvent> {
    match agent {
        Some(side) => side.leg.next().await,
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

fn rand_session_id() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now()) >> 1
}
