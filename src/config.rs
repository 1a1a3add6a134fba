//! The server's configuration file (TOML): where to listen, the trunks, and the ACD's
//! skills, queues and agents.
//!
//! [`Config::parse`] reads and validates it all before anything is bound; every error
//! names the field and says what is wrong.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use amico_core::{AcdConfig, AgentConfig, AgentSkill, QueueConfig, StatisticsConfig};
use amico_sip::{Account, Algorithm, Limits, Rates, SecurityConfig};
use ipnet::IpNet;
use serde::Deserialize;

/// The demo configuration `amico run` uses without `--config`.
pub(crate) const DEMO: &str = include_str!("demo.toml");

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// SIP listener.
    pub(crate) sip: SipSection,
    /// HTTP listener.
    pub(crate) http: HttpSection,
    /// Media ports.
    pub(crate) rtp: RtpSection,
    /// Skill names.
    #[serde(default)]
    pub(crate) skills: Vec<String>,
    /// Trunks allowed to send calls.
    #[serde(default)]
    pub(crate) trunks: Vec<TrunkSection>,
    /// Queues, as in the core's [`QueueConfig`].
    #[serde(default)]
    pub(crate) queues: Vec<QueueConfig>,
    /// Agents.
    #[serde(default)]
    pub(crate) agents: Vec<AgentSection>,
    /// Statistics.
    #[serde(default)]
    pub(crate) statistics: StatisticsConfig,
    /// Where the prompt and music files are.
    #[serde(default)]
    pub(crate) prompts: PromptsSection,
    /// Where the queue log and call records are kept.
    #[serde(default)]
    pub(crate) storage: StorageSection,
    /// Who may use the HTTP API.
    #[serde(default)]
    pub(crate) api: ApiSection,
    /// Where "today" begins and how reports tell time.
    #[serde(default)]
    pub(crate) reports: ReportsSection,
    /// Each queue's caller experience (announcements, music, menu, survey), by queue
    /// name; a queue not listed gets the defaults.
    #[serde(default)]
    pub(crate) experience: BTreeMap<String, crate::call::announce::Experience>,
    /// The agent desktop (`/agent`): its JsSIP bundle and pause reasons.
    #[serde(default)]
    pub(crate) desktop: crate::ops::desktop::DesktopSection,
}

/// `[api]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiSection {
    /// API tokens; without any, `/api` answers 401 to everyone.
    #[serde(default)]
    pub(crate) tokens: Vec<TokenSection>,
}

/// `[[api.tokens]]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenSection {
    /// A label for logs.
    pub(crate) name: String,
    /// The secret, sent as `Authorization: Bearer TOKEN` (or `?token=` where a browser
    /// cannot set headers). At least 16 characters.
    pub(crate) token: String,
    /// `supervisor` (everything) or `agent` (its own agent only).
    pub(crate) scope: Scope,
    /// The agent an `agent` token acts for.
    #[serde(default)]
    pub(crate) agent: Option<String>,
}

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Scope {
    /// Watch and steer everything.
    Supervisor,
    /// Read queues, and change its own agent's state.
    Agent,
}

/// `[reports]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportsSection {
    /// The contact centre's time zone (an IANA name such as `Europe/Rome`): "today" on the
    /// API and the wallboard starts at its midnight, and `GET /api/stats` and `amico
    /// report` use it unless asked for another. Default: the system's.
    #[serde(default)]
    pub(crate) time_zone: Option<String>,
}

impl ReportsSection {
    /// The configured zone, or the system's.
    pub(crate) fn zone(&self) -> jiff::tz::TimeZone {
        self.time_zone
            .as_deref()
            .and_then(|name| jiff::tz::TimeZone::get(name).ok())
            .unwrap_or_else(jiff::tz::TimeZone::system)
    }
}

/// `[storage]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StorageSection {
    /// `sqlite:FILE` (or a bare file path; created when missing) or `postgres://…`.
    #[serde(default = "default_database")]
    pub(crate) database: String,
    /// Queue-log records waiting to be written past which new calls get 503 with
    /// Retry-After: the database is behind, and the calls already taken come first.
    #[serde(default = "default_max_backlog")]
    pub(crate) max_backlog: u64,
}

fn default_max_backlog() -> u64 {
    50_000
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            database: default_database(),
            max_backlog: default_max_backlog(),
        }
    }
}

fn default_database() -> String {
    "sqlite:amico.db".to_owned()
}

/// `[prompts]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PromptsSection {
    /// The folder holding `it/`, `en/` and `music/` (default: `prompts` in the working
    /// directory, else the one in the source tree).
    pub(crate) dir: Option<std::path::PathBuf>,
}

