//! The SIP edge: listens on UDP and TCP, answers what it can alone (OPTIONS, REGISTER,
//! unsupported methods, untrusted or unknown calls) and hands admitted trunk calls to the
//! application's [`CallHandler`] as [`IncomingCall`]s. Agent legs are placed with
//! [`SipEdge::invite_agent`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use ipnet::IpNet;
use rsipstack::EndpointBuilder;
use rsipstack::dialog::DialogId;
use rsipstack::dialog::dialog::{Dialog, DialogState, DialogStateReceiver, TerminatedReason};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::prelude::*;
use rsipstack::sip::{Header, Method, SipMessage, StatusCode};
use rsipstack::transaction::Endpoint;
use rsipstack::transaction::endpoint::EndpointOption;
use rsipstack::transaction::endpoint::MessageInspector;
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::transaction::{Transaction, TransactionEvent};
use rsipstack::transport::tcp::TcpConnection;
use rsipstack::transport::tls::{ReloadableCertResolver, TlsConfig, TlsConnection};
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{SipAddr, SipConnection, TransportLayer};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::counters::SipCounters;
use crate::digest::{Account, Algorithm, Credentials, DigestAuth, Scope, Verdict, unix_now};
use crate::guard::GuardedSocket;
use crate::registrar::{
    Binding, RegisterOutcome, RegisterRequest, Registrar, RegistrarConfig, Transport,
};
use crate::security::{Admission, ConnectionSlot, Limited, Security, SecurityConfig};
use crate::strict::Limits;
use crate::{ALLOWED_METHODS, SipError};

/// A PBX trunk allowed to send calls.
#[derive(Clone, Debug, Default)]
pub struct Trunk {
    /// Its name, for logs and statistics.
    pub name: String,
    /// Source addresses trusted without authentication.
    pub sources: Vec<IpNet>,
    /// Digest credentials a trunk from elsewhere must answer with (username, password).
    pub credentials: Option<(String, String)>,
    /// Dialled number (Request-URI user) → queue name.
    pub dids: HashMap<String, String>,
    /// Where calls out through this trunk go (queued callbacks); none: no callbacks.
    pub gateway: Option<Gateway>,
    /// Calls in progress from this trunk at most; the next gets 503 with Retry-After.
    pub max_calls: Option<u32>,
    /// The digest algorithms this trunk's credentials are checked with, in order; `None`:
    /// the edge's default.
    pub algorithms: Option<Vec<Algorithm>>,
}

/// Where calls out through a trunk go: the PBX's address and the transport to reach it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gateway {
    /// The address.
    pub address: SocketAddr,
    /// UDP, TCP, or TLS (then its certificate is verified against the edge's
    /// `TlsSettings::ca_certificates`, with the address as the name).
    pub transport: Transport,
}

impl std::fmt::Display for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} over {:?}", self.address, self.transport)
    }
}

/// SIP over TLS (RFC 3261 §26): where and with which certificate.
#[derive(Clone)]
pub struct TlsSettings {
    /// The TLS listener (port 0: an ephemeral one).
    pub listen: SocketAddr,
    /// The certificate chain, PEM, leaf first.
    pub certificate: Vec<u8>,
    /// Its private key, PEM (PKCS#8 or PKCS#1).
    pub private_key: Vec<u8>,
    /// The certificates that TLS gateways' certificates must chain to, PEM; none: no
    /// TLS gateway can be verified (calls to one fail).
    pub ca_certificates: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("TlsSettings")
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

/// How the edge runs.
#[derive(Clone, Debug)]
pub struct EdgeConfig {
    /// UDP and TCP listen on this address (port 0: an ephemeral port, the same for both).
    pub listen: SocketAddr,
    /// SIP over TLS, if enabled.
    pub tls: Option<TlsSettings>,
    /// Digest realm.
    pub realm: String,
    /// Agents' accounts by SIP username.
    pub agents: HashMap<String, Account>,
    /// Trunks.
    pub trunks: Vec<Trunk>,
    /// Registration limits.
    pub registrar: RegistrarConfig,
    /// How long a digest nonce stays valid.
    pub nonce_lifetime: Duration,
    /// How often registered phones are probed with OPTIONS; `None` disables probing.
    pub probe_interval: Option<Duration>,
    /// How long a probe waits for any answer before the phone is declared gone.
    pub probe_timeout: Duration,
    /// Rates, failure throttles and bans.
    pub security: SecurityConfig,
    /// Bounds on a request's headers and body.
    pub limits: Limits,
    /// The User-Agent of our requests and the Server of our responses; empty: none.
    pub user_agent: String,
    /// The host part of the Call-IDs we make (`RANDOM@host`).
    pub call_id_host: String,
    /// How long a registration made over a WebSocket outlives the WebSocket (a page
    /// reload registers again within it, and the agent keeps its place).
    pub websocket_grace: Duration,
    /// The receive buffer asked of the kernel for the SIP UDP socket, in bytes: what a
    /// burst of datagrams waits in while the stack is busy. Linux grants up to
    /// `net.core.rmem_max`, and a smaller grant is logged.
    pub udp_receive_buffer: usize,
}

/// What the edge reports to the application.
pub enum EdgeEvent {
    /// An agent's phone registered (or refreshed; `new` is false then).
    AgentRegistered {
        /// Its SIP username.
        user: String,
        /// Where it can be reached.
        binding: Binding,
        /// False for a refresh.
        new: bool,
    },
    /// An agent's phone is gone.
    AgentUnregistered {
        /// Its SIP username.
        user: String,
        /// Why.
        reason: Unregistered,
    },
}

/// Why a registration ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unregistered {
    /// The phone removed it (Expires: 0).
    Removed,
    /// It lapsed.
    Expired,
    /// The phone stopped answering OPTIONS probes.
    Unreachable,
    /// Its WebSocket closed and it did not register again within the grace period.
    ConnectionClosed,
}

/// An admitted trunk call, not yet answered.
pub struct IncomingCall {
    /// The trunk it came over.
    pub trunk: String,
    /// The dialled number.
    pub did: String,
    /// The queue the number maps to.
    pub queue: String,
    /// The From header value, as received (the caller's identity, never re-escaped).
    pub from: String,
    /// The SIP Call-ID.
    pub call_id: String,
    /// The SDP offer (may be empty: offer-less INVITE).
    pub offer: Vec<u8>,
    /// Where it came from.
    pub source: SocketAddr,
    /// The leg, to answer and end.
    pub leg: ServerLeg,
}

/// What happens on a leg after the application took it.
pub enum LegEvent {
    /// The agent's phone rings (180/183).
    Ringing,
    /// The agent answered; its SDP answer.
    Answered(Vec<u8>),
    /// The call could not be placed or was refused: the final status.
    Failed(u16),
    /// Our 200 was acknowledged: the dialog is confirmed.
    Confirmed,
    /// The remote side asks to change the session (re-INVITE or UPDATE) with this SDP
    /// (may be empty); answer with [`Responder::answer`].
    Reoffer {
        /// The new offer.
        sdp: Vec<u8>,
        /// Where the answer goes.
        responder: Responder,
    },
    /// An INFO request (DTMF relay, RFC 2976); already answered 200.
    Info {
        /// Its content type.
        content_type: String,
        /// Its body.
        body: Vec<u8>,
    },
    /// The leg ended.
    Ended(EndReason),
}

/// Why a leg ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// The remote side sent BYE.
    RemoteBye,
    /// The caller cancelled before the answer.
    Cancelled,
    /// We ended it.
    LocalHangup,
    /// No ACK, no response, transport failure.
    Timeout,
    /// Anything else, with the status if one was involved.
    Other(u16),
}

/// Answers an in-dialog request.
pub struct Responder {
    handle: rsipstack::dialog::dialog::TransactionHandle,
}

impl Responder {
    /// 200 with an SDP body.
    pub async fn answer(self, sdp: String) {
        let headers = vec![Header::ContentType("application/sdp".into())];
        if let Err(error) = self
            .handle
            .respond(StatusCode::OK, Some(headers), Some(sdp.into_bytes()))
            .await
        {
            warn!(%error, "could not answer a re-INVITE");
        }
    }

    /// A failure status (488 when the new offer cannot be accepted).
    pub async fn reject(self, status: u16) {
        if let Err(error) = self.handle.reply(StatusCode::from(status)).await {
            warn!(%error, "could not refuse a re-INVITE");
        }
    }
}

/// One INVITE dialog and the stream of its state changes.
struct Leg {
    dialog: InviteDialog,
    states: DialogStateReceiver,
    dialog_layer: Arc<DialogLayer>,
    ended: bool,
    /// The dialog's raw identities, forgotten a while after the leg is dropped (only its
    /// Drop matters).
    _identity: IdentityGuard,
}

/// Forgets a dialog's identities once its last retransmissions are over (64 × T1,
/// RFC 3261 §17.1.1.2).
struct IdentityGuard {
    relay: Arc<IdentityRelay>,
    call_id: Arc<str>,
}

impl Drop for IdentityGuard {
    fn drop(&mut self) {
        self.relay
            .forget_later(std::mem::take(&mut self.call_id), std::time::Instant::now());
    }
}

