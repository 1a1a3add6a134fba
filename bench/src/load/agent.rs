//! The agent side: one phone per agent, each on a socket of its own (the ACD calls a phone
//! back at the address it registered from).
//!
//! A phone registers with digest credentials (RFC 3261 §10.2, §22.4), refreshes the
//! registration at half its granted lifetime, answers OPTIONS (§11.2), and answers each
//! INVITE: 180 at once, 200 with an SDP answer after the chosen delay, retransmitted
//! until the ACK (§13.3.1.4); it talks for the chosen time, then hangs up with a BYE
//! (§15.1.1). At the end it unregisters (§10.2.2).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use amico_core::simulator::random::Rng;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use super::Shared;
use super::digest::Challenge;
use super::endpoint::{Dialog, Endpoint, T1, T2, TIMEOUT, branch, is_request, next_id, unique};
use super::message::{Message, granted_expires, tag_of, uri_of, user_of};
use super::report::record;

/// One agent's phone.
pub(crate) struct Phone {
    pub(crate) user: String,
    pub(crate) password: String,
    pub(crate) endpoint: Arc<Endpoint>,
    pub(crate) seed: u64,
}

/// Registration state: its dialog (one Call-ID for all of this phone's REGISTERs, RFC
/// 3261 §10.2.4) and the next CSeq.
struct Registration {
    dialog: Dialog,
    from_tag: String,
    cseq: u32,
}

impl Phone {
    /// Registers, reports the outcome on `registered`, takes calls until `stop` turns
    /// true, then unregisters.
    pub(crate) async fn run(
        self,
        shared: Arc<Shared>,
        registered: UnboundedSender<Result<(), String>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let (invites, mut incoming) = unbounded_channel();
        let reader = tokio::spawn(self.endpoint.clone().read(Some(invites)));
        let mut registration = Registration {
            dialog: self
                .endpoint
                .dialog(&format!("reg-{}@amico-load", unique())),
            from_tag: unique(),
            cseq: 0,
        };
        let expires = shared.options.expires;
        let mut refresh = match self.register(&mut registration, expires).await {
            Ok(granted) => {
                shared.recorder.lock().expect("recorder").registered += 1;
                let _ = registered.send(Ok(()));
                Instant::now() + Duration::from_secs(u64::from(granted.max(2) / 2))
            }
            Err(why) => {
                shared
                    .recorder
                    .lock()
                    .expect("recorder")
                    .registration_failures += 1;
                let _ = registered.send(Err(format!("{}: {why}", self.user)));
                reader.abort();
                return;
            }
        };
        let mut rng = Rng::new(self.seed);
        let mut calls = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                invite = incoming.recv() => {
                    let Some((invite, receiver)) = invite else {
                        // The reader ended: the connection to the ACD is gone.
                        shared.recorder.lock().expect("recorder").connections_lost += 1;
                        break;
                    };
                    let answer_after = shared.options.answer_after.sample(&mut rng);
                    let talk = shared.options.talk.sample(&mut rng);
                    let dialog = self.endpoint.accept(&invite, receiver);
                    let shared = shared.clone();
                    let user = self.user.clone();
                    calls.spawn(async move {
                        answer(&shared, dialog, invite, &user, answer_after, talk).await;
                    });
                }
                _ = sleep_until(refresh) => {
                    // RFC 3261 §10.2.4: refresh before the binding expires.
                    refresh = match self.register(&mut registration, expires).await {
                        Ok(granted) => Instant::now() + Duration::from_secs(u64::from(granted.max(2) / 2)),
                        Err(_) => Instant::now() + T2,
                    };
                }
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
                Some(_) = calls.join_next(), if !calls.is_empty() => {}
            }
        }
        calls.abort_all();
        // RFC 3261 §10.2.2: Expires 0 removes the binding, so the ACD neither rings nor
        // probes a phone that has gone.
        let _ = self.register(&mut registration, 0).await;
        reader.abort();
    }

    /// One REGISTER, answered once if challenged; the lifetime granted.
    async fn register(&self, registration: &mut Registration, expires: u32) -> Result<u32, String> {
        let endpoint = &self.endpoint;
        let server = endpoint.server;
        let request_uri = endpoint.server_uri(None);
        let (via, contact) = (endpoint.via(), endpoint.contact_uri(&self.user));
        let mut authorization: Option<(&str, String)> = None;
        for _attempt in 0..2 {
            registration.cseq += 1;
            let cseq = registration.cseq;
            let credentials = authorization
                .as_ref()
                .map(|(name, value)| format!("{name}: {value}\r\n"))
                .unwrap_or_default();
            let text = format!(
                "REGISTER {request_uri} SIP/2.0\r\nVia: {via};branch={};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{user}@{server}>;tag={tag}\r\n\
                 To: <sip:{user}@{server}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n\
                 Contact: <{contact}>\r\nExpires: {expires}\r\n{credentials}\
                 User-Agent: amico-load\r\nContent-Length: 0\r\n\r\n",
                branch(),
                user = self.user,
                tag = registration.from_tag,
                call_id = registration.dialog.call_id,
            );
            let response = registration
                .dialog
                .transact(&text, cseq, "REGISTER", |_| {})
                .await
                .map_err(|failure| format!("REGISTER got no answer ({failure:?})"))?;
            match response.code() {
                Some(200..=299) => return Ok(granted_expires(&response).unwrap_or(expires)),
                Some(code @ (401 | 407)) if authorization.is_none() => {
                    let header = if code == 401 {
                        "www-authenticate"
                    } else {
                        "proxy-authenticate"
                    };
                    let challenge =
                        Challenge::first(response.headers(header)).ok_or_else(|| {
                            format!(
                                "{code} without a digest challenge we can answer (MD5 or SHA-256)"
                            )
                        })?;
                    // A fresh nonce per REGISTER: nc starts at 1 (RFC 7616 §3.4).
                    let value = challenge.authorization(
                        &self.user,
                        &self.password,
                        "REGISTER",
                        &request_uri,
                        1,
                        &unique(),
                    );
                    // RFC 3261 §22.2, §22.3: the header answering the challenge's kind.
                    let name = if code == 401 {
                        "Authorization"
                    } else {
                        "Proxy-Authorization"
                    };
                    authorization = Some((name, value));
                }
                Some(code) => return Err(format!("REGISTER answered {code}")),
                None => return Err("REGISTER answered with a request".into()),
            }
        }
        Err("the credentials were refused".into())
    }
}