/// `[sip]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SipSection {
    /// UDP and TCP listen address.
    pub(crate) listen: SocketAddr,
    /// Digest realm.
    #[serde(default = "default_realm")]
    pub(crate) realm: String,
    /// Registrations shorter than this are refused (423).
    #[serde(default = "default_min_expires")]
    pub(crate) min_expires: u32,
    /// Registrations are granted at most this long.
    #[serde(default = "default_max_expires")]
    pub(crate) max_expires: u32,
    /// Registered phones are probed with OPTIONS this often (seconds; 0 disables), each at
    /// its own moment of the interval, and one that does not answer within `probe_timeout`
    /// is logged out.
    #[serde(default = "default_probe_interval")]
    pub(crate) probe_interval: f64,
    /// How long a probe waits for an answer, its retransmissions included (seconds): by
    /// default RFC 3261's Timer F, 64·T1 = 32 s, when the probe's transaction gives up.
    #[serde(default = "default_probe_timeout")]
    pub(crate) probe_timeout: f64,
    /// How long an agent registered over a WebSocket stays registered after the WebSocket
    /// closes (seconds): a page reload registers again within it and keeps the agent's
    /// place.
    #[serde(default = "default_websocket_grace")]
    pub(crate) websocket_grace: f64,
    /// The receive buffer of the SIP UDP socket, in bytes (Linux grants up to
    /// `net.core.rmem_max`).
    #[serde(default = "default_udp_receive_buffer")]
    pub(crate) udp_receive_buffer: usize,
    /// Calls in progress at most, all trunks together; the next gets 503 with Retry-After.
    /// 0: no limit but the RTP ports (a call needs two free).
    #[serde(default)]
    pub(crate) max_calls: usize,
    /// The User-Agent of Amico's requests and the Server of its responses; empty: none.
    /// The default names Amico without its version.
    #[serde(default = "default_user_agent")]
    pub(crate) user_agent: String,
    /// The host part of the Call-IDs Amico makes (`RANDOM@host`).
    #[serde(default = "default_call_id_host")]
    pub(crate) call_id_host: String,
    /// Digest authentication and what failing it costs.
    #[serde(default)]
    pub(crate) auth: AuthSection,
    /// Request rates and sizes.
    #[serde(default)]
    pub(crate) limits: LimitsSection,
    /// SIP over TLS; absent: no TLS listener.
    #[serde(default)]
    pub(crate) tls: Option<TlsSection>,
}

/// `[sip.auth]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthSection {
    /// The digest algorithms offered, in the order of the challenges (`MD5`, `SHA-256`).
    /// MD5 alone by default: phones take the first challenge they read, and some
    /// (baresip 1.0, SIPp 3.6, sipvicious) stop at a SHA-256 one.
    #[serde(default = "default_algorithms")]
    pub(crate) algorithms: Vec<String>,
    /// How long a nonce is accepted (seconds).
    #[serde(default = "default_nonce_lifetime")]
    pub(crate) nonce_lifetime: f64,
    /// Failed authentications for one user from one source, within `failure_window`,
    /// before that user is blocked from that source.
    #[serde(default = "default_failures_per_user")]
    pub(crate) failures_per_user: u32,
    /// Failed authentications from one source (any users), within `failure_window`,
    /// before the source is banned.
    #[serde(default = "default_failures_per_source")]
    pub(crate) failures_per_source: u32,
    /// The window failures are counted in (seconds).
    #[serde(default = "default_failure_window")]
    pub(crate) failure_window: u64,
    /// The first block or ban (seconds); each repeat doubles it.
    #[serde(default = "default_ban")]
    pub(crate) ban: u64,
    /// The longest block or ban (seconds).
    #[serde(default = "default_max_ban")]
    pub(crate) max_ban: u64,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            algorithms: default_algorithms(),
            nonce_lifetime: default_nonce_lifetime(),
            failures_per_user: default_failures_per_user(),
            failures_per_source: default_failures_per_source(),
            failure_window: default_failure_window(),
            ban: default_ban(),
            max_ban: default_max_ban(),
        }
    }
}

fn default_algorithms() -> Vec<String> {
    vec!["MD5".into()]
}
fn default_nonce_lifetime() -> f64 {
    // Asterisk's default; a phone answers a challenge within milliseconds.
    30.0
}
fn default_failures_per_user() -> u32 {
    SecurityConfig::default().failures_per_user
}
fn default_failures_per_source() -> u32 {
    SecurityConfig::default().failures_per_source
}
fn default_failure_window() -> u64 {
    SecurityConfig::default().failure_window.as_secs()
}
fn default_ban() -> u64 {
    SecurityConfig::default().ban.as_secs()
}
fn default_max_ban() -> u64 {
    SecurityConfig::default().max_ban.as_secs()
}

/// Requests a second per source address, by method, and connections opened a second; 0 is
/// no limit.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RatesSection {
    /// INVITEs outside a dialog.
    #[serde(default)]
    pub(crate) invite: f64,
    /// REGISTERs.
    #[serde(default)]
    pub(crate) register: f64,
    /// OPTIONS outside a dialog.
    #[serde(default)]
    pub(crate) options: f64,
    /// TCP, TLS and WebSocket connections opened.
    #[serde(default)]
    pub(crate) connections: f64,
}

impl From<Rates> for RatesSection {
    fn from(rates: Rates) -> Self {
        RatesSection {
            invite: rates.invite,
            register: rates.register,
            options: rates.options,
            connections: rates.connections,
        }
    }
}

impl From<RatesSection> for Rates {
    fn from(rates: RatesSection) -> Self {
        Rates {
            invite: rates.invite,
            register: rates.register,
            options: rates.options,
            connections: rates.connections,
        }
    }
}

/// `[sip.limits]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsSection {
    /// Rates for sources that are not trusted trunks.
    #[serde(default = "default_stranger_rates")]
    pub(crate) stranger: RatesSection,
    /// Rates for trusted trunks' addresses (none by default: a trunk is limited by its
    /// `max_calls`).
    #[serde(default = "default_trusted_rates")]
    pub(crate) trusted: RatesSection,
    /// Header fields in one request.
    #[serde(default = "default_max_headers")]
    pub(crate) max_headers: usize,
    /// Bytes of one header field's value.
    #[serde(default = "default_max_header_length")]
    pub(crate) max_header_length: usize,
    /// Bytes of a request's body.
    #[serde(default = "default_max_body")]
    pub(crate) max_body: usize,
    /// TCP, TLS and WebSocket connections one address may hold open at once (trusted
    /// trunks: any number); 0 is no limit.
    #[serde(default = "default_connections_per_source")]
    pub(crate) connections_per_source: u32,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            stranger: default_stranger_rates(),
            trusted: default_trusted_rates(),
            max_headers: default_max_headers(),
            max_header_length: default_max_header_length(),
            max_body: default_max_body(),
            connections_per_source: default_connections_per_source(),
        }
    }
}