impl Leg {
    /// The next event the application should hear about.
    async fn next(&mut self) -> Option<LegEvent> {
        while !self.ended {
            let state = self.states.recv().await?;
            match state {
                DialogState::Early(..) => return Some(LegEvent::Ringing),
                DialogState::Confirmed(..) => return Some(LegEvent::Confirmed),
                DialogState::Updated(_, request, handle) => {
                    return Some(LegEvent::Reoffer {
                        sdp: request.body,
                        responder: Responder { handle },
                    });
                }
                DialogState::Info(_, request, handle) => {
                    let content_type = request
                        .headers
                        .iter()
                        .find(|h| h.name().eq_ignore_ascii_case("content-type"))
                        .map(|h| h.value().to_owned())
                        .unwrap_or_default();
                    handle.reply(StatusCode::OK).await.ok();
                    return Some(LegEvent::Info {
                        content_type,
                        body: request.body,
                    });
                }
                DialogState::Options(_, _, handle) => {
                    handle.reply(StatusCode::OK).await.ok();
                }
                DialogState::Notify(_, _, handle)
                | DialogState::Refer(_, _, handle)
                | DialogState::Message(_, _, handle)
                | DialogState::Publish(_, _, handle) => {
                    handle.reply(StatusCode::MethodNotAllowed).await.ok();
                }
                DialogState::Terminated(id, reason) => {
                    self.ended = true;
                    self.dialog_layer.remove_dialog(&id);
                    return Some(LegEvent::Ended(end_reason(&reason)));
                }
                DialogState::Calling(_) | DialogState::Trying(_) | DialogState::WaitAck(..) => {}
            }
        }
        None
    }
}

fn end_reason(reason: &TerminatedReason) -> EndReason {
    match reason {
        TerminatedReason::UacBye | TerminatedReason::UasBye => EndReason::RemoteBye,
        TerminatedReason::UacCancel => EndReason::Cancelled,
        TerminatedReason::Timeout => EndReason::Timeout,
        TerminatedReason::UacBusy | TerminatedReason::UasBusy => EndReason::Other(486),
        TerminatedReason::UasDecline => EndReason::Other(603),
        TerminatedReason::ProxyAuthRequired => EndReason::Other(407),
        TerminatedReason::ProxyError(code)
        | TerminatedReason::UacOther(code)
        | TerminatedReason::UasOther(code) => EndReason::Other(u16::from(code.clone())),
    }
}

/// The trunk side of a call: we are the UAS.
pub struct ServerLeg {
    leg: Leg,
    /// The call's place in its trunk's concurrent-call count, given back on drop.
    _slot: CallSlot,
}

/// One call counted against its trunk's `max_calls`; dropping it frees the place.
struct CallSlot(Arc<AtomicU32>);

impl CallSlot {
    /// Takes a place in `count` if it holds fewer than `max` (no limit: always).
    fn take(count: &Arc<AtomicU32>, max: Option<u32>) -> Option<CallSlot> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                max.is_none_or(|max| n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| CallSlot(count.clone()))
    }
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ServerLeg {
    /// The dialog's SIP Call-ID.
    pub fn call_id(&self) -> String {
        self.leg.dialog.id().call_id
    }

    /// 180 Ringing.
    pub fn ringing(&self) -> Result<(), SipError> {
        self.leg.dialog.ringing(None, None).map_err(SipError::stack)
    }

    /// 200 with our SDP answer.
    pub fn answer(&self, sdp: String) -> Result<(), SipError> {
        let headers = vec![Header::ContentType("application/sdp".into())];
        self.leg
            .dialog
            .accept(Some(headers), Some(sdp.into_bytes()))
            .map_err(SipError::stack)
    }

    /// A final failure status (488, 486, 503...).
    pub fn reject(&self, status: u16) -> Result<(), SipError> {
        self.leg
            .dialog
            .reject(Some(StatusCode::from(status)), None)
            .map_err(SipError::stack)
    }

    /// BYE (or nothing if already ended).
    pub async fn hangup(&mut self) {
        if !self.leg.ended {
            if let Err(error) = self.leg.dialog.bye().await {
                debug!(%error, "BYE to the trunk failed");
            }
            self.leg.ended = true;
            self.leg.dialog_layer.remove_dialog(&self.leg.dialog.id());
        }
    }

    /// The next event; `None` once the leg ended and everything was told.
    pub async fn next(&mut self) -> Option<LegEvent> {
        self.leg.next().await
    }

    /// Whether the leg ended.
    pub fn is_ended(&self) -> bool {
        self.leg.ended
    }
}

/// The background INVITE transaction of an agent leg: the final response, when it comes.
type InviteOutcome =
    tokio::task::JoinHandle<rsipstack::Result<(DialogId, Option<rsipstack::sip::Response>)>>;

/// The agent side of a call: we are the UAC.
pub struct ClientLeg {
    leg: Leg,
    outcome: Option<InviteOutcome>,
    answered: bool,
}

impl ClientLeg {
    /// The dialog's SIP Call-ID.
    pub fn call_id(&self) -> String {
        self.leg.dialog.id().call_id
    }

    /// The next event; `None` once ended.
    pub async fn next(&mut self) -> Option<LegEvent> {
        loop {
            if let Some(outcome) = self.outcome.as_mut() {
                tokio::select! {
                    result = outcome => {
                        self.outcome = None;
                        match result {
                            Ok(Ok((_, Some(response)))) if response.status_code.kind() == rsipstack::sip::StatusCodeKind::Successful => {
                                self.answered = true;
                                self.end_accepted_invite();
                                return Some(LegEvent::Answered(response.body));
                            }
                            Ok(Ok((_, Some(response)))) => {
                                self.leg.ended = true;
                                return Some(LegEvent::Failed(u16::from(response.status_code)));
                            }
                            Ok(Ok((_, None))) => {
                                self.leg.ended = true;
                                return Some(LegEvent::Failed(408));
                            }
                            Ok(Err(error)) => {
                                debug!(%error, "agent INVITE failed");
                                self.leg.ended = true;
                                return Some(LegEvent::Failed(error_status(&error)));
                            }
                            Err(_) => {
                                self.leg.ended = true;
                                return Some(LegEvent::Failed(500));
                            }
                        }
                    }
                    event = self.leg.next() => {
                        match event {
                            // The final answer comes from the transaction; skip the dialog's
                            // view of it.
                            Some(LegEvent::Confirmed) => continue,
                            Some(LegEvent::Ended(_)) if !self.answered => continue,
                            other => return other,
                        }
                    }
                }
            }
            return match self.leg.next().await {
                Some(LegEvent::Confirmed) => continue,
                other => other,
            };
        }
    }

    /// Ends the answered INVITE's client transaction now rather than at Timer M, keeping
    /// the Timer M window itself in a smaller form.
    ///
    /// RFC 6026 §7.2: after a 2xx the transaction stays Accepted for 64 × T1 (32 s over
    /// UDP) so that retransmissions of the 2xx are re-ACKed (RFC 3261 §13.2.2.4) and forked
    /// 2xx are seen. rsipstack's `do_invite_async` drains it for that long from a task that
    /// also holds the whole dialog, so each answered agent INVITE kept about 30 KB for 32 s
    /// after the answer, however short the call: the transaction's event channel (11 KB),
    /// the dialog's state channel (10 KB), the task (5.5 KB) and the requests (heaptrack,
    /// BENCHMARKS.md "Calls under load"). Told to terminate, the transaction is dropped
    /// and leaves the endpoint a finished entry of its key and its ACK for the same 64 × T1:
    /// a retransmitted 2xx is still ACKed again, from that entry. What is lost is the
    /// forked 2xx of another branch (a new To tag), which would be ACKed but not sent a
    /// BYE; an agent INVITE goes to the one contact its phone registered here, not through
    /// a forking proxy.
    fn end_accepted_invite(&self) {
        let request = self.leg.dialog.initial_request();
        let Ok(key) = TransactionKey::from_request(&request, TransactionRole::Client) else {
            return;
        };
        if let Some(transaction) = self.leg.dialog_layer.endpoint.transactions.get(&key) {
            transaction.send(TransactionEvent::Terminate(key)).ok();
        }
    }

    /// CANCEL before the answer, BYE after.
    pub async fn hangup(&mut self) {
        if self.leg.ended {
            return;
        }
        let result = if self.answered {
            self.leg.dialog.bye().await
        } else {
            self.leg.dialog.cancel().await
        };
        if let Err(error) = result {
            debug!(%error, "ending the agent leg failed");
        }
        if self.answered {
            self.leg.ended = true;
            self.leg.dialog_layer.remove_dialog(&self.leg.dialog.id());
        }
    }

    /// Whether the leg ended.
    pub fn is_ended(&self) -> bool {
        self.leg.ended
    }
}

fn error_status(error: &rsipstack::Error) -> u16 {
    match error {
        rsipstack::Error::DialogError(_, _, code) => u16::from(code.clone()),
        rsipstack::Error::TransactionError(..) => 408,
        _ => 503,
    }
}

/// Keeps the identities in our dialogs exactly as the trunk wrote them. The stack's typed
/// URIs re-escape `%` (`%2B` would leave as `%252B`), so before a message leaves, the
/// From and To of the dialogs we know are swapped for the raw text, keeping the tags the
/// stack chose.
#[derive(Default)]
struct IdentityRelay {
    /// Call-ID → our side's and the other side's identity, without tags. Shared, so that
    /// each message sent takes it without copying its text.
    identities: DashMap<Arc<str>, Arc<Identity>>,
    /// The Call-IDs of ended dialogs with the moment each is forgotten, oldest first (all
    /// wait the same time). A queue swept each second, rather than a sleeping task for each
    /// leg: at 1,000 calls/s that was 64,000 tasks alive at any time. The Call-ID's text is
    /// the table's key, shared: at 1,000 calls/s some 64,000 dialogs are remembered.
    forgetting: std::sync::Mutex<std::collections::VecDeque<(std::time::Instant, Arc<str>)>>,
}

