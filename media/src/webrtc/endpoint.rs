//! The UDP socket every browser leg shares, and the routing of its datagrams to the legs.

use super::rtc_leg::RtcLeg;
use super::{WebRtcError, stun};
use crate::counters::{DropReason, MediaCounters};
use crate::{AudioFormat, Codec};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use str0m::config::DtlsCert;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Datagrams waiting for one leg's session task before new ones are dropped: a second of a
/// browser's audio, more than any burst of checks or a DTLS flight.
const LEG_QUEUE: usize = 64;

/// Larger than any datagram a browser sends us (1200-byte DTLS and SRTP at most).
const RECEIVE_BUFFER: usize = 2048;

/// Remote addresses remembered per leg: ICE may switch the nominated pair a few times.
const MAX_ADDRESSES_PER_LEG: usize = 8;

/// One UDP socket on the media address serving every browser agent leg (str0m's "many
/// sessions per socket"), with ICE-lite host candidates on it.
///
/// A task reads the socket and routes each datagram to its leg's session: a connectivity
/// check by the ufrag in its USERNAME (RFC 8445 §7.2.2), anything else (DTLS, SRTP, SRTCP,
/// RFC 7983 §7) by its source address, which a leg claims once it has sent there: str0m only
/// sends to an address that passed a check with the leg's password. The leg's own str0m
/// then checks again ([`str0m::Rtc::accepts`]). Datagrams nobody claims are counted as
/// [`DropReason::ForeignSource`] and dropped.
///
/// Clones share the socket; the reading task stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct WebRtcEndpoint {
    shared: Arc<Shared>,
    _reader: Arc<Reader>,
}

struct Shared {
    socket: UdpSocket,
    local_addr: SocketAddr,
    /// One certificate for every leg: its fingerprint is in each SDP (RFC 8122 §5), and
    /// making a key pair per call would cost more than the call's DTLS handshake.
    certificate: DtlsCert,
    by_ufrag: DashMap<Box<str>, Route>,
    by_source: DashMap<SocketAddr, Route>,
    counters: Arc<MediaCounters>,
    next_leg: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("local_addr", &self.local_addr)
            .field("legs", &self.by_ufrag.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
struct Route {
    leg: u64,
    sender: mpsc::Sender<Datagram>,
}

/// Aborts the reading task with the last endpoint handle.
#[derive(Debug)]
struct Reader(JoinHandle<()>);

impl Drop for Reader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A datagram routed to a leg.
#[derive(Debug)]
pub(crate) struct Datagram {
    pub(crate) source: SocketAddr,
    pub(crate) received_at: Instant,
    pub(crate) bytes: Vec<u8>,
}

impl WebRtcEndpoint {
    /// Binds the socket on `address` (the configured media address; port 0 lets the system
    /// choose, for tests) and starts reading it. Must run inside a Tokio runtime. The DTLS
    /// certificate is made here, once.
    pub fn bind(address: SocketAddr, counters: Arc<MediaCounters>) -> Result<Self, WebRtcError> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(WebRtcError::NoRuntime);
        };
        if str0m::Candidate::host(address, "udp").is_err() {
            return Err(WebRtcError::UnusableAddress { address });
        }
        let certificate = str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate()
            .ok_or(WebRtcError::NoCertificate)?;
        let error = |source| WebRtcError::Bind { address, source };
        let socket = std::net::UdpSocket::bind(address).map_err(error)?;
        socket.set_nonblocking(true).map_err(error)?;
        let local_addr = socket.local_addr().map_err(error)?;
        let socket = {
            let _entered = runtime.enter();
            UdpSocket::from_std(socket).map_err(error)?
        };
        let shared = Arc::new(Shared {
            socket,
            local_addr,
            certificate,
            by_ufrag: DashMap::new(),
            by_source: DashMap::new(),
            counters,
            next_leg: AtomicU64::new(1),
        });
        let reader = runtime.spawn(read(Arc::clone(&shared)));
        tracing::debug!(%local_addr, "WebRTC endpoint bound");
        Ok(Self {
            shared,
            _reader: Arc::new(Reader(reader)),
        })
    }

    /// The socket's address: every leg's host candidate.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// A new browser agent leg offering `codecs` (PCMU and/or PCMA, preferred first) and
    /// telephone-event. Its connectivity checks are routed to it from now on; what arrives
    /// before it is bridged waits (up to a second's worth) for the session.
    pub fn create_leg(&self, codecs: &[Codec]) -> Result<WebRtcLeg, WebRtcError> {
        let now = tokio::time::Instant::now().into_std();
        let rtc = Box::new(RtcLeg::new(
            now,
            self.shared.local_addr,
            codecs,
            self.shared.certificate.clone(),
        )?);
        let (sender, receiver) = mpsc::channel(LEG_QUEUE);
        let id = self.shared.next_leg.fetch_add(1, Ordering::Relaxed);
        let ufrag: Box<str> = rtc.local_ufrag().into();
        // 16 random characters (RFC 8445 §5.3 asks for 24 bits at least): a clash with a
        // live leg is not worth a retry path, but must never take over its route.
        match self.shared.by_ufrag.entry(ufrag.clone()) {
            Entry::Occupied(_) => return Err(WebRtcError::UfragInUse),
            Entry::Vacant(vacant) => {
                vacant.insert(Route {
                    leg: id,
                    sender: sender.clone(),
                });
            }
        }
        Ok(WebRtcLeg {
            rtc,
            link: Link {
                shared: Arc::clone(&self.shared),
                id,
                ufrag,
                receiver,
                sender,
                addresses: Vec::new(),
            },
        })
    }