/// The SDP answer (RFC 3264 §6): PCMU and telephone-event towards the agents' media
/// socket.
fn answer_sdp(endpoint: &Endpoint, port: u16) -> String {
    let ip = endpoint.local.ip();
    format!(
        "v=0\r\no=amico-load 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

/// An agent's RTP stream, stopped when dropped.
struct Speaking<'a> {
    shared: &'a Shared,
    id: u64,
}

impl<'a> Speaking<'a> {
    fn start(shared: &'a Shared, offer: &str) -> Self {
        let id = next_id();
        shared.agent_media.start(id, offer);
        Speaking { shared, id }
    }
}

impl Drop for Speaking<'_> {
    fn drop(&mut self) {
        self.shared.agent_media.stop(self.id);
    }
}

/// The call an INVITE's From names (see [`super::trunk::caller_user`]).
fn call_number(invite: &Message) -> Option<u64> {
    let from = invite.header("from")?;
    super::trunk::call_number(user_of(uri_of(from))?)
}

/// Answers one INVITE and follows the call to its end.
async fn answer(
    shared: &Shared,
    mut dialog: Dialog,
    invite: Message,
    user: &str,
    answer_after: Duration,
    talk: Duration,
) {
    let received = invite.received;
    let track =
        call_number(&invite).and_then(|n| shared.calls.lock().expect("calls").get(&n).cloned());
    {
        let mut recorder = shared.recorder.lock().expect("recorder");
        recorder.agent_invites += 1;
        match &track {
            // The first agent rung for the call measures the route; a second one (after a
            // ring no answer) does not.
            Some(track) if !track.routed.swap(true, Ordering::AcqRel) => {
                if let Some(sent) = track.sent.get() {
                    record(
                        &mut recorder.route,
                        received.saturating_duration_since(*sent),
                    );
                }
            }
            Some(_) => {}
            None => recorder.uncorrelated += 1,
        }
    }
    let endpoint = dialog.endpoint.clone();
    let tag = unique();
    let contact = format!("Contact: <{}>\r\n", endpoint.contact_uri(user));
    // RFC 3261 §13.3.1.1: ringing at once.
    let mut last = invite.response(180, "Ringing", Some(&tag), &contact, "");
    dialog.reply(&invite, &last).await;

    // Ringing until the answer, or until the ACD cancels (RFC 3261 §9.2).
    let answer_at = received + answer_after;
    loop {
        let Some(message) = dialog.next(answer_at).await else {
            break;
        };
        if is_request(&message, "INVITE") {
            // §17.2.1: a retransmitted INVITE gets the last response again.
            dialog.reply(&message, &last).await;
        } else if is_request(&message, "CANCEL") {
            let ok = message.response(200, "OK", Some(&tag), "", "");
            dialog.reply(&message, &ok).await;
            let terminated = invite.response(487, "Request Terminated", Some(&tag), "", "");
            dialog.reply(&invite, &terminated).await;
            shared.recorder.lock().expect("recorder").agent_cancelled += 1;
            // §17.2.1: the 487 is retransmitted until the ACK (Timer G, on UDP alone).
            let resend = !endpoint.transport.reliable();
            let _ = await_ack(&mut dialog, &invite, &terminated, resend).await;
            return;
        }
    }

    let sdp = answer_sdp(&endpoint, shared.agent_media.port);
    last = invite.response(200, "OK", Some(&tag), &contact, &sdp);
    dialog.reply(&invite, &last).await;
    // §13.3.1.4: a 2xx is retransmitted by the UAS core itself, whatever the transport.
    let connected = match await_ack(&mut dialog, &invite, &last, true).await {
        Acked::Yes(at) => at,
        // The caller left as the agent answered: the trunk side counts the call.
        Acked::Bye => return,
        // §13.3.1.4: no ACK within 64·T1; the ACD has given the call up too.
        Acked::No => {
            shared.recorder.lock().expect("recorder").agent_unacked += 1;
            return;
        }
    };
    {
        let mut recorder = shared.recorder.lock().expect("recorder");
        recorder.connected += 1;
        record(
            &mut recorder.ring,
            connected.saturating_duration_since(received),
        );
    }
    if let Some(track) = &track {
        track.connected_at.set(connected).ok();
        track.connected.store(true, Ordering::Release);
        track.connect.notify_one();
    }
    let _stream = shared
        .options
        .rtp
        .then(|| Speaking::start(shared, &invite.body));

    // Talking until the agent hangs up, or the ACD does (the caller left).
    let hang_up = Instant::now() + talk;
    loop {
        let Some(message) = dialog.next(hang_up).await else {
            break;
        };
        match message.method() {
            Some("BYE") => {
                let ok = message.response(200, "OK", None, "", "");
                dialog.reply(&message, &ok).await;
                return;
            }
            Some("INVITE") if message.cseq() == invite.cseq() => {
                dialog.reply(&message, &last).await
            }
            Some("INVITE") => {
                let ok = message.response(200, "OK", None, &contact, &sdp);
                dialog.reply(&message, &ok).await;
            }
            Some("ACK") | None => {}
            Some(_) => {
                let ok = message.response(200, "OK", None, "", "");
                dialog.reply(&message, &ok).await;
            }
        }
    }
    // RFC 3261 §12.1.1, §12.2.1.1: our BYE goes to the INVITE's Contact with the route set
    // from its Record-Route in order; From is the INVITE's To with our tag.
    let target = invite
        .header("contact")
        .map(|contact| uri_of(contact).to_owned())
        .unwrap_or_else(|| endpoint.server_uri(None));
    let to = invite.header("from").unwrap_or_default();
    let invite_to = invite.header("to").unwrap_or_default();
    let from = if tag_of(invite_to).is_some() {
        invite_to.to_owned()
    } else {
        format!("{invite_to};tag={tag}")
    };
    let mut bye = format!(
        "BYE {target} SIP/2.0\r\nVia: {};branch={};rport\r\nMax-Forwards: 70\r\n\
         From: {from}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\n",
        endpoint.via(),
        branch(),
        dialog.call_id
    );
    for route in invite.headers("record-route") {
        bye.push_str(&format!("Route: {route}\r\n"));
    }
    bye.push_str("Content-Length: 0\r\n\r\n");
    // The caller learns that its agent left (its survey begins).
    if let Some(track) = &track {
        track.agent_left.store(true, Ordering::Release);
        track.leave.notify_one();
    }
    let ok = matches!(
        dialog.transact(&bye, 1, "BYE", |_| {}).await,
        Ok(response) if response.code().is_some_and(|code| (200..300).contains(&code))
    );
    if !ok {
        shared.recorder.lock().expect("recorder").agent_bye_failures += 1;
    }
}