fn default_stranger_rates() -> RatesSection {
    SecurityConfig::default().stranger_rates.into()
}
fn default_trusted_rates() -> RatesSection {
    SecurityConfig::default().trusted_rates.into()
}
fn default_connections_per_source() -> u32 {
    SecurityConfig::default().connections_per_source
}
fn default_max_headers() -> usize {
    Limits::default().max_headers
}
fn default_max_header_length() -> usize {
    Limits::default().max_header_length
}
fn default_max_body() -> usize {
    Limits::default().max_body
}

/// `[sip.tls]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsSection {
    /// The TLS listener (5061 is SIPS's port, RFC 3261 §26.2.3).
    pub(crate) listen: SocketAddr,
    /// The certificate chain, PEM, leaf first (read at start and at each reload).
    #[serde(default)]
    pub(crate) certificate: Option<std::path::PathBuf>,
    /// Its private key, PEM (PKCS#8 or PKCS#1).
    #[serde(default)]
    pub(crate) private_key: Option<std::path::PathBuf>,
    /// For development: a throwaway self-signed certificate made at start, instead of
    /// the files. Phones must be told not to verify it.
    #[serde(default)]
    pub(crate) self_signed: bool,
    /// The certificates (PEM) that TLS gateways' certificates must chain to, e.g.
    /// `/etc/ssl/certs/ca-certificates.crt`; needed by a trunk whose
    /// `gateway_transport` is `tls`.
    #[serde(default)]
    pub(crate) ca_certificates: Option<std::path::PathBuf>,
}

fn default_websocket_grace() -> f64 {
    10.0
}
fn default_user_agent() -> String {
    "Amico".into()
}
fn default_call_id_host() -> String {
    "amico".into()
}

fn default_udp_receive_buffer() -> usize {
    4 << 20
}

fn default_probe_interval() -> f64 {
    30.0
}
fn default_probe_timeout() -> f64 {
    32.0
}

fn default_realm() -> String {
    "amico".into()
}
fn default_min_expires() -> u32 {
    30
}
fn default_max_expires() -> u32 {
    3600
}

/// `[http]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpSection {
    /// Listen address for `/health` and `/metrics`.
    pub(crate) listen: SocketAddr,
    /// Serve HTTPS (and so `wss://` for browsers' SIP) with `[sip.tls]`'s certificate:
    /// browsers give a page the microphone only in a secure context (localhost aside).
    #[serde(default)]
    pub(crate) tls: bool,
}

/// `[rtp]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RtpSection {
    /// The address media sockets bind to and SDP advertises.
    pub(crate) address: IpAddr,
    /// Lowest RTP port.
    pub(crate) port_min: u16,
    /// Highest RTP port.
    pub(crate) port_max: u16,
    /// A leg that sends no RTP this long (seconds) is considered dead; 0 disables.
    #[serde(default = "default_rtp_timeout")]
    pub(crate) timeout: f64,
    /// The UDP port on `address` that every browser agent's WebRTC media shares (ICE host
    /// candidate, DTLS-SRTP); 0 lets the system choose one at start (it is in the
    /// listening line). Outside the RTP range.
    #[serde(default)]
    pub(crate) webrtc_port: u16,
}

fn default_rtp_timeout() -> f64 {
    30.0
}

/// `[[trunks]]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrunkSection {
    /// Name.
    pub(crate) name: String,
    /// Trusted source addresses or networks (`127.0.0.1`, `10.0.0.0/8`).
    #[serde(default)]
    pub(crate) sources: Vec<String>,
    /// Digest username, for a trunk not trusted by address.
    pub(crate) username: Option<String>,
    /// Digest password.
    pub(crate) password: Option<String>,
    /// Dialled number → queue name.
    #[serde(default)]
    pub(crate) dids: BTreeMap<String, String>,
    /// Where queued callbacks are dialled out (`host:port` of the PBX); without it, the
    /// queues this trunk feeds offer no callback.
    pub(crate) gateway: Option<SocketAddr>,
    /// How the gateway is reached: `udp` (the default), `tcp` or `tls` (its certificate
    /// checked against `sip.tls.ca_certificates`, for the gateway's address).
    #[serde(default)]
    pub(crate) gateway_transport: GatewayTransport,
    /// Calls in progress from this trunk at most; the next gets 503 with Retry-After.
    #[serde(default)]
    pub(crate) max_calls: Option<u32>,
    /// The digest algorithms this trunk's credentials are challenged with, in order
    /// (default: `sip.auth.algorithms`).
    #[serde(default)]
    pub(crate) digest_algorithms: Option<Vec<String>>,
}

/// How a trunk's gateway is reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum GatewayTransport {
    /// UDP.
    #[default]
    Udp,
    /// TCP.
    Tcp,
    /// TLS (RFC 3261 §26).
    Tls,
}

impl From<GatewayTransport> for amico_sip::Transport {
    fn from(transport: GatewayTransport) -> Self {
        match transport {
            GatewayTransport::Udp => amico_sip::Transport::Udp,
            GatewayTransport::Tcp => amico_sip::Transport::Tcp,
            GatewayTransport::Tls => amico_sip::Transport::Tls,
        }
    }
}

