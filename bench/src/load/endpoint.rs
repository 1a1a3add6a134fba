//! One UDP socket and a lean transaction layer over it: datagrams are parsed once by the
//! socket's reader task and handed to the dialog that owns their Call-ID; a new INVITE
//! opens a dialog; OPTIONS and strays are answered on the spot.
//!
//! A [`Dialog`] sends requests with RFC 3261 §17.1 retransmissions (Timer A for INVITE,
//! Timer E for the rest, on UDP) and waits for their final response, correlated by
//! CSeq; its other messages queue for the dialog's own loop.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::time::{Instant, sleep_until};

use super::message::{First, Message};

/// RFC 3261 §17.1.1.1: the round-trip estimate, 500 ms.
pub(crate) const T1: Duration = Duration::from_millis(500);
/// RFC 3261 §17.1.2.2: the longest interval between non-INVITE retransmissions.
pub(crate) const T2: Duration = Duration::from_secs(4);
/// RFC 3261 §17.1.1.2 Timer B and §17.1.2.2 Timer F: a transaction times out after 64·T1.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(32);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A number unique within this process.
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// A token unique within this process, for branches, tags and Call-IDs.
pub(crate) fn unique() -> String {
    format!("{:x}{:x}", std::process::id(), next_id())
}

/// A new Via branch with the RFC 3261 §8.1.1.7 magic cookie.
pub(crate) fn branch() -> String {
    format!("z9hG4bK{}", unique())
}

type Routes = Mutex<HashMap<String, UnboundedSender<Message>>>;

/// A UDP socket, its reader and its dialogs by Call-ID.
pub(crate) struct Endpoint {
    socket: UdpSocket,
    /// The socket's address (our Via and Contact).
    pub(crate) local: SocketAddr,
    /// The ACD: where requests go.
    pub(crate) server: SocketAddr,
    routes: Routes,
}

impl Endpoint {
    /// Binds `local` (port 0: any) for talking to `server`.
    pub(crate) async fn bind(local: SocketAddr, server: SocketAddr) -> std::io::Result<Arc<Self>> {
        let socket = UdpSocket::bind(local).await?;
        let local = socket.local_addr()?;
        Ok(Arc::new(Endpoint {
            socket,
            local,
            server,
            routes: Mutex::new(HashMap::new()),
        }))
    }

    /// Reads datagrams until the task is aborted: each goes to its Call-ID's dialog; a
    /// new INVITE opens one and goes to `invites` with its receiver; the rest are
    /// answered here.
    pub(crate) async fn read(
        self: Arc<Self>,
        invites: Option<UnboundedSender<(Message, UnboundedReceiver<Message>)>>,
    ) {
        let mut buffer = vec![0u8; 65_536];
        loop {
            let (length, source) = match self.socket.recv_from(&mut buffer).await {
                Ok(received) => received,
                // ICMP errors surface here on some systems; the socket stays usable.
                Err(_) => continue,
            };
            let Some(message) = Message::parse(&buffer[..length], source) else {
                continue;
            };
            let Some(call_id) = message.call_id().map(str::to_owned) else {
                continue;
            };
            let message = {
                let routes = self.routes.lock().expect("routes");
                match routes.get(&call_id) {
                    Some(route) => match route.send(message) {
                        Ok(()) => continue,
                        Err(returned) => returned.0,
                    },
                    None => message,
                }
            };
            self.stray(message, invites.as_ref()).await;
        }
    }

    /// A message for no dialog of ours.
    async fn stray(
        self: &Arc<Self>,
        message: Message,
        invites: Option<&UnboundedSender<(Message, UnboundedReceiver<Message>)>>,
    ) {
        let tag = unique();
        match message.method() {
            Some("INVITE") if invites.is_some() => {
                // The route is in place before the INVITE is handed over, so that a
                // retransmission finds its dialog however the tasks are scheduled.
                let receiver = self.open(message.call_id().unwrap_or_default());
                if let Some(invites) = invites {
                    // A closed channel: the phone is stopping and takes no more calls.
                    let _ = invites.send((message, receiver));
                }
            }
            // RFC 3261 §11.2: OPTIONS outside a dialog (the registrar's probe) gets 200.
            Some("OPTIONS") => {
                let text = message.response(
                    200,
                    "OK",
                    Some(&tag),
                    "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n",
                    "",
                );
                self.send_to(&text, message.source).await;
            }
            // A BYE for a call already over (our 200 was lost, or it crossed ours): the
            // call is gone either way, so say yes rather than 481 (RFC 3261 §15.1.2).
            Some("BYE") => {
                let text = message.response(200, "OK", Some(&tag), "", "");
                self.send_to(&text, message.source).await;
            }
            Some("ACK") | None => {}
            Some(_) => {
                // RFC 3261 §12.2.2: a request for no dialog we know.
                let text =
                    message.response(481, "Call/Transaction Does Not Exist", Some(&tag), "", "");
                self.send_to(&text, message.source).await;
            }
        }
    }

