//! SIP over WebSocket (RFC 7118): one more transport for the stack, carried by whatever
//! serves the WebSocket (Amico's HTTP listener, `/sip`).
//!
//! A [`WebSocketFlow`] is one browser's connection. The HTTP side hands it each message
//! the browser sends ([`WebSocketFlow::received`]) and sends the browser what
//! [`WebSocketFlow::next`] gives; in between it is a connection of the stack like a TCP
//! one (rsipstack's in-memory channel connection, keyed by the browser's address), so
//! registrations, calls and OPTIONS to a browser go back down the same WebSocket, and
//! the guard, the strict checks, digest authentication and the throttles apply unchanged.
//!
//! RFC 7118 §5: each WebSocket message carries exactly one SIP message, so there is no
//! framing to do; a message is looked at first as a UDP datagram is ([`crate::guard`]).
//! When the flow is dropped (the WebSocket closed), the edge ends the registrations that
//! came over it after a grace period (a page reload registers again before it ends).

use std::net::SocketAddr;
use std::sync::Arc;

use rsipstack::sip::SipMessage;
use rsipstack::transport::channel::ChannelConnection;
use rsipstack::transport::{SipAddr, SipConnection, TransportEvent};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::guard::{Verdict, first_look};
use crate::security::ConnectionSlot;

/// The largest SIP message a browser may send in one WebSocket message (the stack's
/// stream limit).
pub const MAX_MESSAGE: usize = 65_535;

/// One browser's WebSocket, as the stack sees it.
pub struct WebSocketFlow {
    /// The browser's address.
    remote: SocketAddr,
    connection: ChannelConnection,
    /// Messages from the browser into the stack.
    to_stack: mpsc::UnboundedSender<TransportEvent>,
    /// Messages from the stack for the browser.
    from_stack: mpsc::UnboundedReceiver<TransportEvent>,
    /// Cancelled when the flow ends: the stack forgets the connection.
    cancel: CancellationToken,
    edge: Arc<crate::edge::SipEdge>,
    /// The connection's place in its source's count, given back when the flow ends.
    _slot: ConnectionSlot,
}

impl WebSocketFlow {
    pub(crate) async fn new(
        edge: Arc<crate::edge::SipEdge>,
        remote: SocketAddr,
        slot: ConnectionSlot,
    ) -> Result<WebSocketFlow, crate::SipError> {
        let (to_stack, incoming) = mpsc::unbounded_channel();
        let (outgoing, from_stack) = mpsc::unbounded_channel();
        let cancel = edge.cancel_token().child_token();
        let addr = SipAddr {
            r#type: Some(rsipstack::sip::Transport::Ws),
            addr: remote.into(),
        };
        let connection =
            ChannelConnection::create_connection(incoming, outgoing, addr, Some(cancel.clone()))
                .await
                .map_err(crate::SipError::stack)?;
        edge.add_connection(SipConnection::Channel(connection.clone()));
        Ok(WebSocketFlow {
            remote,
            connection,
            to_stack,
            from_stack,
            cancel,
            edge,
            _slot: slot,
        })
    }

    /// The browser's address.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// A message from the browser: handed to the stack, or answered at once (the bytes
    /// to send back) when it is malformed or too large.
    pub fn received(&self, message: &[u8]) -> Option<Vec<u8>> {
        // RFC 7118 has no keep-alive of its own; a CRLF ping (RFC 5626 §4.4.1) needs no
        // answer over a reliable transport.
        if message.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        let edge = &self.edge;
        match first_look(
            message,
            self.remote,
            MAX_MESSAGE,
            "WebSocket",
            edge.counters(),
            edge.security(),
        ) {
            Verdict::Pass(_) => {}
            Verdict::Answer(response) => return Some(response),
            Verdict::Drop => return None,
        }
        let parsed = SipMessage::try_from(message)
            .map_err(|error| error.to_string())
            .and_then(|message| {
                // RFC 3261 §18.2.1: `received` and `rport` say where it really came from.
                SipConnection::update_msg_received(
                    message,
                    self.remote,
                    rsipstack::sip::Transport::Ws,
                )
                .map_err(|error| error.to_string())
            });
        match parsed {
            Ok(message) => {
                let from = self.connection.get_addr().clone();
                let event = TransportEvent::Incoming(
                    message,
                    SipConnection::Channel(self.connection.clone()),
                    from,
                );
                if self.to_stack.send(event).is_err() {
                    debug!(remote = %self.remote, "the stack is gone");
                }
            }
            Err(error) => debug!(remote = %self.remote, %error, "WebSocket message not taken"),
        }
        None
    }

    /// The next message for the browser; `None` once the stack has stopped.
    pub async fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return None,
                event = self.from_stack.recv() => match event? {
                    TransportEvent::Incoming(message, _, _) => {
                        let bytes = message.to_bytes();
                        crate::counters::count_start_line(self.edge.counters(), &bytes, true);
                        return Some(bytes);
                    }
                    TransportEvent::New(_) | TransportEvent::Closed(_) => continue,
                },
            }
        }
    }
}

impl Drop for WebSocketFlow {
    fn drop(&mut self) {
        // The stack retires the connection when its serve loop sees the channel closed
        // and the token cancelled; the edge ends what registered over it.
        self.cancel.cancel();
        self.edge.websocket_closed(self.remote);
    }
}