impl IdentityRelay {
    /// How long an ended dialog's identities are kept: its last retransmissions (64 × T1,
    /// RFC 3261 §17.1.1.2) still leave with them.
    const KEPT: Duration = Duration::from_secs(32);

    /// Remembers a dialog's identities until [`forget_later`](Self::forget_later) and the
    /// sweep after it; the key to forget it by.
    fn remember(&self, call_id: &str, identity: Identity) -> Arc<str> {
        let call_id: Arc<str> = Arc::from(call_id);
        self.identities
            .insert(Arc::clone(&call_id), Arc::new(identity));
        call_id
    }

    fn forget_later(&self, call_id: Arc<str>, now: std::time::Instant) {
        if let Ok(mut queue) = self.forgetting.lock() {
            queue.push_back((now + Self::KEPT, call_id));
        }
    }

    /// Forgets the identities whose time is up; the number forgotten.
    fn sweep(&self, now: std::time::Instant) -> usize {
        let mut due = Vec::new();
        if let Ok(mut queue) = self.forgetting.lock() {
            while queue.front().is_some_and(|(at, _)| *at <= now) {
                due.extend(queue.pop_front().map(|(_, call_id)| call_id));
            }
        }
        for call_id in &due {
            self.identities.remove(call_id);
        }
        due.len()
    }
}

/// The two ends of a dialog, as raw header values without tags.
#[derive(Clone, Debug)]
struct Identity {
    /// Our end: the From of our requests and the To of our responses.
    local: String,
    /// The other end: the To of our requests and the From of our responses, if its text
    /// must be kept (None: the stack's rendering is fine).
    remote: Option<String>,
}

/// The inspector handed to the stack: it shares the identity table with the edge, and
/// names us as configured.
struct IdentityInspector {
    relay: Arc<IdentityRelay>,
    /// Our User-Agent (requests) and Server (responses); empty: neither.
    user_agent: String,
}

/// `value` with the tag of `current`, if it has one.
fn with_tag_of(value: &str, current: &str) -> String {
    match current
        .split(";tag=")
        .nth(1)
        .map(|t| t.split(';').next().unwrap_or(t))
    {
        Some(tag) => format!("{value};tag={tag}"),
        None => value.to_owned(),
    }
}

impl MessageInspector for IdentityInspector {
    fn before_send(&self, mut msg: SipMessage, _dest: Option<&SipAddr>) -> SipMessage {
        let (headers, is_request) = match &mut msg {
            SipMessage::Request(request) => (&mut request.headers, true),
            SipMessage::Response(response) => (&mut response.headers, false),
        };
        // The stack writes User-Agent everywhere; a response names its sender in Server
        // (RFC 3261 §20.35, §20.41).
        if self.user_agent.is_empty() {
            headers.retain(|h| !matches!(h, Header::UserAgent(_)));
        } else if !is_request {
            for header in headers.iter_mut() {
                if matches!(header, Header::UserAgent(_)) {
                    *header = Header::Server(self.user_agent.clone().into());
                }
            }
        }
        let identity = headers.iter().find_map(|h| match h {
            Header::CallId(id) => self
                .relay
                .identities
                .get(id.value())
                .map(|i| Arc::clone(&i)),
            _ => None,
        });
        let Some(identity) = identity else {
            return msg;
        };
        // RFC 3261 §12.1: a request's From is our end, a response's To is our end.
        for header in headers.iter_mut() {
            match header {
                Header::From(from) if is_request => {
                    *header = Header::From(with_tag_of(&identity.local, from.value()).into());
                }
                Header::To(to) if !is_request => {
                    *header = Header::To(with_tag_of(&identity.local, to.value()).into());
                }
                Header::To(to) if is_request => {
                    if let Some(remote) = &identity.remote {
                        *header = Header::To(with_tag_of(remote, to.value()).into());
                    }
                }
                Header::From(from) if !is_request => {
                    if let Some(remote) = &identity.remote {
                        *header = Header::From(with_tag_of(remote, from.value()).into());
                    }
                }
                _ => {}
            }
        }
        msg
    }

    fn after_received(&self, msg: SipMessage, _from: Option<&SipAddr>) -> SipMessage {
        msg
    }
}

/// Removes the `tag` parameter from a From value, leaving everything else as written.
fn without_tag(from: &str) -> String {
    let mut out = String::new();
    let (head, params) = match from.rfind('>') {
        Some(close) => (&from[..=close], &from[close + 1..]),
        None => (
            from.split(';').next().unwrap_or(from),
            from.get(from.find(';').unwrap_or(from.len())..)
                .unwrap_or(""),
        ),
    };
    out.push_str(head);
    for param in params.split(';').filter(|p| !p.trim().is_empty()) {
        if !param.trim().to_ascii_lowercase().starts_with("tag=") {
            out.push(';');
            out.push_str(param.trim());
        }
    }
    out
}

/// The running SIP edge.
pub struct SipEdge {
    endpoint: Endpoint,
    dialog_layer: Arc<DialogLayer>,
    registrar: Registrar,
    /// Replaced whole on a configuration reload.
    trunks: arc_swap::ArcSwap<Vec<Arc<Trunk>>>,
    counters: Arc<SipCounters>,
    identities: Arc<IdentityRelay>,
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    /// The TCP listener, bound with UDP's port, until `serve` accepts on it.
    tcp_listener: std::sync::Mutex<Option<std::net::TcpListener>>,
    cancel: CancellationToken,
    probe_interval: Option<Duration>,
    probe_timeout: Duration,
    /// Phones with a probe in flight.
    probing: DashMap<String, ()>,
    /// Seeds each phone's place in the probe interval, so that probes spread over it.
    probe_phase: std::hash::RandomState,
    security: Arc<Security>,
    limits: Limits,
    /// Digest algorithms offered by default (agents' and trunks' own lists aside).
    algorithms: Vec<Algorithm>,
    /// Calls in progress per trunk name.
    trunk_calls: DashMap<String, Arc<AtomicU32>>,
    call_id_host: String,
    tls: Option<TlsEdge>,
    /// Where browsers reach us over WebSocket (the HTTP listener), once known.
    websocket_addr: std::sync::OnceLock<SocketAddr>,
    /// Says whether the server can take one more call, and if not when to try again.
    overload: std::sync::OnceLock<OverloadCheck>,
    /// Takes each admitted trunk call.
    calls: std::sync::OnceLock<CallHandler>,
    websocket_grace: Duration,
    /// WebSockets that closed, by the browser's address, for the serve loop.
    closed_websockets: mpsc::UnboundedSender<SocketAddr>,
    closed_websockets_rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<SocketAddr>>>,
}

impl SipEdge {
    /// Binds UDP, TCP and TLS and builds the stack. Nothing is served until
    /// [`SipEdge::serve`].
    pub async fn bind(
        config: EdgeConfig,
        counters: Arc<SipCounters>,
    ) -> Result<Arc<SipEdge>, SipError> {
        let cancel = CancellationToken::new();
        let (udp, tcp_listener) = bind_pair(config.listen)?;
        let tcp_addr = tcp_listener.local_addr().map_err(|source| SipError::Bind {
            addr: config.listen,
            source,
        })?;
        set_receive_buffer(&udp, config.udp_receive_buffer);
        let udp_addr = udp.local_addr().map_err(|source| SipError::Bind {
            addr: config.listen,
            source,
        })?;
        let security = Arc::new(Security::new(config.security.clone(), counters.clone()));
        let transport_layer = TransportLayer::new(cancel.clone());
        // A banned source's datagrams are dropped by the stack (TCP and TLS connections are
        // refused in `next_stream`).
        transport_layer.set_whitelist(BanList(security.clone()));
        let guarded: Arc<dyn rsipstack::platform::net::UdpSocket> =
            Arc::new(GuardedSocket::new(udp, counters.clone(), security.clone()));
        let udp = UdpConnection::from_socket(guarded, None, Some(cancel.child_token()))
            .await
            .map_err(SipError::stack)?;
        transport_layer.add_transport(udp.into());
        // TCP and TLS connections are accepted by the edge itself (`accept_tcp`,
        // `accept_tls`), not by the stack's listeners, so that each gets TCP_NODELAY.
        let tls = match &config.tls {
            Some(settings) => {
                let tls = TlsEdge::bind(settings)?;
                transport_layer.set_tls_config(client_tls(settings.ca_certificates.clone()));
                Some(tls)
            }
            None => None,
        };

        let identities = Arc::new(IdentityRelay::default());
        let mut builder = EndpointBuilder::new();
        builder
            .with_cancel_token(cancel.clone())
            .with_transport_layer(transport_layer)
            .with_user_agent(&config.user_agent)
            .with_option(EndpointOption {
                callid_suffix: Some(config.call_id_host.clone()),
                ..EndpointOption::default()
            })
            .with_inspector(Box::new(IdentityInspector {
                relay: identities.clone(),
                user_agent: config.user_agent.clone(),
            }))
            .with_allows(
                ALLOWED_METHODS
                    .iter()
                    .filter_map(|m| Method::try_from(*m).ok())
                    .collect(),
            );
        let endpoint = builder.build();
        let dialog_layer = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        let (probe_interval, probe_timeout) = (config.probe_interval, config.probe_timeout);
        let auth = DigestAuth::new(config.realm.clone(), config.nonce_lifetime);
        let algorithms = config.registrar.algorithms.clone();
        let registrar = Registrar::new(config.agents, auth, config.registrar);
        let (closed_websockets, closed_websockets_rx) = mpsc::unbounded_channel();
        Ok(Arc::new(SipEdge {
            endpoint,
            dialog_layer,
            registrar,
            trunks: arc_swap::ArcSwap::from_pointee(
                config.trunks.into_iter().map(Arc::new).collect(),
            ),
            counters,
            identities,
            udp_addr,
            tcp_addr,
            tcp_listener: std::sync::Mutex::new(Some(tcp_listener)),
            cancel,
            probe_interval,
            probe_timeout,
            probing: DashMap::new(),
            probe_phase: std::hash::RandomState::new(),
            security,
            limits: config.limits,
            algorithms,
            trunk_calls: DashMap::new(),
            call_id_host: config.call_id_host,
            tls,
            websocket_addr: std::sync::OnceLock::new(),
            overload: std::sync::OnceLock::new(),
            calls: std::sync::OnceLock::new(),
            websocket_grace: config.websocket_grace,
            closed_websockets,
            closed_websockets_rx: std::sync::Mutex::new(Some(closed_websockets_rx)),
        }))
    }

