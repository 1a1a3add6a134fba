//! What the HTTP handlers read: the ACD's handle and snapshot, the calls, the records, the
//! tokens, the reloader, the clock and the time zone.

use std::collections::HashMap;
use std::sync::Arc;

use prometheus_client::registry::Registry;

/// What the handlers read.
pub(crate) struct HttpState {
    pub(crate) registry: Registry,
    pub(crate) acd: crate::runner::AcdHandle,
    pub(crate) sip_udp: std::net::SocketAddr,
    pub(crate) sip_tcp: std::net::SocketAddr,
    /// The SIP edge (browsers' WebSockets join it).
    pub(crate) edge: Arc<amico_sip::SipEdge>,
    /// This listener's address: the SIP Contact towards browsers.
    pub(crate) http_addr: std::net::SocketAddr,
    /// Calls in progress.
    pub(crate) calls: Arc<crate::call::flow::Calls>,
    /// Committed queue-log records.
    pub(crate) feed: crate::records::log::Feed,
    /// Who may use the API (replaced by a reload).
    pub(crate) tokens: Arc<arc_swap::ArcSwap<crate::ops::tokens::Tokens>>,
    /// Each queue's thresholds by name, for statistics from the store.
    pub(crate) thresholds: Arc<arc_swap::ArcSwap<HashMap<String, amico_core::Thresholds>>>,
    /// Applies the configuration file again.
    pub(crate) reloader: Arc<crate::ops::reload::Reloader>,
    /// The ACD's clock, to show its times in UTC.
    pub(crate) clock: crate::runner::Clock,
    /// Each queue's figures since midnight.
    pub(crate) today: crate::records::today::Today,
    /// The contact centre's time zone (`[reports] time_zone`).
    pub(crate) zone: jiff::tz::TimeZone,
}