/// How waiting for an ACK ended.
enum Acked {
    /// It came, then.
    Yes(Instant),
    /// A BYE came first.
    Bye,
    /// Nothing within 64·T1.
    No,
}

/// Waits for the ACK of `response` to `invite` for at most 64·T1, resending it meanwhile
/// if `retransmit` (T1 doubling up to T2, RFC 3261 §13.3.1.4 and §17.2.1 Timer G). A
/// retransmitted INVITE gets the response again at once.
async fn await_ack(
    dialog: &mut Dialog,
    invite: &Message,
    response: &str,
    retransmit: bool,
) -> Acked {
    let give_up = Instant::now() + TIMEOUT;
    let mut interval = T1;
    let mut resend = Instant::now() + interval;
    while Instant::now() < give_up {
        match dialog.next(resend.min(give_up)).await {
            Some(message) if is_request(&message, "ACK") => return Acked::Yes(message.received),
            Some(message) if is_request(&message, "INVITE") => {
                dialog.reply(&message, response).await;
            }
            // A BYE before the ACK (the caller left at that moment): answer it; the call
            // is over.
            Some(message) if is_request(&message, "BYE") => {
                let ok = message.response(200, "OK", None, "", "");
                dialog.reply(&message, &ok).await;
                return Acked::Bye;
            }
            Some(_) => {}
            None => {
                if retransmit {
                    dialog.reply(invite, response).await;
                }
                interval = (interval * 2).min(T2);
                resend = Instant::now() + interval;
            }
        }
    }
    Acked::No
}

/// Registers `agents` phones and returns once each has answered or failed, with a
/// deadline: the tasks, and the failures.
pub(crate) async fn start(
    shared: &Arc<Shared>,
    phones: Vec<Phone>,
    stop: &watch::Receiver<bool>,
) -> (tokio::task::JoinSet<()>, Vec<String>) {
    let count = phones.len();
    let (registered, mut outcomes): (_, UnboundedReceiver<Result<(), String>>) =
        unbounded_channel();
    let mut tasks = tokio::task::JoinSet::new();
    for phone in phones {
        tasks.spawn(phone.run(shared.clone(), registered.clone(), stop.clone()));
    }
    drop(registered);
    let mut failures = Vec::new();
    let deadline = Instant::now() + TIMEOUT + Duration::from_secs(5);
    for _ in 0..count {
        tokio::select! {
            outcome = outcomes.recv() => match outcome {
                Some(Ok(())) => {}
                Some(Err(why)) => failures.push(why),
                None => break,
            },
            _ = sleep_until(deadline) => {
                failures.push("registrations still unanswered at the deadline".into());
                break;
            }
        }
    }
    (tasks, failures)
}