/// `[[agents]]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentSection {
    /// Name.
    pub(crate) name: String,
    /// SIP username the phone registers with (default: the name).
    pub(crate) sip_username: Option<String>,
    /// SIP password.
    pub(crate) sip_password: String,
    /// The digest algorithms this agent's phone is challenged with, in order (default:
    /// `sip.auth.algorithms`). Only for a phone that needs it: a stranger probing names
    /// can tell an agent whose challenge differs from the default one.
    #[serde(default)]
    pub(crate) digest_algorithms: Option<Vec<String>>,
    /// Skills with levels.
    #[serde(default)]
    pub(crate) skills: Vec<AgentSkill>,
}

/// What a validated file gives the server.
#[derive(Clone, Debug)]
pub(crate) struct Validated {
    /// The file.
    pub(crate) config: Config,
    /// The ACD's part.
    pub(crate) acd: AcdConfig,
    /// Trunks, resolved.
    pub(crate) trunks: Vec<amico_sip::Trunk>,
    /// The digest algorithms offered by default, resolved.
    pub(crate) algorithms: Vec<Algorithm>,
    /// Each agent's own digest algorithms, by agent name.
    pub(crate) agent_algorithms: HashMap<String, Vec<Algorithm>>,
    /// The TLS certificate and key as read from their files (`None` without TLS or with
    /// a self-signed one, which is made at start).
    pub(crate) tls_files: Option<TlsPem>,
}

/// A certificate chain and its key, PEM, checked to belong together, and the trust
/// anchors for gateways.
#[derive(Clone)]
pub(crate) struct TlsPem {
    /// The chain.
    pub(crate) certificate: Vec<u8>,
    /// The key.
    pub(crate) private_key: Vec<u8>,
    /// `ca_certificates`, read.
    pub(crate) ca_certificates: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.write_str("TlsPem { .. }")
    }
}

impl TlsPem {
    /// Reads and checks `certificate` and `private_key`; errors name the field.
    pub(crate) fn read(tls: &TlsSection) -> Result<Option<TlsPem>, ConfigError> {
        let (certificate, private_key) = match (&tls.certificate, &tls.private_key, tls.self_signed)
        {
            (Some(certificate), Some(private_key), false) => (certificate, private_key),
            (None, None, true) => {
                // The certificate is made at start; the trust anchors are still read.
                TlsPem::read_ca(tls)?;
                return Ok(None);
            }
            (_, _, true) => {
                return Err(field(
                    "sip.tls.self_signed",
                    "either certificate and private_key files, or self_signed, not both",
                ));
            }
            (None, _, false) => {
                return Err(field(
                    "sip.tls.certificate",
                    "a PEM file is needed (or self_signed = true for development)",
                ));
            }
            (Some(_), None, false) => {
                return Err(field(
                    "sip.tls.private_key",
                    "a PEM file is needed with the certificate",
                ));
            }
        };
        let read = |name: &str, path: &std::path::Path| {
            std::fs::read(path).map_err(|e| {
                field(
                    format!("sip.tls.{name}"),
                    format!("{}: {e}", path.display()),
                )
            })
        };
        let pem = TlsPem {
            certificate: read("certificate", certificate)?,
            private_key: read("private_key", private_key)?,
            ca_certificates: TlsPem::read_ca(tls)?,
        };
        pem.check().map_err(|(name, reason)| {
            let path = if name == "certificate" {
                certificate
            } else {
                private_key
            };
            field(
                format!("sip.tls.{name}"),
                format!("{}: {reason}", path.display()),
            )
        })?;
        Ok(Some(pem))
    }

    /// `ca_certificates`, read and checked to hold PEM certificates.
    fn read_ca(tls: &TlsSection) -> Result<Option<Vec<u8>>, ConfigError> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let Some(path) = &tls.ca_certificates else {
            return Ok(None);
        };
        let at = |reason: String| {
            field(
                "sip.tls.ca_certificates",
                format!("{}: {reason}", path.display()),
            )
        };
        let pem = std::fs::read(path).map_err(|e| at(e.to_string()))?;
        let certificates = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| at(format!("not PEM certificates ({e})")))?;
        if certificates.is_empty() {
            return Err(at("holds no PEM certificate".into()));
        }
        Ok(Some(pem))
    }

    /// Whether the files hold a certificate chain and a key that rustls takes together;
    /// the field at fault and why if not.
    fn check(&self) -> Result<(), (&'static str, String)> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_slice_iter(&self.certificate)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ("certificate", format!("not a PEM certificate ({e})")))?;
        if chain.is_empty() {
            return Err(("certificate", "holds no PEM certificate".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(&self.private_key)
            .map_err(|e| ("private_key", format!("not a PEM private key ({e})")))?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key))
            .map(|_| ())
            .map_err(|e| {
                (
                    "private_key",
                    format!("does not go with the certificate ({e})"),
                )
            })
    }

    /// A throwaway self-signed certificate for `listen`'s address and `localhost`.
    pub(crate) fn self_signed(listen: SocketAddr) -> anyhow::Result<TlsPem> {
        let mut names = vec!["localhost".to_owned()];
        if !listen.ip().is_unspecified() {
            names.push(listen.ip().to_string());
        }
        let certified = rcgen::generate_simple_self_signed(names)?;
        Ok(TlsPem {
            certificate: certified.cert.pem().into_bytes(),
            private_key: certified.signing_key.serialize_pem().into_bytes(),
            ca_certificates: None,
        })
    }
}

/// Digest algorithms by name; the error names the first one that is not.
fn algorithms(names: &[String], at: &str) -> Result<Vec<Algorithm>, ConfigError> {
    let mut out = Vec::new();
    for name in names {
        let algorithm = Algorithm::parse(name).ok_or_else(|| {
            field(
                at,
                format!("'{name}' is not a digest algorithm (MD5 or SHA-256)"),
            )
        })?;
        if out.contains(&algorithm) {
            return Err(field(at, format!("'{name}' is listed twice")));
        }
        out.push(algorithm);
    }
    if out.is_empty() {
        return Err(field(at, "names at least one algorithm (MD5 or SHA-256)"));
    }
    Ok(out)
}