    /// Takes new agents' credentials and trunks (a configuration reload): calls in
    /// progress go on; new INVITEs and REGISTERs meet the new ones. Returns the agents whose
    /// registration was dropped because they are no longer configured.
    pub fn reconfigure(&self, agents: HashMap<String, Account>, trunks: Vec<Trunk>) -> Vec<String> {
        self.trunks
            .store(Arc::new(trunks.into_iter().map(Arc::new).collect()));
        self.registrar.set_accounts(agents)
    }

    /// Takes a new TLS certificate and key, and the certificates gateways are verified
    /// against (a configuration reload): new connections get them, connections already up
    /// keep theirs.
    pub async fn reload_tls(
        &self,
        certificate: Vec<u8>,
        private_key: Vec<u8>,
        ca_certificates: Option<Vec<u8>>,
    ) -> Result<(), SipError> {
        let Some(tls) = &self.tls else {
            return Err(SipError::Stack("TLS is not enabled".into()));
        };
        tls.certificate
            .reload(&certificate, &private_key)
            .map_err(SipError::stack)?;
        self.endpoint
            .inner
            .transport_layer
            .set_tls_config(client_tls(ca_certificates));
        Ok(())
    }

    /// A browser's WebSocket (RFC 7118), `None` if its address is banned. `local` is
    /// where it connected (the HTTP listener): our Contact towards browsers.
    pub async fn websocket(
        self: &Arc<Self>,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Option<crate::WebSocketFlow> {
        let slot = self.admit_connection(remote.ip())?;
        let _ = self.websocket_addr.set(local);
        match crate::WebSocketFlow::new(self.clone(), remote, slot).await {
            Ok(flow) => Some(flow),
            Err(error) => {
                warn!(%remote, %error, "WebSocket refused by the stack");
                None
            }
        }
    }

    pub(crate) fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    pub(crate) fn add_connection(&self, connection: rsipstack::transport::SipConnection) {
        self.endpoint
            .inner
            .transport_layer
            .add_connection(connection);
    }

    pub(crate) fn security(&self) -> &Security {
        &self.security
    }

    /// A browser's WebSocket closed: what registered over it ends after the grace period.
    pub(crate) fn websocket_closed(&self, remote: SocketAddr) {
        self.closed_websockets.send(remote).ok();
    }

    /// The TLS address, if TLS is enabled.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().map(|tls| tls.addr)
    }

    /// The UDP address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// The TCP address.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// The counters.
    pub fn counters(&self) -> &Arc<SipCounters> {
        &self.counters
    }

    /// Accepts SIP over TCP (RFC 3261 §18) until the edge is cancelled, and hands each
    /// connection to the stack, which reads it and routes by it.
    ///
    /// The edge does this rather than the stack's own listener for one socket option:
    /// TCP_NODELAY (see `next_stream`).
    async fn accept_tcp(self: Arc<Self>, listener: tokio::net::TcpListener) {
        let local = SipAddr {
            r#type: Some(rsipstack::sip::Transport::Tcp),
            addr: self.tcp_addr.into(),
        };
        while let Some((stream, remote, slot)) = self.next_stream(&listener).await {
            let cancel = self.cancel.child_token();
            match TcpConnection::from_stream(stream, local.clone(), Some(cancel.clone())) {
                Ok(connection) => {
                    self.add_connection(SipConnection::Tcp(connection));
                    hold_until_closed(slot, cancel);
                }
                Err(error) => debug!(%error, %remote, "a SIP TCP connection could not be served"),
            }
        }
    }

