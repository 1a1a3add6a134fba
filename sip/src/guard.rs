//! The UDP socket the SIP stack reads through: it answers or drops what the stack would
//! silently lose, and counts every message.

use std::net::SocketAddr;
use std::sync::Arc;

use rsipstack::platform::net::UdpSocket;
use tracing::warn;

use crate::counters::{SipCounters, count_start_line};
use crate::sniff::{Sniffed, sniff};

/// A UDP socket that looks at each datagram before the stack does (see [`crate::sniff`]).
pub(crate) struct GuardedSocket {
    socket: tokio::net::UdpSocket,
    counters: Arc<SipCounters>,
}

impl GuardedSocket {
    pub(crate) fn new(socket: tokio::net::UdpSocket, counters: Arc<SipCounters>) -> Self {
        GuardedSocket { socket, counters }
    }
}

#[async_trait::async_trait]
impl UdpSocket for GuardedSocket {
    async fn recv_from(&self, buf: &mut [u8]) -> rsipstack::Result<(usize, SocketAddr)> {
        loop {
            let (len, from) = self.socket.recv_from(buf).await?;
            let datagram = &buf[..len];
            // Keep-alives (RFC 5626 §4.4.1 CRLF) are the stack's business.
            if datagram.iter().all(u8::is_ascii_whitespace) {
                return Ok((len, from));
            }
            let verdict = match sniff(datagram) {
                Sniffed::Pass => match rsipstack::sip::SipMessage::try_from(datagram) {
                    Ok(_) => Sniffed::Pass,
                    // Our first look found nothing wrong but the stack's parser does: say
                    // what it says.
                    Err(error) => {
                        crate::sniff::reject_with(datagram, format!("Bad Request ({error})"))
                    }
                },
                other => other,
            };
            match verdict {
                Sniffed::Pass => {
                    count_start_line(&self.counters, datagram, false);
                    return Ok((len, from));
                }
                Sniffed::Reject(rejection) => {
                    warn!(%from, status = rejection.status, reason = %rejection.reason, method = %rejection.method, "malformed SIP request answered");
                    self.counters.request_received(&rejection.method);
                    self.counters.malformed(true);
                    let response = rejection.to_bytes(&format!("{:x}", rand_tag(datagram)));
                    self.counters.response_sent(rejection.status);
                    if let Err(error) = self.socket.send_to(&response, from).await {
                        warn!(%from, %error, "could not answer a malformed request");
                    }
                }
                Sniffed::Drop(why) => {
                    warn!(%from, len, why, "SIP datagram dropped");
                    self.counters.malformed(false);
                }
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