/// A configuration error: the field and the reason.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The file is not valid TOML, or a field has the wrong type or name.
    #[error("{0}")]
    Syntax(String),
    /// A field's value is wrong.
    #[error("{field}: {reason}")]
    Field {
        /// The field, e.g. `trunks[pbx].dids.100`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The ACD refused its part.
    #[error("{0}")]
    Acd(#[from] amico_core::ConfigError),
}

fn field(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        field: field.into(),
        reason: reason.into(),
    }
}

impl Config {
    /// Parses and validates a file's text.
    pub(crate) fn parse(text: &str) -> Result<Validated, ConfigError> {
        let config: Config = toml::from_str(text)
            .map_err(|e| ConfigError::Syntax(e.to_string().trim_end().to_owned()))?;
        config.validate()
    }

    fn validate(self) -> Result<Validated, ConfigError> {
        crate::records::store::database_url(&self.storage.database)
            .map_err(|e| field("storage.database", e.to_string()))?;
        if let Some(name) = &self.reports.time_zone {
            jiff::tz::TimeZone::get(name).map_err(|_| {
                field(
                    "reports.time_zone",
                    format!("'{name}' is not a time zone (an IANA name such as Europe/Rome)"),
                )
            })?;
        }
        if self.rtp.port_min == 0 || self.rtp.port_min >= self.rtp.port_max {
            return Err(field(
                "rtp.port_min",
                format!(
                    "must be above 0 and below rtp.port_max ({})",
                    self.rtp.port_max
                ),
            ));
        }
        if usize::from(self.rtp.port_max - self.rtp.port_min) < 2 {
            return Err(field(
                "rtp.port_max",
                "the range must hold at least one even RTP port and its RTCP port",
            ));
        }
        if (self.rtp.port_min..=self.rtp.port_max).contains(&self.rtp.webrtc_port) {
            return Err(field(
                "rtp.webrtc_port",
                format!(
                    "must be outside the RTP range {}-{}",
                    self.rtp.port_min, self.rtp.port_max
                ),
            ));
        }
        if self.rtp.address.is_unspecified() || self.rtp.address.is_multicast() {
            return Err(field(
                "rtp.address",
                "must be an address of this host that phones and browsers can reach \
                 (it is in every SDP and is the browsers' ICE candidate), not a wildcard",
            ));
        }
        if !(self.rtp.timeout.is_finite() && self.rtp.timeout >= 0.0) {
            return Err(field(
                "rtp.timeout",
                "must be a number of seconds, 0 to disable",
            ));
        }
        if self.sip.listen.port() != 0
            && self.sip.listen.port() == self.http.listen.port()
            && self.sip.listen.ip() == self.http.listen.ip()
        {
            return Err(field("http.listen", "cannot be the SIP listen address"));
        }
        if !(self.sip.probe_interval.is_finite() && self.sip.probe_interval >= 0.0) {
            return Err(field(
                "sip.probe_interval",
                "must be a number of seconds, 0 to disable",
            ));
        }
        if !(self.sip.probe_timeout.is_finite() && self.sip.probe_timeout > 0.0) {
            return Err(field(
                "sip.probe_timeout",
                "must be a number of seconds above 0",
            ));
        }
        if self.sip.min_expires == 0 || self.sip.min_expires > self.sip.max_expires {
            return Err(field(
                "sip.min_expires",
                "must be at least 1 and at most sip.max_expires",
            ));
        }
        let default_algorithms = algorithms(&self.sip.auth.algorithms, "sip.auth.algorithms")?;
        if self.http.tls && self.sip.tls.is_none() {
            return Err(field(
                "http.tls",
                "HTTPS uses [sip.tls]'s certificate (or its self_signed one): add [sip.tls]",
            ));
        }
        self.check_sip()?;
        let tls_files = match &self.sip.tls {
            Some(tls) => TlsPem::read(tls)?,
            None => None,
        };
        let mut agent_algorithms = HashMap::new();
        for agent in &self.agents {
            if let Some(names) = &agent.digest_algorithms {
                let at = format!("agents[{}].digest_algorithms", agent.name);
                agent_algorithms.insert(agent.name.clone(), algorithms(names, &at)?);
            }
        }

        let acd = AcdConfig {
            skills: self.skills.clone(),
            queues: self.queues.clone(),
            agents: self
                .agents
                .iter()
                .map(|a| AgentConfig {
                    name: a.name.clone(),
                    skills: a.skills.clone(),
                })
                .collect(),
            statistics: self.statistics,
        };
        // The core names its own fields (queues[x].skills...).
        amico_core::Acd::new(acd.clone(), amico_core::Timestamp::ZERO).map_err(|e| match e {
            amico_core::AcdError::Config(e) => ConfigError::Acd(e),
            other => ConfigError::Syntax(other.to_string()),
        })?;

        let mut usernames = HashMap::new();
        for agent in &self.agents {
            let username = agent
                .sip_username
                .clone()
                .unwrap_or_else(|| agent.name.clone());
            let prefix = format!("agents[{}]", agent.name);
            if username.is_empty() || username.contains(['@', ':', ' ', ';']) {
                return Err(field(
                    format!("{prefix}.sip_username"),
                    format!("'{username}' is not a SIP user name"),
                ));
            }
            if agent.sip_password.is_empty() {
                return Err(field(format!("{prefix}.sip_password"), "must not be empty"));
            }
            if usernames
                .insert(username.clone(), agent.name.clone())
                .is_some()
            {
                return Err(field(
                    format!("{prefix}.sip_username"),
                    format!("'{username}' is used by another agent"),
                ));
            }
        }

        let mut secrets = std::collections::HashSet::new();
        for (i, token) in self.api.tokens.iter().enumerate() {
            let prefix = format!("api.tokens[{i}]");
            if token.token.chars().count() < 16 {
                return Err(field(
                    format!("{prefix}.token"),
                    "must be at least 16 characters",
                ));
            }
            if !secrets.insert(token.token.as_str()) {
                return Err(field(
                    format!("{prefix}.token"),
                    "is the same as another token's",
                ));
            }
            match (token.scope, &token.agent) {
                (Scope::Agent, None) => {
                    return Err(field(
                        format!("{prefix}.agent"),
                        "an agent token names its agent",
                    ));
                }
                (Scope::Agent, Some(agent)) if !self.agents.iter().any(|a| &a.name == agent) => {
                    return Err(field(
                        format!("{prefix}.agent"),
                        format!("'{agent}' is not an agent"),
                    ));
                }
                (Scope::Supervisor, Some(_)) => {
                    return Err(field(
                        format!("{prefix}.agent"),
                        "only agent tokens name an agent",
                    ));
                }
                _ => {}
            }
        }

        for queue in &self.queues {
            if let amico_core::Overflow::External(destination) = &queue.overflow {
                return Err(field(
                    format!("queues[{}].overflow", queue.name),
                    format!(
                        "routing out to '{destination}' is not supported by the server yet; overflow to a queue or hang up"
                    ),
                ));
            }
        }
        let queues: HashSet<&str> = self.queues.iter().map(|q| q.name.as_str()).collect();
        for (queue, experience) in &self.experience {
            if !queues.contains(queue.as_str()) {
                return Err(field(
                    format!("experience.{queue}"),
                    format!("queue '{queue}' does not exist"),
                ));
            }
            experience
                .check()
                .map_err(|(name, reason)| field(format!("experience.{queue}.{name}"), reason))?;
        }
        let mut names = HashSet::new();
        let mut trunks = Vec::new();
        for (index, trunk) in self.trunks.iter().enumerate() {
            let prefix = if trunk.name.is_empty() {
                format!("trunks[{index}]")
            } else {
                format!("trunks[{}]", trunk.name)
            };
            if trunk.name.trim().is_empty() {
                return Err(field(format!("{prefix}.name"), "must not be empty"));
            }
            if !names.insert(trunk.name.as_str()) {
                return Err(field(format!("{prefix}.name"), "is declared twice"));
            }
            let mut sources = Vec::new();
            for source in &trunk.sources {
                let net = source
                    .parse::<IpNet>()
                    .or_else(|_| source.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        field(
                            format!("{prefix}.sources"),
                            format!("'{source}' is not an address or network"),
                        )
                    })?;
                sources.push(net);
            }
            let credentials = match (&trunk.username, &trunk.password) {
                (Some(user), Some(password)) if !user.is_empty() && !password.is_empty() => {
                    Some((user.clone(), password.clone()))
                }
                (None, None) => None,
                _ => {
                    return Err(field(
                        format!("{prefix}.password"),
                        "username and password go together, neither empty",
                    ));
                }
            };
            if sources.is_empty() && credentials.is_none() {
                return Err(field(
                    format!("{prefix}.sources"),
                    "a trunk needs trusted sources or a username and password",
                ));
            }
            if trunk.dids.is_empty() {
                return Err(field(
                    format!("{prefix}.dids"),
                    "no number is mapped to a queue",
                ));
            }
            for (did, queue) in &trunk.dids {
                if !queues.contains(queue.as_str()) {
                    return Err(field(
                        format!("{prefix}.dids.{did}"),
                        format!("queue '{queue}' does not exist"),
                    ));
                }
            }
            if trunk.gateway_transport == GatewayTransport::Tls
                && self
                    .sip
                    .tls
                    .as_ref()
                    .is_none_or(|tls| tls.ca_certificates.is_none())
            {
                return Err(field(
                    format!("{prefix}.gateway_transport"),
                    "a TLS gateway's certificate is checked against sip.tls.ca_certificates: set it",
                ));
            }
            if trunk.max_calls == Some(0) {
                return Err(field(
                    format!("{prefix}.max_calls"),
                    "must be at least 1 (leave it out for no limit)",
                ));
            }
            let trunk_algorithms = match &trunk.digest_algorithms {
                Some(names) => Some(algorithms(names, &format!("{prefix}.digest_algorithms"))?),
                None => None,
            };
            trunks.push(amico_sip::Trunk {
                name: trunk.name.clone(),
                sources,
                credentials,
                dids: trunk.dids.clone().into_iter().collect(),
                gateway: trunk.gateway.map(|address| amico_sip::Gateway {
                    address,
                    transport: trunk.gateway_transport.into(),
                }),
                max_calls: trunk.max_calls,
                algorithms: trunk_algorithms,
            });
        }
        // The menu offers a callback (key 1): the queue's callers must come over a trunk
        // with a gateway to call them back through.
        for (queue, experience) in &self.experience {
            let callbacks = self
                .trunks
                .iter()
                .any(|t| t.gateway.is_some() && t.dids.values().any(|q| q == queue));
            if experience.menu && !callbacks {
                return Err(field(
                    format!("experience.{queue}.menu"),
                    "the menu offers a callback, but no trunk with a gateway feeds this queue",
                ));
            }
        }
        Ok(Validated {
            acd,
            trunks,
            algorithms: default_algorithms,
            agent_algorithms,
            tls_files,
            config: self,
        })
    }

    /// `[sip]`'s names, `[sip.auth]` and `[sip.limits]`: numbers in range.
    fn check_sip(&self) -> Result<(), ConfigError> {
        let sip = &self.sip;
        if sip.user_agent.chars().any(char::is_control) {
            return Err(field("sip.user_agent", "must be one line of text"));
        }
        if sip.call_id_host.is_empty()
            || !sip
                .call_id_host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
        {
            return Err(field(
                "sip.call_id_host",
                format!("'{}' is not a host name", sip.call_id_host),
            ));
        }
        if !(sip.websocket_grace.is_finite() && sip.websocket_grace >= 0.0) {
            return Err(field(
                "sip.websocket_grace",
                "must be a number of seconds, 0 to end at once",
            ));
        }
        let auth = &sip.auth;
        if !(auth.nonce_lifetime.is_finite() && auth.nonce_lifetime >= 1.0) {
            return Err(field(
                "sip.auth.nonce_lifetime",
                "must be at least 1 second",
            ));
        }
        for (name, value) in [
            ("failures_per_user", u64::from(auth.failures_per_user)),
            ("failures_per_source", u64::from(auth.failures_per_source)),
            ("failure_window", auth.failure_window),
            ("ban", auth.ban),
        ] {
            if value == 0 {
                return Err(field(format!("sip.auth.{name}"), "must be at least 1"));
            }
        }
        if auth.max_ban < auth.ban {
            return Err(field("sip.auth.max_ban", "must be at least sip.auth.ban"));
        }
        let limits = &sip.limits;
        for (kind, rates) in [("stranger", &limits.stranger), ("trusted", &limits.trusted)] {
            for (method, rate, what) in [
                ("invite", rates.invite, "requests"),
                ("register", rates.register, "requests"),
                ("options", rates.options, "requests"),
                ("connections", rates.connections, "connections"),
            ] {
                if !(rate.is_finite() && rate >= 0.0) {
                    return Err(field(
                        format!("sip.limits.{kind}.{method}"),
                        format!("must be {what} a second, 0 for no limit"),
                    ));
                }
            }
        }
        for (name, value, least) in [
            ("max_headers", limits.max_headers, 16),
            ("max_header_length", limits.max_header_length, 256),
            ("max_body", limits.max_body, 1024),
        ] {
            if value < least {
                return Err(field(
                    format!("sip.limits.{name}"),
                    format!("must be at least {least}, or phones cannot register"),
                ));
            }
        }
        Ok(())
    }
}