    /// Accepts SIP over TLS (RFC 3261 §26) until the edge is cancelled: each connection's
    /// handshake runs in a task of its own, bounded in time, with the certificate of the
    /// moment (a reload changes it for the handshakes after it), and the connection then
    /// goes to the stack.
    async fn accept_tls(self: Arc<Self>, listener: tokio::net::TcpListener) {
        /// A client that opens a connection and never finishes its handshake holds it
        /// no longer than this.
        const HANDSHAKE: Duration = Duration::from_secs(10);
        let Some(tls) = &self.tls else { return };
        let local = SipAddr {
            r#type: Some(rsipstack::sip::Transport::Tls),
            addr: tls.addr.into(),
        };
        while let Some((stream, remote, slot)) = self.next_stream(&listener).await {
            let edge = self.clone();
            let acceptor = tls.acceptor.clone();
            let local = local.clone();
            tokio::spawn(async move {
                let stream = match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        debug!(%error, %remote, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        debug!(%remote, "TLS handshake unfinished after 10 s");
                        return;
                    }
                };
                let remote_addr = SipAddr {
                    r#type: Some(rsipstack::sip::Transport::Tls),
                    addr: remote.into(),
                };
                let cancel = edge.cancel.child_token();
                let connection = TlsConnection::from_server_stream(
                    stream,
                    local,
                    remote_addr,
                    Some(cancel.clone()),
                );
                match connection.await {
                    Ok(connection) => {
                        edge.add_connection(SipConnection::Tls(connection));
                        hold_until_closed(slot, cancel);
                    }
                    Err(error) => {
                        debug!(%error, %remote, "a SIP TLS connection could not be served")
                    }
                }
            });
        }
    }

    /// A new TCP, TLS or WebSocket connection from `source`: its slot in the source's
    /// count, or `None` (close it at once, unanswered) when the source is banned, opens
    /// connections faster than its rate, or holds as many as it may.
    fn admit_connection(&self, source: IpAddr) -> Option<ConnectionSlot> {
        let trusted = self.trusted(source);
        let now = std::time::Instant::now();
        match self
            .security
            .admit(source, Limited::Connection, trusted, now)
        {
            Admission::Pass => self.security.open_connection(source, trusted),
            Admission::Limited(_) => {
                self.counters.refused("rate");
                None
            }
            Admission::Banned => {
                self.counters.refused("banned");
                None
            }
        }
    }

    /// The next connection on a TCP or TLS listener with its slot in the source's count
    /// (see `admit_connection`), with TCP_NODELAY set; `None` once the edge is cancelled.
    ///
    /// Why TCP_NODELAY: a call is answered with `100 Trying` and then, about half a
    /// millisecond later, its `200`. Under Nagle's algorithm the `200` waited for the
    /// peer's ACK of the `100`, and a peer with nothing to send delays that ACK by up to
    /// 40 ms. Over TCP at 20 calls/s the caller heard its answer 32 ms late (p50; 0.53 ms
    /// over UDP; BENCHMARKS.md). The stack's own listeners set no socket option.
    async fn next_stream(
        &self,
        listener: &tokio::net::TcpListener,
    ) -> Option<(tokio::net::TcpStream, SocketAddr, ConnectionSlot)> {
        loop {
            let accepted = tokio::select! {
                _ = self.cancel.cancelled() => return None,
                accepted = listener.accept() => accepted,
            };
            let (stream, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, most likely: let some close before trying again.
                    warn!(%error, "cannot accept a SIP connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(slot) = self.admit_connection(remote.ip()) else {
                continue;
            };
            if let Err(error) = stream.set_nodelay(true) {
                debug!(%error, %remote, "TCP_NODELAY refused");
            }
            return Some((stream, remote, slot));
        }
    }

    /// Transactions in flight.
    pub fn transactions_in_flight(&self) -> usize {
        self.endpoint.inner.get_stats().running_transactions
    }

    /// Runs until `shutdown`: the stack, incoming requests, registration expiry.
    pub async fn serve(
        self: Arc<Self>,
        events: mpsc::Sender<EdgeEvent>,
        shutdown: CancellationToken,
    ) -> Result<(), SipError> {
        let mut incoming = self
            .endpoint
            .incoming_transactions()
            .map_err(SipError::stack)?;
        let mut expiry = tokio::time::interval(Duration::from_secs(1));
        let mut closed_websockets = self
            .closed_websockets_rx
            .lock()
            .ok()
            .and_then(|mut rx| rx.take())
            .ok_or_else(|| SipError::Stack("the edge is already served".into()))?;
        let tcp_listener = take_listener(&self.tcp_listener, self.tcp_addr)?;
        tokio::spawn(self.clone().accept_tcp(tcp_listener));
        if let Some(tls) = &self.tls {
            let listener = take_listener(&tls.listener, tls.addr)?;
            tokio::spawn(self.clone().accept_tls(listener));
        }
        let mut probe =
            tokio::time::interval(self.probe_interval.unwrap_or(Duration::from_secs(3600)));
        probe.tick().await;
        let serve = self.endpoint.serve();
        tokio::pin!(serve);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = &mut serve => break,
                _ = expiry.tick() => {
                    self.security.sweep(std::time::Instant::now());
                    self.identities.sweep(std::time::Instant::now());
                    self.registrar.auth().sweep(unix_now());
                    for user in self.registrar.expire(tokio::time::Instant::now()) {
                        info!(%user, "registration expired");
                        events.send(EdgeEvent::AgentUnregistered { user, reason: Unregistered::Expired }).await.ok();
                    }
                }
                _ = probe.tick(), if self.probe_interval.is_some() => {
                    let interval = self.probe_interval.unwrap_or_default();
                    for (user, binding) in self.registrar.bindings() {
                        if self.probing.insert(user.clone(), ()).is_some() {
                            continue;
                        }
                        // Each phone has its own moment in the interval, the same every
                        // time: a thousand agents are not probed in one burst.
                        let phase = self.probe_phase(&user, interval);
                        let edge = self.clone();
                        let events = events.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(phase).await;
                            let alive = edge.probe(&binding).await;
                            edge.probing.remove(&user);
                            // Only the binding probed is dropped: the phone may have
                            // re-registered from elsewhere meanwhile.
                            if !alive && edge.registrar.drop_binding_if(&user, &binding) {
                                info!(%user, contact = %binding.contact, "phone unreachable: registration dropped");
                                events.send(EdgeEvent::AgentUnregistered { user, reason: Unregistered::Unreachable }).await.ok();
                            }
                        });
                    }
                }
                Some(remote) = closed_websockets.recv() => self.end_websocket_registrations(remote, &events),
                tx = incoming.recv() => {
                    let Some(tx) = tx else { break };
                    let edge = self.clone();
                    let events = events.clone();
                    tokio::spawn(async move { edge.handle(tx, events).await });
                }
            }
        }
        self.cancel.cancel();
        Ok(())
    }

    /// Ends, after the grace period, the registrations that came over the closed WebSocket
    /// of `remote`, unless the agent registered again meanwhile (RFC 7118 §5: the binding
    /// dies with its connection; the grace keeps an agent's place over a page reload).
    fn end_websocket_registrations(
        self: &Arc<Self>,
        remote: SocketAddr,
        events: &mpsc::Sender<EdgeEvent>,
    ) {
        for (user, binding) in self.registrar.bindings() {
            if binding.transport != Transport::Ws || binding.source != remote {
                continue;
            }
            let (edge, events) = (self.clone(), events.clone());
            tokio::spawn(async move {
                tokio::time::sleep(edge.websocket_grace).await;
                if edge.registrar.drop_binding_if(&user, &binding) {
                    info!(%user, %remote, "WebSocket closed: registration ended");
                    events
                        .send(EdgeEvent::AgentUnregistered {
                            user,
                            reason: Unregistered::ConnectionClosed,
                        })
                        .await
                        .ok();
                }
            });
        }
    }

    async fn handle(self: Arc<Self>, mut tx: Transaction, events: mpsc::Sender<EdgeEvent>) {
        let (source, _) = source_of(&tx);
        let now = std::time::Instant::now();
        // A banned source's UDP is dropped before parsing and its new connections at
        // accept; this catches what it still sends on a connection opened before.
        if self.security.banned(source.ip(), now) {
            self.counters.refused("banned");
            return;
        }
        let method = tx.original.method;
        if let Err(refusal) = crate::strict::check(&tx.original, &self.limits) {
            info!(%source, %method, status = refusal.status, reason = %refusal.reason, "request refused");
            if method != Method::Ack
                && let Err(error) =
                    refuse(&mut tx, refusal.status, Some(refusal.reason), vec![]).await
            {
                debug!(%error, "could not refuse a request");
            }
            return;
        }
        // In-dialog requests (BYE, re-INVITE, ACK, INFO, CANCEL) go to their dialog: never
        // limited, so that calls in progress are untouched.
        if let Some(Dialog::Invite(mut dialog)) = self.dialog_layer.match_dialog(&tx) {
            if let Err(error) = dialog.handle(&mut tx).await {
                debug!(%error, "in-dialog request");
            }
            return;
        }
        let limited = match method {
            Method::Invite => Some(Limited::Invite),
            Method::Register => Some(Limited::Register),
            Method::Options => Some(Limited::Options),
            _ => None,
        };
        if let Some(limited) = limited {
            let trusted = self.trusted(source.ip());
            match self.security.admit(source.ip(), limited, trusted, now) {
                Admission::Pass => {}
                Admission::Banned => {
                    self.counters.refused("banned");
                    return;
                }
                Admission::Limited(wait) => {
                    self.counters.refused("rate");
                    debug!(%source, %method, "over the source's rate");
                    if let Err(error) = unavailable(&mut tx, wait).await {
                        debug!(%error, "could not refuse a request");
                    }
                    return;
                }
            }
        }
        let result = match method {
            Method::Options => {
                let headers = vec![
                    Header::Allow(ALLOWED_METHODS.join(", ").into()),
                    Header::Accept("application/sdp".into()),
                ];
                tx.reply_with(StatusCode::OK, headers, None).await
            }
            Method::Register => self.register(&mut tx, &events).await,
            Method::Invite => self.invite(tx).await,
            Method::Bye | Method::Cancel | Method::PRack | Method::Update | Method::Info => {
                tx.reply(StatusCode::CallTransactionDoesNotExist).await
            }
            Method::Ack => Ok(()),
            _ => {
                let headers = vec![Header::Allow(ALLOWED_METHODS.join(", ").into())];
                tx.reply_with(StatusCode::MethodNotAllowed, headers, None)
                    .await
            }
        };
        if let Err(error) = result {
            debug!(%error, %method, "request handling");
        }
    }

    async fn register(
        &self,
        tx: &mut Transaction,
        events: &mpsc::Sender<EdgeEvent>,
    ) -> rsipstack::Result<()> {
        let Some(register) = RegisterRequest::from_request(&tx.original) else {
            return tx.reply(StatusCode::BadRequest).await;
        };
        let (source, transport) = source_of(tx);
        let now = std::time::Instant::now();
        if let Some(wait) = self.security.user_blocked(source.ip(), &register.user, now) {
            self.counters.refused("user_blocked");
            return unavailable(tx, wait).await;
        }
        let outcome = self.registrar.register(
            &register,
            source,
            transport,
            tokio::time::Instant::now(),
            unix_now(),
        );
        let failure = match &outcome {
            RegisterOutcome::Challenge { failure, .. } => *failure,
            RegisterOutcome::Forbidden(failure) => Some(*failure),
            RegisterOutcome::Registered { .. }
            | RegisterOutcome::Unregistered { .. }
            | RegisterOutcome::Query(_) => {
                self.security.auth_succeeded(source.ip(), &register.user);
                None
            }
            RegisterOutcome::BadRequest(_) | RegisterOutcome::IntervalTooBrief(_) => None,
        };
        if let Some(failure) = failure {
            let trusted = self.trusted(source.ip());
            self.security.auth_failed(
                source.ip(),
                &register.user,
                "REGISTER",
                failure,
                trusted,
                now,
            );
        }
        match outcome {
            RegisterOutcome::Challenge { challenges, .. } => {
                let headers = challenges
                    .into_iter()
                    .map(|c| Header::WwwAuthenticate(c.into()))
                    .collect();
                tx.reply_with(StatusCode::Unauthorized, headers, None).await
            }
            RegisterOutcome::Forbidden(_) => tx.reply(StatusCode::Forbidden).await,
            RegisterOutcome::BadRequest(why) => {
                info!(user = %register.user, %source, %why, "REGISTER refused");
                refuse(tx, 400, Some(why), vec![]).await
            }
            RegisterOutcome::IntervalTooBrief(min) => {
                tx.reply_with(
                    StatusCode::IntervalTooBrief,
                    vec![Header::MinExpires(min.to_string().into())],
                    None,
                )
                .await
            }
            RegisterOutcome::Query(binding) => {
                let headers = binding.iter().map(contact_header).collect();
                tx.reply_with(StatusCode::OK, headers, None).await
            }
            RegisterOutcome::Registered {
                user,
                binding,
                expires,
                new,
            } => {
                let contact =
                    Header::Contact(format!("<{}>;expires={expires}", binding.contact).into());
                tx.reply_with(
                    StatusCode::OK,
                    vec![contact, Header::Expires(expires.to_string().into())],
                    None,
                )
                .await?;
                if new {
                    info!(%user, contact = %binding.contact, %source, "agent registered");
                }
                events
                    .send(EdgeEvent::AgentRegistered { user, binding, new })
                    .await
                    .ok();
                Ok(())
            }
            RegisterOutcome::Unregistered {
                user,
                was_registered,
            } => {
                tx.reply(StatusCode::OK).await?;
                if was_registered {
                    info!(%user, "agent unregistered");
                    events
                        .send(EdgeEvent::AgentUnregistered {
                            user,
                            reason: Unregistered::Removed,
                        })
                        .await
                        .ok();
                }
                Ok(())
            }
        }
    }

    async fn invite(self: &Arc<Self>, mut tx: Transaction) -> rsipstack::Result<()> {
        let (source, transport) = source_of(&tx);
        let request = tx.original.clone();
        // RFC 3261 §8.2.2.1: the Request-URI user, as written (the stack keeps it raw).
        let did = request
            .uri
            .auth
            .as_ref()
            .map(|a| a.user.clone())
            .unwrap_or_default();
        let trunk = match self.admit(&request, source) {
            Ok(trunk) => trunk,
            Err(Refused::Challenge { stale }) => {
                let scope = invite_scope(source);
                let headers = self
                    .registrar
                    .auth()
                    .challenges(unix_now(), &scope, &self.algorithms, stale)
                    .into_iter()
                    .map(|c| Header::WwwAuthenticate(c.into()))
                    .collect();
                return tx.reply_with(StatusCode::Unauthorized, headers, None).await;
            }
            Err(Refused::Forbidden) => {
                // An untrusted source learns nothing else.
                info!(%source, %did, "INVITE from an untrusted source refused");
                return tx.reply(StatusCode::Forbidden).await;
            }
            Err(Refused::BadRequest(reason)) => {
                return refuse(&mut tx, 400, Some(reason.into()), vec![]).await;
            }
        };
        let count = self
            .trunk_calls
            .entry(trunk.name.clone())
            .or_default()
            .clone();
        let Some(slot) = CallSlot::take(&count, trunk.max_calls) else {
            self.counters.refused("trunk_calls");
            info!(%source, trunk = %trunk.name, "trunk at its concurrent-call limit: 503");
            return unavailable(&mut tx, Duration::from_secs(5)).await;
        };
        // Past the knee the calls already admitted come first: a new one is told to come back
        // later (RFC 3261 §21.5.4) before it could slow them down.
        if let Some(retry_after) = self.overload.get().and_then(|check| check()) {
            self.counters.refused("overload");
            debug!(%source, trunk = %trunk.name, "overloaded: a new call gets 503");
            return unavailable(&mut tx, retry_after).await;
        }
        let Some(queue) = lookup_did(&trunk, &did) else {
            info!(%source, trunk = %trunk.name, %did, "INVITE to an unknown number");
            return tx.reply(StatusCode::NotFound).await;
        };
        let (state_sender, states) = self.dialog_layer.new_dialog_state_channel();
        let secure = request.uri.scheme == Some(rsipstack::sip::Scheme::Sips);
        let contact = self.local_contact_over(transport, secure);
        let dialog = match self.dialog_layer.get_or_create_server_invite(
            &tx,
            state_sender,
            None,
            Some(contact),
        ) {
            Ok(dialog) => dialog,
            Err(error) => {
                warn!(%error, "could not create a dialog for an INVITE");
                return tx.reply(StatusCode::ServerInternalError).await;
            }
        };
        let call_id = request.call_id_header()?.value().to_owned();
        let identity = Identity {
            local: without_tag(request.to_header()?.value()),
            remote: Some(without_tag(request.from_header()?.value())),
        };
        let identity = IdentityGuard {
            relay: self.identities.clone(),
            call_id: self.identities.remember(&call_id, identity),
        };
        let call = IncomingCall {
            trunk: trunk.name.clone(),
            did,
            queue: queue.to_owned(),
            from: request.from_header()?.value().to_owned(),
            call_id: request.call_id_header()?.value().to_owned(),
            offer: request.body.clone(),
            source,
            leg: ServerLeg {
                leg: Leg {
                    dialog: dialog.clone(),
                    states,
                    dialog_layer: self.dialog_layer.clone(),
                    ended: false,
                    _identity: identity,
                },
                _slot: slot,
            },
        };
        // Handed over from this task, not through the serve loop's events: one hand-over
        // less between the caller's INVITE and the agent's (BENCHMARKS.md).
        let Some(accept) = self.calls.get() else {
            warn!("no call handler: a trunk call gets 503");
            return tx.reply(StatusCode::ServiceUnavailable).await;
        };
        accept(call);
        // The dialog drives the INVITE transaction until its final response and ACK, and
        // then through Timer L (RFC 6026 §7.1: 32 s over UDP). Nothing else of this task
        // need live that long: the request's copy goes now.
        drop(request);
        let mut dialog = dialog;
        dialog.handle(&mut tx).await
    }

    /// Where in each probe interval `user`'s phone is probed: a fixed offset from a keyed
    /// hash of its name, spread evenly over the interval.
    fn probe_phase(&self, user: &str, interval: Duration) -> Duration {
        use std::hash::BuildHasher;
        let millis = u64::try_from(interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        Duration::from_millis(self.probe_phase.hash_one(user) % millis)
    }

    /// Sends OPTIONS to a registered phone (RFC 3261 §11); whether anything answered in time.
    /// Over UDP the transaction retransmits it (Timer E, RFC 3261 §17.1.2.2) until an answer
    /// or Timer F (64·T1, 32 s), which `probe_timeout` bounds: one lost datagram is not a
    /// phone gone.
    async fn probe(&self, binding: &Binding) -> bool {
        let Ok(uri) = rsipstack::sip::Uri::try_from(binding.contact.as_str()) else {
            return false;
        };
        let local = match binding.transport {
            Transport::Udp => self.udp_addr,
            Transport::Tcp => self.tcp_addr,
            Transport::Tls => self.tls_addr().unwrap_or(self.tcp_addr),
            Transport::Ws => self.websocket_addr.get().copied().unwrap_or(self.udp_addr),
        };
        let transport = binding.transport.stack();
        let inner = &self.endpoint.inner;
        let Ok(via) = inner.get_via(
            Some(SipAddr {
                r#type: Some(transport),
                addr: local.into(),
            }),
            None,
        ) else {
            return false;
        };
        let from = rsipstack::sip::typed::From {
            display_name: None,
            uri: self.local_contact_over(binding.transport, is_sips(&binding.contact)),
            params: vec![],
        }
        .with_tag(rand_u64().to_string().into());
        let to = rsipstack::sip::typed::To {
            display_name: None,
            uri: uri.clone(),
            params: vec![],
        };
        let request = inner.make_request(Method::Options, uri, via, from, to, 1, None);
        let Ok(key) = rsipstack::transaction::key::TransactionKey::from_request(
            &request,
            rsipstack::transaction::key::TransactionRole::Client,
        ) else {
            return false;
        };
        let mut tx = Transaction::new_client(key, request, inner.clone(), None);
        tx.destination = Some(SipAddr {
            r#type: Some(transport),
            addr: binding.source.into(),
        });
        let answered = async {
            tx.send().await.ok()?;
            while let Some(message) = tx.receive().await {
                if let SipMessage::Response(response) = message
                    && response.status_code.kind() != rsipstack::sip::StatusCodeKind::Provisional
                {
                    // Any final answer but a timeout means the phone is there.
                    return Some(!matches!(u16::from(response.status_code), 408 | 503));
                }
            }
            None
        };
        matches!(
            tokio::time::timeout(self.probe_timeout, answered).await,
            Ok(Some(true))
        )
    }

    /// Whether `source` is a trusted trunk's address.
    fn trusted(&self, source: IpAddr) -> bool {
        self.trunks
            .load()
            .iter()
            .any(|t| t.sources.iter().any(|net| net.contains(&source)))
    }

    /// The trunk an INVITE comes from: by its source address, else by its digest
    /// credentials (RFC 3261 §22.2). A stranger gets the same answer whatever name it
    /// tries; every wrong answer is a counted failure.
    fn admit(
        &self,
        request: &rsipstack::sip::Request,
        source: SocketAddr,
    ) -> Result<Arc<Trunk>, Refused> {
        let trunks = self.trunks.load();
        if let Some(trunk) = trunks
            .iter()
            .find(|t| t.sources.iter().any(|net| net.contains(&source.ip())))
        {
            return Ok(trunk.clone());
        }
        if !trunks.iter().any(|t| t.credentials.is_some()) {
            return Err(Refused::Forbidden);
        }
        let credentials = request
            .headers
            .iter()
            .find(|h| {
                h.name().eq_ignore_ascii_case("authorization")
                    || h.name().eq_ignore_ascii_case("proxy-authorization")
            })
            .and_then(|h| Credentials::parse(h.value()));
        let user = credentials
            .as_ref()
            .map(|c| c.username.as_str())
            .unwrap_or_default();
        let now = std::time::Instant::now();
        if !user.is_empty() && self.security.user_blocked(source.ip(), user, now).is_some() {
            self.counters.refused("user_blocked");
            return Err(Refused::Forbidden);
        }
        let trunk = trunks
            .iter()
            .find(|t| t.credentials.as_ref().is_some_and(|(name, _)| name == user));
        let account = trunk.and_then(|t| {
            t.credentials.as_ref().map(|(_, password)| Account {
                password: password.clone(),
                algorithms: t.algorithms.clone(),
            })
        });
        let verdict = self.registrar.auth().check(
            credentials.as_ref(),
            &invite_scope(source),
            account.as_ref(),
            &self.algorithms,
            unix_now(),
        );
        match (verdict, trunk) {
            (Verdict::Accepted, Some(trunk)) => {
                self.security.auth_succeeded(source.ip(), user);
                Ok(trunk.clone())
            }
            (Verdict::Accepted, None) => Err(Refused::Forbidden),
            (Verdict::Challenge { stale }, _) => Err(Refused::Challenge { stale }),
            (Verdict::Failed(failure), _) => {
                self.security
                    .auth_failed(source.ip(), user, "INVITE", failure, false, now);
                Err(Refused::Forbidden)
            }
            (Verdict::Malformed(reason), _) => Err(Refused::BadRequest(reason)),
        }
    }

    /// Our Contact on UDP (trunk calls, callbacks, probes over UDP).
    fn local_contact(&self) -> rsipstack::sip::Uri {
        self.local_contact_over(Transport::Udp, false)
    }

    /// Our Contact for a dialog over `transport`: the listener of that transport, so that
    /// the other side's in-dialog requests come back the same way (RFC 3261 §8.1.1.8). A
    /// dialog with a SIPS URI gets a SIPS Contact (RFC 3261 §12.1.1: phones refuse
    /// anything else, "SIPS Required").
    fn local_contact_over(&self, transport: Transport, secure: bool) -> rsipstack::sip::Uri {
        if secure && let Some(tls) = self.tls_addr() {
            return rsipstack::sip::Uri {
                scheme: Some(rsipstack::sip::Scheme::Sips),
                auth: Some(rsipstack::sip::Auth {
                    user: "amico".into(),
                    password: None,
                }),
                host_with_port: tls.into(),
                ..Default::default()
            };
        }
        let (address, params) = match (transport, self.tls_addr()) {
            (Transport::Tls, Some(tls)) => (
                tls,
                vec![rsipstack::sip::Param::Transport(
                    rsipstack::sip::Transport::Tls,
                )],
            ),
            (Transport::Tcp, _) => (
                self.tcp_addr,
                vec![rsipstack::sip::Param::Transport(
                    rsipstack::sip::Transport::Tcp,
                )],
            ),
            (Transport::Ws, _) if self.websocket_addr.get().is_some() => (
                *self.websocket_addr.get().expect("checked"),
                vec![rsipstack::sip::Param::Transport(
                    rsipstack::sip::Transport::Ws,
                )],
            ),
            _ => (self.udp_addr, vec![]),
        };
        rsipstack::sip::Uri {
            scheme: Some(rsipstack::sip::Scheme::Sip),
            auth: Some(rsipstack::sip::Auth {
                user: "amico".into(),
                password: None,
            }),
            host_with_port: address.into(),
            params,
            ..Default::default()
        }
    }

    /// Sets the check asked before each new trunk call is admitted: `Some(retry_after)` when
    /// the server cannot take one more, which then gets 503 with that Retry-After. Once.
    pub fn set_overload_check(&self, check: OverloadCheck) {
        if self.overload.set(check).is_err() {
            warn!("the overload check was already set");
        }
    }

    /// Sets what takes admitted trunk calls, once, before [`SipEdge::serve`]; until then
    /// a trunk call gets 503.
    pub fn set_call_handler(&self, handler: CallHandler) {
        if self.calls.set(handler).is_err() {
            warn!("the call handler was already set");
        }
    }

    /// How an agent's phone is registered now: over a WebSocket it is a browser, which takes
    /// only WebRTC media (RFC 7118 §1, RFC 8827 §6.5); `None` when it is not registered.
    pub fn agent_transport(&self, user: &str) -> Option<Transport> {
        self.registrar
            .binding(user)
            .map(|binding| binding.transport)
    }

    /// Rings an agent's registered phone with a call from `from` (the caller's From value
    /// as received) and our SDP offer.
    pub fn invite_agent(
        self: &Arc<Self>,
        user: &str,
        from: &str,
        sdp: String,
    ) -> Result<ClientLeg, SipError> {
        let binding = self
            .registrar
            .binding(user)
            .ok_or_else(|| SipError::NotRegistered(user.to_owned()))?;
        let callee = rsipstack::sip::Uri::try_from(binding.contact.as_str())
            .map_err(|_| SipError::BadContact(binding.contact.clone()))?;
        let destination = SipAddr {
            r#type: Some(binding.transport.stack()),
            addr: binding.source.into(),
        };
        let contact = self.local_contact_over(binding.transport, is_sips(&binding.contact));
        self.place_call(callee, destination, contact, without_tag(from), sdp)
    }

    /// Calls a number out through a trunk's gateway (a queued callback): `sip:NUMBER@gateway`
    /// from `sip:FROM_USER@` our address.
    pub fn invite_number(
        self: &Arc<Self>,
        gateway: Gateway,
        number: &str,
        from_user: &str,
        sdp: String,
    ) -> Result<ClientLeg, SipError> {
        // The number as dialled: an escaped `%2B` is a `+` (RFC 3261 §19.1.4), which the
        // stack writes unescaped in a user part.
        let number = percent_decode(number);
        let transport = match gateway.transport {
            Transport::Udp => String::new(),
            Transport::Tcp => ";transport=tcp".to_owned(),
            Transport::Tls => ";transport=tls".to_owned(),
            Transport::Ws => ";transport=ws".to_owned(),
        };
        let address = gateway.address;
        let callee =
            rsipstack::sip::Uri::try_from(format!("sip:{number}@{address}{transport}").as_str())
                .map_err(|_| SipError::BadContact(number.clone()))?;
        let destination = SipAddr {
            r#type: Some(gateway.transport.stack()),
            addr: address.into(),
        };
        let contact = self.local_contact_over(gateway.transport, false);
        let from = format!("<sip:{from_user}@{}>", contact.host_with_port);
        self.place_call(callee, destination, contact, from, sdp)
    }

    fn place_call(
        self: &Arc<Self>,
        callee: rsipstack::sip::Uri,
        destination: SipAddr,
        contact: rsipstack::sip::Uri,
        from: String,
        sdp: String,
    ) -> Result<ClientLeg, SipError> {
        let call_id = format!(
            "{:016x}{:016x}@{}",
            rand_u64(),
            rand_u64(),
            self.call_id_host
        );
        let identity = Identity {
            local: from,
            remote: None,
        };
        let guard = IdentityGuard {
            relay: self.identities.clone(),
            call_id: self.identities.remember(&call_id, identity),
        };
        let option = InviteOption {
            caller: self.local_contact(),
            callee,
            destination: Some(destination),
            content_type: Some("application/sdp".into()),
            offer: Some(sdp.into_bytes()),
            contact,
            call_id: Some(call_id),
            ..Default::default()
        };
        let (state_sender, states) = self.dialog_layer.new_dialog_state_channel();
        let (dialog, outcome) = self
            .dialog_layer
            .do_invite_async(option, state_sender)
            .map_err(SipError::stack)?;
        Ok(ClientLeg {
            leg: Leg {
                dialog,
                states,
                dialog_layer: self.dialog_layer.clone(),
                ended: false,
                _identity: guard,
            },
            outcome: Some(outcome),
            answered: false,
        })
    }

    /// Drops an agent's registration (its phone is unreachable); true if it had one.
    pub fn drop_registration(&self, user: &str) -> bool {
        self.registrar.drop_binding(user)
    }

    /// Stops the stack.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }
}

