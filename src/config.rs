//! The server's configuration file (TOML): where to listen, the trunks, and the ACD's
//! skills, queues and agents.
//!
//! [`Config::parse`] reads and validates it all before anything is bound; every error
//! names the field and says what is wrong.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use amico_core::{AcdConfig, AgentConfig, AgentSkill, QueueConfig, StatisticsConfig};
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
    pub(crate) experience: BTreeMap<String, crate::announce::Experience>,
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
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            database: default_database(),
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
    /// Registered phones are probed with OPTIONS this often (seconds; 0 disables), and
    /// one that does not answer within `probe_timeout` is logged out.
    #[serde(default = "default_probe_interval")]
    pub(crate) probe_interval: f64,
    /// How long a probe waits (seconds).
    #[serde(default = "default_probe_timeout")]
    pub(crate) probe_timeout: f64,
}

fn default_probe_interval() -> f64 {
    30.0
}
fn default_probe_timeout() -> f64 {
    5.0
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
        crate::store::database_url(&self.storage.database)
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
            trunks.push(amico_sip::Trunk {
                name: trunk.name.clone(),
                sources,
                credentials,
                dids: trunk.dids.clone().into_iter().collect(),
                gateway: trunk.gateway,
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
            config: self,
        })
    }
}

impl Validated {
    /// The SIP edge's settings.
    pub(crate) fn edge(&self) -> amico_sip::EdgeConfig {
        amico_sip::EdgeConfig {
            listen: self.config.sip.listen,
            realm: self.config.sip.realm.clone(),
            agents: self
                .config
                .agents
                .iter()
                .map(|a| {
                    (
                        a.sip_username.clone().unwrap_or_else(|| a.name.clone()),
                        a.sip_password.clone(),
                    )
                })
                .collect(),
            trunks: self.trunks.clone(),
            registrar: amico_sip::RegistrarConfig {
                min_expires: self.config.sip.min_expires,
                max_expires: self.config.sip.max_expires,
                default_expires: 600
                    .clamp(self.config.sip.min_expires, self.config.sip.max_expires),
            },
            nonce_lifetime: Duration::from_secs(300),
            probe_interval: (self.config.sip.probe_interval > 0.0)
                .then(|| Duration::from_secs_f64(self.config.sip.probe_interval)),
            probe_timeout: Duration::from_secs_f64(self.config.sip.probe_timeout),
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
        assert_eq!(validated.edge().agents.len(), validated.config.agents.len());
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            error(&DEMO.replace("\"100\" = \"comune\"", "\"100\" = \"comun\"")),
            "trunks[pbx].dids.100: queue 'comun' does not exist"
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
        let zone = Config::parse(&format!("{DEMO}\n[reports]\ntime_zone = \"Europe/Rome\"\n"))
            .expect("a known zone")
            .config
            .reports
            .zone();
        assert_eq!(zone.iana_name(), Some("Europe/Rome"));
    }
}
