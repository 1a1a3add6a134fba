//! One socket — a UDP socket, or a TCP or TLS connection to the ACD — and a lean
//! transaction layer over it: messages are parsed once by the socket's reader task and
//! handed to the dialog that owns their Call-ID; a new INVITE opens a dialog; OPTIONS and
//! strays are answered on the spot.
//!
//! A [`Dialog`] sends requests with RFC 3261 §17.1 retransmissions on UDP (Timer A for
//! INVITE, Timer E for the rest; none on TCP and TLS, §17.1.1.2) and waits for their
//! final response, correlated by CSeq; its other messages queue for the dialog's own loop.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::time::{Instant, sleep_until};

use super::message::{First, Frame, Message, frame};
use super::options::Transport;

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
type Invites = UnboundedSender<(Message, UnboundedReceiver<Message>)>;
type StreamReader = Box<dyn AsyncRead + Send + Unpin>;

/// What a TLS client needs: the ACD's name to check, and the roots it must chain to.
pub(crate) struct Tls {
    connector: tokio_rustls::TlsConnector,
    name: rustls::pki_types::ServerName<'static>,
}

impl Tls {
    /// Trusts the certificates in the PEM file `ca`, for an ACD named `name` (its IP
    /// address when `None`).
    pub(crate) fn new(ca: &Path, name: Option<&str>, server: SocketAddr) -> anyhow::Result<Tls> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName};
        let mut roots = rustls::RootCertStore::empty();
        for certificate in CertificateDer::pem_file_iter(ca)
            .with_context(|| format!("--tls-ca {}: cannot read it", ca.display()))?
        {
            let certificate = certificate
                .with_context(|| format!("--tls-ca {}: not PEM certificates", ca.display()))?;
            roots
                .add(certificate)
                .with_context(|| format!("--tls-ca {}: a certificate refused", ca.display()))?;
        }
        if roots.is_empty() {
            anyhow::bail!("--tls-ca {}: no certificate in it", ca.display());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("the TLS protocol versions")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = match name {
            Some(name) => ServerName::try_from(name.to_owned())
                .with_context(|| format!("--tls-name '{name}' is not a DNS name or address"))?,
            None => ServerName::IpAddress(server.ip().into()),
        };
        Ok(Tls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            name,
        })
    }
}

/// How an endpoint's messages leave.
enum Link {
    /// Datagrams from its own socket.
    Datagram(UdpSocket),
    /// Bytes queued for the connection's writer task, which writes what has queued in
    /// one go.
    Stream(UnboundedSender<Vec<u8>>),
}

/// A socket (or a connection to the ACD), its reader and its dialogs by Call-ID.
pub(crate) struct Endpoint {
    link: Link,
    /// A connection's read half, until the reader takes it.
    stream_reader: Mutex<Option<StreamReader>>,
    /// How the messages travel.
    pub(crate) transport: Transport,
    /// The socket's address (our Via and Contact).
    pub(crate) local: SocketAddr,
    /// The ACD: where requests go.
    pub(crate) server: SocketAddr,
    routes: Routes,
    /// The connection was closed or broke: nothing more will come or go.
    closed: AtomicBool,
}