impl Validated {
    /// The SIP edge's settings.
    /// The SIP edge's settings, with the TLS certificate `tls` (see [`Validated::tls`]).
    pub(crate) fn edge(&self, tls: Option<TlsPem>) -> amico_sip::EdgeConfig {
        let sip = &self.config.sip;
        amico_sip::EdgeConfig {
            listen: sip.listen,
            tls: sip
                .tls
                .as_ref()
                .zip(tls)
                .map(|(section, pem)| amico_sip::TlsSettings {
                    listen: section.listen,
                    certificate: pem.certificate,
                    private_key: pem.private_key,
                    ca_certificates: pem.ca_certificates,
                }),
            realm: sip.realm.clone(),
            agents: self
                .config
                .agents
                .iter()
                .map(|a| {
                    (
                        a.sip_username.clone().unwrap_or_else(|| a.name.clone()),
                        Account {
                            password: a.sip_password.clone(),
                            algorithms: self.agent_algorithms.get(&a.name).cloned(),
                        },
                    )
                })
                .collect(),
            trunks: self.trunks.clone(),
            registrar: amico_sip::RegistrarConfig {
                min_expires: self.config.sip.min_expires,
                max_expires: self.config.sip.max_expires,
                default_expires: 600
                    .clamp(self.config.sip.min_expires, self.config.sip.max_expires),
                algorithms: self.algorithms.clone(),
            },
            nonce_lifetime: Duration::from_secs_f64(sip.auth.nonce_lifetime),
            probe_interval: (self.config.sip.probe_interval > 0.0)
                .then(|| Duration::from_secs_f64(self.config.sip.probe_interval)),
            probe_timeout: Duration::from_secs_f64(self.config.sip.probe_timeout),
            security: SecurityConfig {
                stranger_rates: sip.limits.stranger.into(),
                trusted_rates: sip.limits.trusted.into(),
                failures_per_user: sip.auth.failures_per_user,
                failures_per_source: sip.auth.failures_per_source,
                failure_window: Duration::from_secs(sip.auth.failure_window),
                ban: Duration::from_secs(sip.auth.ban),
                max_ban: Duration::from_secs(sip.auth.max_ban),
                connections_per_source: sip.limits.connections_per_source,
            },
            limits: Limits {
                max_headers: sip.limits.max_headers,
                max_header_length: sip.limits.max_header_length,
                max_body: sip.limits.max_body,
            },
            user_agent: sip.user_agent.clone(),
            call_id_host: sip.call_id_host.clone(),
            websocket_grace: Duration::from_secs_f64(sip.websocket_grace),
            udp_receive_buffer: sip.udp_receive_buffer,
        }
    }

