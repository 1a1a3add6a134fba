//! The UDP socket the SIP stack reads through: it drops what banned sources send before
//! anything is parsed, answers or drops what the stack would silently lose, and counts
//! every message.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rsipstack::platform::net::UdpSocket;
use tracing::{debug, warn};

use crate::counters::{SipCounters, count_start_line};
use crate::security::Security;
use crate::sniff::{Sniffed, sniff};

/// The largest UDP payload (65,535 minus the IP and UDP headers, RFC 768): every datagram
/// is read whole, so that one too large for the stack is answered, not misread.
const MAX_DATAGRAM: usize = 65_507;

thread_local! {
    /// Where datagrams land before they are judged: one buffer per runtime thread, used
    /// only between a readiness and the next await.
    static DATAGRAM: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_DATAGRAM]);
}

/// A UDP socket that looks at each datagram before the stack does (see [`crate::sniff`]).
pub(crate) struct GuardedSocket {
    socket: tokio::net::UdpSocket,
    counters: Arc<SipCounters>,
    security: Arc<Security>,
}

impl GuardedSocket {
    pub(crate) fn new(
        socket: tokio::net::UdpSocket,
        counters: Arc<SipCounters>,
        security: Arc<Security>,
    ) -> Self {
        GuardedSocket {
            socket,
            counters,
            security,
        }
    }

    /// Judges one datagram read into `datagram`: how many bytes to hand to the stack
    /// (copied into `buf`), or a response to send instead.
    fn judge(&self, datagram: &[u8], from: SocketAddr, buf: &mut [u8]) -> Verdict {
        // Keep-alives (RFC 5626 §4.4.1 CRLF) are the stack's business.
        if !self.security.banned(from.ip(), Instant::now())
            && datagram.iter().all(u8::is_ascii_whitespace)
        {
            let len = datagram.len().min(buf.len());
            buf[..len].copy_from_slice(&datagram[..len]);
            return Verdict::Pass(len);
        }
        let verdict = first_look(
            datagram,
            from,
            buf.len(),
            "UDP",
            &self.counters,
            &self.security,
        );
        if let Verdict::Pass(len) = verdict {
            buf[..len].copy_from_slice(datagram);
        }
        verdict
    }
}

/// The first look every message from a socket gets, whatever carries it (a UDP datagram,
/// a WebSocket message): dropped if its source is banned, answered 513 over `limit`
/// bytes, 400/501 if malformed (see [`crate::sniff`]); else counted and passed on.
pub(crate) fn first_look(
    message: &[u8],
    from: SocketAddr,
    limit: usize,
    transport: &str,
    counters: &SipCounters,
    security: &Security,
) -> Verdict {
    if security.banned(from.ip(), Instant::now()) {
        counters.refused("banned");
        debug!(%from, "a message from a banned source dropped");
        return Verdict::Drop;
    }
    let verdict = if message.len() > limit {
        // RFC 3261 §18.1.1: a request this large belongs on TCP; 513 says so (§21.5.14).
        crate::sniff::reject_with_status(
            message,
            513,
            format!(
                "Message Too Large ({} bytes over {transport}, at most {limit}; use TCP)",
                message.len()
            ),
        )
    } else {
        match sniff(message) {
            Sniffed::Pass => match rsipstack::sip::SipMessage::try_from(message) {
                Ok(_) => Sniffed::Pass,
                // Our first look found nothing wrong but the stack's parser does: say what
                // it says.
                Err(error) => crate::sniff::reject_with(message, format!("Bad Request ({error})")),
            },
            other => other,
        }
    };
    match verdict {
        Sniffed::Pass => {
            count_start_line(counters, message, false);
            Verdict::Pass(message.len())
        }
        Sniffed::Reject(rejection) => {
            warn!(%from, status = rejection.status, reason = %rejection.reason, method = %rejection.method, "malformed SIP request answered");
            counters.request_received(&rejection.method);
            counters.malformed(true);
            counters.response_sent(rejection.status);
            Verdict::Answer(rejection.to_bytes(&format!("{:x}", rand_tag(message))))
        }
        Sniffed::Drop(why) => {
            warn!(%from, len = message.len(), why, "SIP message dropped");
            counters.malformed(false);
            Verdict::Drop
        }
    }
}

/// What becomes of one message.
pub(crate) enum Verdict {
    /// Take it: this many bytes (for UDP, now in the stack's buffer).
    Pass(usize),
    /// Send this response back, and read on.
    Answer(Vec<u8>),
    /// Read on.
    Drop,
}

#[async_trait::async_trait]
impl UdpSocket for GuardedSocket {
    async fn recv_from(&self, buf: &mut [u8]) -> rsipstack::Result<(usize, SocketAddr)> {
        loop {
            self.socket.readable().await?;
            let received = DATAGRAM.with_borrow_mut(|datagram| {
                let (len, from) = self.socket.try_recv_from(datagram)?;
                Ok::<_, std::io::Error>((self.judge(&datagram[..len], from, buf), from))
            });
            let (verdict, from) = match received {
                Ok(received) => received,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(error) => return Err(error.into()),
            };
            match verdict {
                Verdict::Pass(len) => return Ok((len, from)),
                Verdict::Answer(response) => {
                    if let Err(error) = self.socket.send_to(&response, from).await {
                        warn!(%from, %error, "could not answer a malformed request");
                    }
                }
                Verdict::Drop => {}
            }
        }
    }

    async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> rsipstack::Result<usize> {
        count_start_line(&self.counters, buf, true);
        Ok(self.socket.send_to(buf, addr).await?)
    }

    fn local_addr(&self) -> rsipstack::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }
}

/// A To tag for a stateless error response: the same request gets the same tag, so a
/// retransmission is answered identically (RFC 3261 §8.2.6.2).
fn rand_tag(datagram: &[u8]) -> u64 {
    // FNV-1a over the message.
    datagram.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}