impl Endpoint {
    /// A socket on `local` (port 0: any) for talking to `server` over `transport`: for
    /// TCP and TLS, a connection to it (with `tls`'s settings for TLS).
    pub(crate) async fn open(
        transport: Transport,
        tls: Option<&Tls>,
        local: SocketAddr,
        server: SocketAddr,
    ) -> anyhow::Result<Arc<Self>> {
        let (link, stream_reader, local) = match transport {
            Transport::Udp => {
                let socket = UdpSocket::bind(local)
                    .await
                    .with_context(|| format!("cannot bind a UDP socket on {local}"))?;
                let local = socket.local_addr()?;
                (Link::Datagram(socket), None, local)
            }
            Transport::Tcp | Transport::Tls => {
                let socket = if server.is_ipv4() {
                    TcpSocket::new_v4()
                } else {
                    TcpSocket::new_v6()
                }?;
                socket
                    .bind(local)
                    .with_context(|| format!("cannot bind a TCP socket on {local}"))?;
                let stream = socket
                    .connect(server)
                    .await
                    .with_context(|| format!("cannot connect to {server} over TCP"))?;
                stream.set_nodelay(true)?;
                let local = stream.local_addr()?;
                let (reader, writer): (StreamReader, Box<dyn AsyncWrite + Send + Unpin>) = match tls
                {
                    None if transport == Transport::Tcp => {
                        let (reader, writer) = stream.into_split();
                        (Box::new(reader), Box::new(writer))
                    }
                    Some(tls) if transport == Transport::Tls => {
                        let stream = tls
                            .connector
                            .connect(tls.name.clone(), stream)
                            .await
                            .with_context(|| format!("the TLS handshake with {server}"))?;
                        let (reader, writer) = tokio::io::split(stream);
                        (Box::new(reader), Box::new(writer))
                    }
                    _ => anyhow::bail!("TLS settings are for --transport tls alone"),
                };
                let (queue, queued) = unbounded_channel();
                tokio::spawn(write_stream(writer, queued));
                (Link::Stream(queue), Some(reader), local)
            }
        };
        Ok(Arc::new(Endpoint {
            link,
            stream_reader: Mutex::new(stream_reader),
            transport,
            local,
            server,
            routes: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        }))
    }

    /// `SIP/2.0/UDP 127.0.0.1:40000`: the start of our Via (RFC 3261 §18.1.1, §20.42).
    pub(crate) fn via(&self) -> String {
        format!(
            "SIP/2.0/{} {}",
            self.transport.name().to_ascii_uppercase(),
            self.local
        )
    }

    /// The `;transport=` parameter of our URIs (RFC 3261 §19.1.1): none for UDP.
    fn uri_transport(&self) -> String {
        match self.transport {
            Transport::Udp => String::new(),
            other => format!(";transport={}", other.name()),
        }
    }

    /// `user`'s URI at this socket: our Contact.
    pub(crate) fn contact_uri(&self, user: &str) -> String {
        format!("sip:{user}@{}{}", self.local, self.uri_transport())
    }

    /// The ACD's URI, for `user` (a DID) or none (the registrar).
    pub(crate) fn server_uri(&self, user: Option<&str>) -> String {
        let user = user.map(|user| format!("{user}@")).unwrap_or_default();
        format!("sip:{user}{}{}", self.server, self.uri_transport())
    }

    /// Whether the connection is gone (never, for UDP).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Reads messages until the task is aborted or the connection ends: each goes to its
    /// Call-ID's dialog; a new INVITE opens one and goes to `invites` with its receiver;
    /// the rest are answered here. When a connection ends, every dialog on it hears so
    /// (its channel closes) and so does `invites`.
    pub(crate) async fn read(self: Arc<Self>, invites: Option<Invites>) {
        match &self.link {
            Link::Datagram(socket) => {
                let mut buffer = vec![0u8; 65_536];
                loop {
                    let (length, source) = match socket.recv_from(&mut buffer).await {
                        Ok(received) => received,
                        // ICMP errors surface here on some systems; the socket stays usable.
                        Err(_) => continue,
                    };
                    if let Some(message) = Message::parse(&buffer[..length], source) {
                        self.dispatch(message, invites.as_ref()).await;
                    }
                }
            }
            Link::Stream(_) => {
                let reader = self.stream_reader.lock().expect("reader").take();
                if let Some(reader) = reader {
                    self.read_stream(reader, invites.as_ref()).await;
                }
                self.closed.store(true, Ordering::Release);
                // Every dialog's receiver ends: their transactions fail as closed.
                self.routes.lock().expect("routes").clear();
            }
        }
    }