/// Answers a request with `status`, our own reason phrase if given, and `headers`
/// (RFC 3261 §8.2.6: a To tag added to a final response).
async fn refuse(
    tx: &mut Transaction,
    status: u16,
    reason: Option<String>,
    headers: Vec<Header>,
) -> rsipstack::Result<()> {
    if status >= 200
        && let Ok(to) = tx.original.to_header()
        && matches!(to.tag(), Ok(None))
    {
        let tagged = to.clone().with_tag(rsipstack::transaction::make_tag());
        tx.original.headers.unique_push(tagged.into());
    }
    // The stack writes a status's standard phrase; a phrase of our own rides in `Other`,
    // which keeps the code (and so the kind of response) the same.
    let status = match reason {
        Some(reason) => StatusCode::Other(status, reason),
        None => StatusCode::from(status),
    };
    let mut response = tx.endpoint_inner.make_response(&tx.original, status, None);
    response.headers.extend(headers);
    tx.respond(response).await
}

/// 503 with `Retry-After` (RFC 3261 §21.5.4, §20.33): over a limit, come back later.
async fn unavailable(tx: &mut Transaction, wait: Duration) -> rsipstack::Result<()> {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    refuse(
        tx,
        503,
        None,
        vec![Header::RetryAfter(seconds.to_string().into())],
    )
    .await
}