    /// The TLS certificate to start with: the files', or a new self-signed one.
    pub(crate) fn tls(&self) -> anyhow::Result<Option<TlsPem>> {
        match (&self.config.sip.tls, &self.tls_files) {
            (Some(_), Some(files)) => Ok(Some(files.clone())),
            (Some(section), None) => {
                let mut pem = TlsPem::self_signed(section.listen)?;
                pem.ca_certificates = TlsPem::read_ca(section)?;
                Ok(Some(pem))
            }
            (None, _) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        Config::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn the_demo_config_is_valid() {
        let validated = Config::parse(DEMO).unwrap();
        assert!(!validated.acd.queues.is_empty());
        assert_eq!(
            validated.edge(None).agents.len(),
            validated.config.agents.len()
        );
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            error(&DEMO.replace("\"100\" = \"comune\"", "\"100\" = \"comun\"")),
            "trunks[pbx].dids.100: queue 'comun' does not exist"
        );
        assert_eq!(
            error(&DEMO.replace("port_min = 20000", "port_min = 20000\nwebrtc_port = 20500")),
            "rtp.webrtc_port: must be outside the RTP range 20000-20999"
        );
        assert!(
            error(&DEMO.replace(
                "address = \"127.0.0.1\"\nport_min",
                "address = \"0.0.0.0\"\nport_min"
            ))
            .starts_with("rtp.address: must be an address of this host")
        );
        assert_eq!(
            error(&DEMO.replace("port_min = 20000", "port_min = 30000")),
            "rtp.port_min: must be above 0 and below rtp.port_max (20999)"
        );
        assert_eq!(
            error(&DEMO.replace("sources = [\"127.0.0.1\"]", "sources = [\"localhost\"]")),
            "trunks[pbx].sources: 'localhost' is not an address or network"
        );
        assert_eq!(
            error(&DEMO.replace("sip_password = \"anna-secret\"", "sip_password = \"\"")),
            "agents[anna].sip_password: must not be empty"
        );
        assert_eq!(
            error(&DEMO.replace("min_level = 1", "min_level = 12")),
            "queues[comune].skills: level 12 of skill 'general' is outside 1-10"
        );
        let unknown = error(&DEMO.replace("strategy = ", "strategi = "));
        assert!(unknown.contains("unknown field `strategi`"), "{unknown}");
        let wrong_type = error(&DEMO.replace("ring_timeout = 20", "ring_timeout = \"soon\""));
        assert!(wrong_type.contains("ring_timeout"), "{wrong_type}");
        let bad_address =
            error(&DEMO.replace("listen = \"127.0.0.1:5060\"", "listen = \"127.0.0.1\""));
        assert!(bad_address.contains("listen"), "{bad_address}");
        assert_eq!(
            error(&format!(
                "{DEMO}\n[reports]\ntime_zone = \"Europe/Parma\"\n"
            )),
            "reports.time_zone: 'Europe/Parma' is not a time zone (an IANA name such as Europe/Rome)"
        );
        let sip = |lines: &str| {
            DEMO.replacen(
                "realm = \"amico\"\n",
                &format!("realm = \"amico\"\n{lines}\n"),
                1,
            )
        };
        assert_eq!(
            error(&sip("[sip.auth]\nalgorithms = [\"SHA-512\"]")),
            "sip.auth.algorithms: 'SHA-512' is not a digest algorithm (MD5 or SHA-256)"
        );
        assert_eq!(
            error(&sip("[sip.auth]\nalgorithms = []")),
            "sip.auth.algorithms: names at least one algorithm (MD5 or SHA-256)"
        );
        assert_eq!(
            error(&sip("[sip.auth]\nban = 600\nmax_ban = 60")),
            "sip.auth.max_ban: must be at least sip.auth.ban"
        );
        assert_eq!(
            error(&sip("[sip.limits]\nstranger = { invite = -1 }")),
            "sip.limits.stranger.invite: must be requests a second, 0 for no limit"
        );
        assert_eq!(
            error(&sip("[sip.limits]\ntrusted = { connections = inf }")),
            "sip.limits.trusted.connections: must be connections a second, 0 for no limit"
        );
        assert_eq!(
            error(&sip("[sip.limits]\nmax_body = 10")),
            "sip.limits.max_body: must be at least 1024, or phones cannot register"
        );
        assert_eq!(
            error(&sip("call_id_host = \"a b\"")),
            "sip.call_id_host: 'a b' is not a host name"
        );
        assert_eq!(
            error(&sip("[sip.tls]\nlisten = \"127.0.0.1:5061\"")),
            "sip.tls.certificate: a PEM file is needed (or self_signed = true for development)"
        );
        assert_eq!(
            error(&sip(
                "[sip.tls]\nlisten = \"127.0.0.1:5061\"\nself_signed = true\ncertificate = \"c.pem\""
            )),
            "sip.tls.self_signed: either certificate and private_key files, or self_signed, not both"
        );
        let missing = error(&sip(
            "[sip.tls]\nlisten = \"127.0.0.1:5061\"\ncertificate = \"/nonexistent/c.pem\"\nprivate_key = \"/nonexistent/k.pem\"",
        ));
        assert!(
            missing.starts_with("sip.tls.certificate: /nonexistent/c.pem: "),
            "{missing}"
        );
        assert_eq!(
            error(&DEMO.replace(
                "sip_password = \"anna-secret\"",
                "sip_password = \"anna-secret\"\ndigest_algorithms = [\"MD5\", \"MD5\"]"
            )),
            "agents[anna].digest_algorithms: 'MD5' is listed twice"
        );
        assert_eq!(
            error(&DEMO.replace("name = \"pbx\"", "name = \"pbx\"\nmax_calls = 0")),
            "trunks[pbx].max_calls: must be at least 1 (leave it out for no limit)"
        );
        let self_signed = Config::parse(&sip(
            "[sip.tls]\nlisten = \"127.0.0.1:5061\"\nself_signed = true",
        ))
        .expect("self-signed is enough");
        let pem = self_signed.tls().unwrap().expect("a certificate");
        pem.check().expect("one rustls takes");
        let zone = Config::parse(&format!("{DEMO}\n[reports]\ntime_zone = \"Europe/Rome\"\n"))
            .expect("a known zone")
            .config
            .reports
            .zone();
        assert_eq!(zone.iana_name(), Some("Europe/Rome"));
    }
}