    /// A connection's messages, framed (RFC 3261 §18.3), until it ends or breaks.
    async fn read_stream(self: &Arc<Self>, mut reader: StreamReader, invites: Option<&Invites>) {
        let mut buffer: Vec<u8> = Vec::with_capacity(16_384);
        loop {
            loop {
                match frame(&buffer) {
                    Frame::Message(length) => {
                        let message = Message::parse(&buffer[..length], self.server);
                        buffer.drain(..length);
                        if let Some(message) = message {
                            self.dispatch(message, invites).await;
                        }
                    }
                    Frame::Blank(length) => {
                        buffer.drain(..length);
                    }
                    Frame::Partial => break,
                    // A stream that cannot be framed cannot be resynchronised: it ends.
                    Frame::Bad(_) => return,
                }
            }
            // `frame` refuses a message over 64 KiB, so the buffer stays bounded.
            buffer.reserve(16_384);
            match reader.read_buf(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    /// Hands a message to its dialog, or answers it here.
    async fn dispatch(self: &Arc<Self>, message: Message, invites: Option<&Invites>) {
        let Some(call_id) = message.call_id().map(str::to_owned) else {
            return;
        };
        let message = {
            let routes = self.routes.lock().expect("routes");
            match routes.get(&call_id) {
                Some(route) => match route.send(message) {
                    Ok(()) => return,
                    Err(returned) => returned.0,
                },
                None => message,
            }
        };
        self.stray(message, invites).await;
    }

    /// A message for no dialog of ours.
    async fn stray(self: &Arc<Self>, message: Message, invites: Option<&Invites>) {
        let tag = unique();
        match message.method() {
            Some("INVITE") if invites.is_some() => {
                // The route is in place before the INVITE is handed over, so that a
                // retransmission finds its dialog however the tasks are scheduled.
                let receiver = self.route(message.call_id().unwrap_or_default());
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
    fn route(&self, call_id: &str) -> UnboundedReceiver<Message> {
        let (sender, receiver) = unbounded_channel();
        self.routes
            .lock()
            .expect("routes")
            .insert(call_id.to_owned(), sender);
        receiver
    }

    /// Sends `text` to `to` (on a connection: to its other end); a send error is a lost
    /// datagram, as UDP loses them, or a connection gone, which its reader reports.
    pub(crate) async fn send_to(&self, text: &str, to: SocketAddr) {
        match &self.link {
            Link::Datagram(socket) => {
                let _ = socket.send_to(text.as_bytes(), to).await;
            }
            Link::Stream(queue) => {
                let _ = queue.send(text.as_bytes().to_vec());
            }
        }
    }

    /// Sends `text` to the ACD.
    pub(crate) async fn send(&self, text: &str) {
        self.send_to(text, self.server).await;
    }

    /// A new dialog with its own Call-ID.
    pub(crate) fn dialog(self: &Arc<Self>, call_id: &str) -> Dialog {
        let receiver = self.route(call_id);
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

/// Writes what `queued` brings to a connection, what has queued meanwhile in one write,
/// until the endpoint is dropped or the connection breaks.
async fn write_stream(
    mut writer: Box<dyn AsyncWrite + Send + Unpin>,
    mut queued: UnboundedReceiver<Vec<u8>>,
) {
    let mut batch = Vec::with_capacity(16_384);
    while let Some(first) = queued.recv().await {
        batch.clear();
        batch.extend_from_slice(&first);
        while batch.len() < 65_536 {
            match queued.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if writer.write_all(&batch).await.is_err() || writer.flush().await.is_err() {
            return;
        }
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
    /// (§17.1.2.2); on TCP and TLS the connection delivers it, so it is sent once.
    /// `provisional` sees each 1xx. Messages that are not its responses wait in the
    /// dialog for [`Dialog::next`].
    pub(crate) async fn transact(
        &mut self,
        request: &str,
        cseq: u32,
        method: &str,
        mut provisional: impl FnMut(&Message),
    ) -> Result<Message, Failure> {
        if self.endpoint.is_closed() {
            return Err(Failure::Closed);
        }
        let invite = method == "INVITE";
        let reliable = self.endpoint.transport.reliable();
        self.endpoint.send(request).await;
        let started = Instant::now();
        let mut interval = T1;
        let mut retransmit = (!reliable).then_some(started + interval);
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
                    } else if !reliable {
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