/// Whether one more call can be taken; when not, how long the caller should wait before it
/// tries again.
pub type OverloadCheck = Box<dyn Fn() -> Option<Duration> + Send + Sync>;

/// Takes an admitted trunk call, which it answers or rejects (`IncomingCall::leg`). Called
/// from the task that admitted the call: it must not wait.
pub type CallHandler = Box<dyn Fn(IncomingCall) + Send + Sync>;

/// Why a trunk INVITE is not admitted.
enum Refused {
    /// 401 with a challenge (`stale`), or a fresh one after a failed attempt.
    Challenge { stale: bool },
    /// 403.
    Forbidden,
    /// 400 with this reason (credentials that cannot be checked).
    BadRequest(&'static str),
}

fn lookup_did<'a>(trunk: &'a Trunk, did: &str) -> Option<&'a str> {
    trunk
        .dids
        .get(did)
        .or_else(|| trunk.dids.get(&percent_decode(did)))
        .map(String::as_str)
}

/// Whether a URI as written is a SIPS URI (RFC 3261 §19.1).
fn is_sips(uri: &str) -> bool {
    uri.trim_start()
        .get(..5)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("sips:"))
}

/// What a trunk's INVITE challenge is issued for: its source, before any name is known.
fn invite_scope(source: SocketAddr) -> Scope<'static> {
    Scope {
        source,
        method: "INVITE",
        user: "",
    }
}