    /// How many legs have routes now (created and not yet dropped).
    pub fn legs(&self) -> usize {
        self.shared.by_ufrag.len()
    }
}

async fn read(shared: Arc<Shared>) {
    let mut buffer = vec![0; RECEIVE_BUFFER];
    loop {
        match shared.socket.recv_from(&mut buffer).await {
            Ok((len, source)) => shared.route(source, &buffer[..len]),
            // ICMP errors from earlier sends surface here; the socket is still fine.
            Err(error) => tracing::trace!(%error, "WebRTC receive error"),
        }
    }
}

impl Shared {
    fn route(&self, source: SocketAddr, datagram: &[u8]) {
        let route = match stun::receiver_ufrag(datagram) {
            Some(ufrag) => self.by_ufrag.get(ufrag).map(|route| route.clone()),
            None => self.by_source.get(&source).map(|route| route.clone()),
        };
        let Some(route) = route else {
            tracing::trace!(%source, "WebRTC datagram for no leg");
            self.counters.add_dropped(DropReason::ForeignSource);
            return;
        };
        let datagram = Datagram {
            source,
            received_at: tokio::time::Instant::now().into_std(),
            bytes: datagram.to_vec(),
        };
        if let Err(error) = route.sender.try_send(datagram) {
            // The leg's session is behind or gone; its str0m retransmits what matters.
            tracing::debug!(leg = route.leg, %source, %error, "WebRTC datagram dropped");
            self.counters.add_dropped(DropReason::Behind);
        }
    }
}

/// A browser agent leg before it is bridged: create it with
/// [`WebRtcEndpoint::create_leg`], put [`create_offer`](Self::create_offer) in the INVITE,
/// give the 200 OK's body to [`accept_answer`](Self::accept_answer), then
/// [`MediaSession::bridge_agent`](crate::MediaSession::bridge_agent). Dropping it releases
/// its routes on the endpoint.
#[derive(Debug)]
pub struct WebRtcLeg {
    /// Boxed: a str0m session is about 10 KB, and legs move through channels.
    rtc: Box<RtcLeg>,
    link: Link,
}

impl WebRtcLeg {
    /// The SDP offer for the INVITE to the browser: `UDP/TLS/RTP/SAVPF`, `a=fingerprint`,
    /// `a=setup:actpass`, ICE ufrag and password, `a=ice-lite`, the host candidate,
    /// `a=rtcp-mux`, `a=group:BUNDLE`, `a=mid`, the leg's codecs and telephone-event 101,
    /// sendrecv (RFC 8829 §5.2.1). Calling it again makes a fresh offer, which replaces the
    /// previous one.
    pub fn create_offer(&mut self) -> Result<String, WebRtcError> {
        self.rtc.create_offer()
    }

    /// Applies the browser's SDP answer, returning the format it chose: its first G.711 law
    /// and telephone-event if it kept it.
    pub fn accept_answer(&mut self, answer: &str) -> Result<AudioFormat, WebRtcError> {
        self.rtc.accept_answer(answer)
    }

    /// The endpoint's address, which is the leg's ICE host candidate.
    pub fn local_addr(&self) -> SocketAddr {
        self.link.shared.local_addr
    }

    /// Answers an offer from the browser before the leg is bridged (a re-INVITE that came
    /// early); once bridged, [`MediaSession::answer_agent_offer`](crate::MediaSession::answer_agent_offer)
    /// does it.
    pub fn accept_offer(&mut self, offer: &str) -> Result<String, WebRtcError> {
        self.rtc.accept_offer(offer)
    }

    pub(crate) fn into_parts(self) -> (Box<RtcLeg>, Link) {
        (self.rtc, self.link)
    }
}

/// A leg's share of the endpoint, held by the session task that bridges it: the datagrams
/// routed to the leg, and the socket to send its own.
#[derive(Debug)]
pub(crate) struct Link {
    shared: Arc<Shared>,
    id: u64,
    ufrag: Box<str>,
    receiver: mpsc::Receiver<Datagram>,
    sender: mpsc::Sender<Datagram>,
    addresses: Vec<SocketAddr>,
}

impl Link {
    /// The next datagram routed to this leg.
    pub(crate) async fn recv(&mut self) -> Option<Datagram> {
        self.receiver.recv().await
    }

    /// The endpoint's address, where the leg's datagrams arrive.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Sends a datagram of the leg's str0m. The first send to an address claims the traffic
    /// from it for this leg: str0m only sends to addresses that passed a connectivity check.
    /// Never waits: a full socket buffer drops the datagram.
    pub(crate) fn send(&mut self, destination: SocketAddr, datagram: &[u8]) -> io::Result<usize> {
        if !self.addresses.contains(&destination) {
            self.claim(destination);
        }
        self.shared.socket.try_send_to(datagram, destination)
    }

    fn claim(&mut self, address: SocketAddr) {
        if self.addresses.len() >= MAX_ADDRESSES_PER_LEG {
            let oldest = self.addresses.remove(0);
            self.release(oldest);
        }
        tracing::debug!(leg = self.id, %address, "WebRTC leg claims its ICE address");
        self.shared.by_source.insert(
            address,
            Route {
                leg: self.id,
                sender: self.sender.clone(),
            },
        );
        self.addresses.push(address);
    }

    fn release(&self, address: SocketAddr) {
        self.shared
            .by_source
            .remove_if(&address, |_, route| route.leg == self.id);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for &address in &self.addresses {
            self.release(address);
        }
        self.shared
            .by_ufrag
            .remove_if(&self.ufrag, |_, route| route.leg == self.id);
    }
}