    /// Routes `call_id`'s messages to the receiver from now on.
    fn open(&self, call_id: &str) -> UnboundedReceiver<Message> {
        let (sender, receiver) = unbounded_channel();
        self.routes
            .lock()
            .expect("routes")
            .insert(call_id.to_owned(), sender);
        receiver
    }

    /// Sends `text` to `to`; a send error is a lost datagram, as UDP loses them.
    pub(crate) async fn send_to(&self, text: &str, to: SocketAddr) {
        let _ = self.socket.send_to(text.as_bytes(), to).await;
    }

    /// Sends `text` to the ACD.
    pub(crate) async fn send(&self, text: &str) {
        self.send_to(text, self.server).await;
    }

    /// A new dialog with its own Call-ID.
    pub(crate) fn dialog(self: &Arc<Self>, call_id: &str) -> Dialog {
        let receiver = self.open(call_id);
        Dialog::new(self.clone(), call_id.to_owned(), receiver)
    }

    /// The dialog an INVITE opened (see [`Endpoint::read`]).
    pub(crate) fn accept(
        self: &Arc<Self>,
        invite: &Message,
        receiver: UnboundedReceiver<Message>,
    ) -> Dialog {
        Dialog::new(
            self.clone(),
            invite.call_id().unwrap_or_default().to_owned(),
            receiver,
        )
    }
}

/// Why a client transaction ended without a final response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Timer B or F fired (RFC 3261 §17.1.1.2, §17.1.2.2).
    Timeout,
    /// The endpoint went away.
    Closed,
}

/// The messages of one Call-ID, and its client transactions. Dropping it forgets the
/// Call-ID.
pub(crate) struct Dialog {
    /// The endpoint it is on.
    pub(crate) endpoint: Arc<Endpoint>,
    /// Its Call-ID.
    pub(crate) call_id: String,
    receiver: UnboundedReceiver<Message>,
    /// Messages that arrived during a transaction and were not its responses.
    pending: VecDeque<Message>,
}

impl Drop for Dialog {
    fn drop(&mut self) {
        if let Ok(mut routes) = self.endpoint.routes.lock() {
            routes.remove(&self.call_id);
        }
    }
}

impl Dialog {
    fn new(endpoint: Arc<Endpoint>, call_id: String, receiver: UnboundedReceiver<Message>) -> Self {
        Dialog {
            endpoint,
            call_id,
            receiver,
            pending: VecDeque::new(),
        }
    }

    /// The next message, waiting until `deadline`; `None` at the deadline or when the
    /// endpoint is gone.
    pub(crate) async fn next(&mut self, deadline: Instant) -> Option<Message> {
        if let Some(message) = self.pending.pop_front() {
            return Some(message);
        }
        tokio::select! {
            message = self.receiver.recv() => message,
            _ = sleep_until(deadline) => None,
        }
    }

    /// Sends a request and waits for its final response, retransmitting on UDP: an
    /// INVITE per Timer A until any response (RFC 3261 §17.1.1.2), any other request per
    /// Timer E, T1 doubling up to T2, then every T2 once a provisional response came
    /// (§17.1.2.2). `provisional` sees each 1xx. Messages that are not its responses wait
    /// in the dialog for [`Dialog::next`].
    pub(crate) async fn transact(
        &mut self,
        request: &str,
        cseq: u32,
        method: &str,
        mut provisional: impl FnMut(&Message),
    ) -> Result<Message, Failure> {
        let invite = method == "INVITE";
        self.endpoint.send(request).await;
        let started = Instant::now();
        let mut interval = T1;
        let mut retransmit = Some(started + interval);
        let mut timeout = started + TIMEOUT;
        loop {
            let wake = retransmit.map_or(timeout, |at| at.min(timeout));
            let message = tokio::select! {
                message = self.receiver.recv() => match message {
                    Some(message) => message,
                    None => return Err(Failure::Closed),
                },
                _ = sleep_until(wake) => {
                    let now = Instant::now();
                    if now >= timeout {
                        return Err(Failure::Timeout);
                    }
                    self.endpoint.send(request).await;
                    interval = if invite { interval * 2 } else { (interval * 2).min(T2) };
                    retransmit = Some(now + interval);
                    continue;
                }
            };
            if !message.answers(cseq, method) {
                self.pending.push_back(message);
                continue;
            }
            match message.code() {
                Some(code) if code < 200 => {
                    provisional(&message);
                    if invite {
                        // §17.1.1.2: a provisional response stops Timer A; the caller
                        // waits for the final response as long as the INVITE may ring.
                        retransmit = None;
                        timeout = Instant::now() + Duration::from_secs(300);
                    } else {
                        retransmit = Some(Instant::now() + T2);
                        interval = T2;
                    }
                }
                _ => return Ok(message),
            }
        }
    }

    /// Answers a request of this dialog.
    pub(crate) async fn reply(&self, request: &Message, text: &str) {
        self.endpoint.send_to(text, request.source).await;
    }
}

/// Whether `message` is a request with `method`.
pub(crate) fn is_request(message: &Message, method: &str) -> bool {
    matches!(&message.first, First::Request { method: m, .. } if m == method)
}