/// `%2B39` → `+39`, so that a DID configured as `+390521...` matches either spelling
/// (RFC 3261 §19.1.4: escaped and unescaped characters compare equal in the user part).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn contact_header(binding: &Binding) -> Header {
    let remaining = binding
        .expires_at
        .saturating_duration_since(tokio::time::Instant::now())
        .as_secs();
    Header::Contact(format!("<{}>;expires={remaining}", binding.contact).into())
}

fn source_of(tx: &Transaction) -> (SocketAddr, Transport) {
    let connection = tx.connection.as_ref();
    let transport = match connection {
        // A browser's WebSocket rides on an in-memory channel connection (see
        // crate::websocket), which the stack reports as UDP.
        Some(rsipstack::transport::SipConnection::Channel(_)) => Transport::Ws,
        Some(c) if c.transport() == rsipstack::sip::Transport::Tcp => Transport::Tcp,
        Some(c) if c.transport() == rsipstack::sip::Transport::Tls => Transport::Tls,
        _ => Transport::Udp,
    };
    let addr = connection
        .and_then(|c| c.get_remote_addr().cloned())
        .and_then(|a| a.get_socketaddr().ok())
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    (addr, transport)
}

/// 64 unguessable bits, for tags and Call-IDs (RFC 3261 §19.3: "cryptographically
/// random" tags; a guessable Call-ID would help a stranger forge in-dialog requests).
fn rand_u64() -> u64 {
    let mut bytes = [0u8; 8];
    crate::digest::fill_random(&mut bytes);
    u64::from_be_bytes(bytes)
}

/// The stack's TLS client settings: the trust anchors for gateways' certificates.
fn client_tls(ca_certificates: Option<Vec<u8>>) -> TlsConfig {
    TlsConfig {
        ca_certs: ca_certificates,
        ..TlsConfig::default()
    }
}

/// Refuses TCP and TLS connections from banned sources at accept.
struct BanList(Arc<Security>);

#[async_trait::async_trait]
impl rsipstack::transport::TransportWhitelist for BanList {
    async fn allow(&self, ip: IpAddr) -> bool {
        let banned = self.0.banned(ip, std::time::Instant::now());
        if banned {
            self.0.counters().refused("banned");
        }
        !banned
    }
}

/// Keeps a connection's slot in its source's count until the stack closes the connection:
/// the stack cancels a stream connection's token when it retires it (its peer closed, it
/// sat idle, or the edge stopped).
fn hold_until_closed(slot: ConnectionSlot, closed: CancellationToken) {
    tokio::spawn(async move {
        closed.cancelled().await;
        drop(slot);
    });
}

/// The listener bound at start, for the runtime to accept on; once only.
fn take_listener(
    slot: &std::sync::Mutex<Option<std::net::TcpListener>>,
    addr: SocketAddr,
) -> Result<tokio::net::TcpListener, SipError> {
    let listener = slot
        .lock()
        .ok()
        .and_then(|mut listener| listener.take())
        .ok_or_else(|| SipError::Stack("the edge is already served".into()))?;
    listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(listener))
        .map_err(|source| SipError::Bind { addr, source })
}

/// SIP over TLS (RFC 3261 §26): the listening socket, and the certificate its
/// handshakes present.
struct TlsEdge {
    addr: SocketAddr,
    /// Bound at start, so that a port taken fails the start; `serve` accepts on it.
    listener: std::sync::Mutex<Option<std::net::TcpListener>>,
    acceptor: tokio_rustls::TlsAcceptor,
    /// The certificate and key each new handshake presents; a reload replaces them.
    certificate: Arc<ReloadableCertResolver>,
}

impl TlsEdge {
    /// Binds `settings.listen` and reads its certificate and key (PEM). TLS 1.2 and 1.3
    /// with rustls's safe defaults: phones whose TLS is OpenSSL 1.0.2 (PJSIP's wheel)
    /// still need TLS 1.2.
    fn bind(settings: &TlsSettings) -> Result<TlsEdge, SipError> {
        let bind_error = |source| SipError::Bind {
            addr: settings.listen,
            source,
        };
        let listener = std::net::TcpListener::bind(settings.listen).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certificate = Arc::new(
            ReloadableCertResolver::new(
                &settings.certificate,
                &settings.private_key,
                provider.clone(),
            )
            .map_err(SipError::stack)?,
        );
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| SipError::Stack(format!("TLS protocol versions: {error}")))?
            .with_no_client_auth()
            .with_cert_resolver(certificate.clone());
        Ok(TlsEdge {
            addr,
            listener: std::sync::Mutex::new(Some(listener)),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            certificate,
        })
    }
}

/// Asks the kernel for a receive buffer of `wanted` bytes on the SIP UDP socket. The default
/// (about 200 KB on Linux) holds a few hundred datagrams: a burst of calls overflows it, and
/// every datagram dropped there costs its sender a retransmission 500 ms later (RFC 3261
/// §17.1.1.2, Timer A). Linux reports twice what it granted (the bookkeeping overhead).
fn set_receive_buffer(socket: &tokio::net::UdpSocket, wanted: usize) {
    let socket = socket2::SockRef::from(socket);
    if let Err(error) = socket.set_recv_buffer_size(wanted) {
        warn!(%error, wanted, "cannot set the SIP UDP receive buffer");
        return;
    }
    match socket.recv_buffer_size() {
        Ok(granted) if granted / 2 < wanted => warn!(
            wanted,
            granted = granted / 2,
            "the kernel gave the SIP UDP socket a smaller receive buffer than asked: \
             raise net.core.rmem_max (sysctl) to at least the asked size"
        ),
        Ok(granted) => debug!(granted = granted / 2, "SIP UDP receive buffer"),
        Err(error) => debug!(%error, "cannot read the SIP UDP receive buffer"),
    }
}

/// Binds UDP, then TCP on the same port (an ephemeral UDP port may be taken on TCP: try
/// again).
fn bind_pair(
    listen: SocketAddr,
) -> Result<(tokio::net::UdpSocket, std::net::TcpListener), SipError> {
    for _ in 0..20 {
        let udp = std::net::UdpSocket::bind(listen).map_err(|source| SipError::Bind {
            addr: listen,
            source,
        })?;
        let port = udp
            .local_addr()
            .map_err(|source| SipError::Bind {
                addr: listen,
                source,
            })?
            .port();
        let tcp_addr = SocketAddr::new(listen.ip(), port);
        match std::net::TcpListener::bind(tcp_addr) {
            Ok(tcp) => {
                udp.set_nonblocking(true).map_err(|source| SipError::Bind {
                    addr: listen,
                    source,
                })?;
                let udp =
                    tokio::net::UdpSocket::from_std(udp).map_err(|source| SipError::Bind {
                        addr: listen,
                        source,
                    })?;
                return Ok((udp, tcp));
            }
            Err(source) if listen.port() != 0 => {
                return Err(SipError::Bind {
                    addr: tcp_addr,
                    source,
                });
            }
            Err(_) => continue,
        }
    }
    Err(SipError::Bind {
        addr: listen,
        source: std::io::Error::other("no port free on both UDP and TCP"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_values_lose_only_their_tag() {
        assert_eq!(
            without_tag(r#""Rossi, M" <sip:%2B39055123@pbx;user=phone>;tag=abc;x=1"#),
            r#""Rossi, M" <sip:%2B39055123@pbx;user=phone>;x=1"#
        );
        assert_eq!(without_tag("sip:a@b;tag=1"), "sip:a@b");
    }

    #[test]
    fn dids_match_escaped_or_not() {
        let trunk = Trunk {
            dids: HashMap::from([
                ("+390521000".to_owned(), "comune".to_owned()),
                ("100".to_owned(), "x".to_owned()),
            ]),
            ..Trunk::default()
        };
        assert_eq!(lookup_did(&trunk, "%2B390521000"), Some("comune"));
        assert_eq!(lookup_did(&trunk, "+390521000"), Some("comune"));
        assert_eq!(lookup_did(&trunk, "100"), Some("x"));
        assert_eq!(lookup_did(&trunk, "101"), None);
    }

    #[test]
    fn ended_dialogs_identities_are_kept_for_64_t1_then_forgotten() {
        let relay = IdentityRelay::default();
        let identity = Identity {
            local: "<sip:100@amico>".into(),
            remote: None,
        };
        let a = relay.remember("a", identity.clone());
        let b = relay.remember("b", identity.clone());
        relay.remember("live", identity);
        let start = std::time::Instant::now();
        relay.forget_later(a, start);
        relay.forget_later(b, start + Duration::from_secs(5));

        assert_eq!(relay.sweep(start + Duration::from_secs(31)), 0);
        assert_eq!(relay.identities.len(), 3, "still within 64 × T1");
        assert_eq!(relay.sweep(start + Duration::from_secs(32)), 1);
        assert!(!relay.identities.contains_key("a"));
        assert!(relay.identities.contains_key("b"));
        assert_eq!(relay.sweep(start + Duration::from_secs(40)), 1);
        assert_eq!(relay.sweep(start + Duration::from_secs(400)), 0);
        assert!(
            relay.identities.contains_key("live"),
            "a live dialog is kept"
        );
        assert_eq!(relay.identities.len(), 1);
    }
}
