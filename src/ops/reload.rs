//! Configuration reload (`SIGHUP`, `POST /api/config/reload`) without dropping calls.
//!
//! The new file is read and checked whole first: its syntax and fields, the parts that
//! cannot change while the server runs (listen addresses, RTP ports, the store, the
//! statistics interval, the reports' time zone), its prompts. Then the ACD takes it
//! (`Input::Reconfigure`: queues and agents matched by name keep their ids, calls go on),
//! and only then the SIP edge, the call flow, the API tokens and the statistics thresholds
//! switch to it. A refusal at any step names the reason and leaves the running
//! configuration as it was.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use amico_core::{AgentId, Input, QueueId, Thresholds};
use amico_sip::SipEdge;
use arc_swap::ArcSwap;
use serde::Serialize;
use tracing::{info, warn};

use crate::call::announce::Experience;
use crate::call::flow::Calls;
use crate::call::phrases::Language;
use crate::call::prompts::Prompts;
use crate::config::{Config, Validated};
use crate::runner::{AcdHandle, Refused};

/// Why a reload was refused; the running configuration stays.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReloadError {
    /// The server runs on the embedded demo configuration: there is no file to read.
    #[error(
        "the server runs on the embedded demo configuration; start it with --config FILE to reload"
    )]
    NoFile,
    /// The file is wrong; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// The ACD refused it (a queue with callers removed, say).
    #[error("{0}")]
    Refused(String),
}

/// What a reload changed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Reloaded {
    /// The file read.
    file: String,
    /// Queues now configured.
    queues: Vec<String>,
    /// Agents now configured.
    agents: Vec<String>,
    /// Trunks now configured.
    trunks: usize,
    /// Agents whose phone registration was dropped because they were removed.
    unregistered: Vec<String>,
}

/// Applies a configuration file to the running server.
pub(crate) struct Reloader {
    path: Option<PathBuf>,
    /// `amico run --database`, which overrides the file's `[storage]`.
    database: Option<String>,
    running: ArcSwap<Config>,
    acd: AcdHandle,
    calls: Arc<Calls>,
    edge: Arc<SipEdge>,
    tokens: Arc<ArcSwap<crate::ops::tokens::Tokens>>,
    thresholds: Arc<ArcSwap<HashMap<String, Thresholds>>>,
    https: Option<Arc<crate::ops::https::HttpsCertificate>>,
    /// One reload at a time (not on any call's path).
    busy: tokio::sync::Mutex<()>,
}

/// The parts of the running server a reload changes.
pub(crate) struct Parts {
    pub(crate) path: Option<PathBuf>,
    pub(crate) database: Option<String>,
    pub(crate) running: Config,
    pub(crate) acd: AcdHandle,
    pub(crate) calls: Arc<Calls>,
    pub(crate) edge: Arc<SipEdge>,
    pub(crate) tokens: Arc<ArcSwap<crate::ops::tokens::Tokens>>,
    pub(crate) thresholds: Arc<ArcSwap<HashMap<String, Thresholds>>>,
    /// HTTPS's certificate, reloaded with SIP's.
    pub(crate) https: Option<Arc<crate::ops::https::HttpsCertificate>>,
}

impl Reloader {
    pub(crate) fn new(parts: Parts) -> Reloader {
        Reloader {
            path: parts.path,
            database: parts.database,
            running: ArcSwap::from_pointee(parts.running),
            acd: parts.acd,
            calls: parts.calls,
            edge: parts.edge,
            tokens: parts.tokens,
            thresholds: parts.thresholds,
            https: parts.https,
            busy: tokio::sync::Mutex::new(()),
        }
    }

    /// The configuration in force: the one started with, or the last one applied.
    pub(crate) fn running(&self) -> Arc<Config> {
        self.running.load_full()
    }

    /// Reads the configuration file again and applies it.
    pub(crate) async fn reload(&self) -> Result<Reloaded, ReloadError> {
        let _one_at_a_time = self.busy.lock().await;
        let path = self.path.as_ref().ok_or(ReloadError::NoFile)?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| ReloadError::Invalid(format!("{}: {e}", path.display())))?;
        let mut validated = Config::parse(&text)
            .map_err(|e| ReloadError::Invalid(format!("{}: {e}", path.display())))?;
        if let Some(database) = &self.database {
            validated.config.storage.database = database.clone();
        }
        let running = self.running.load_full();
        if let Some(field) = fixed_change(&running, &validated.config) {
            return Err(ReloadError::Invalid(format!(
                "{}: {field} cannot change while the server runs (restart it to change it)",
                path.display()
            )));
        }
        let prompts = load_prompts(&validated.config)
            .map_err(|e| ReloadError::Invalid(format!("{}: {e:#}", path.display())))?;

        self.acd
            .request(Input::Reconfigure {
                config: validated.acd.clone(),
            })
            .await
            .map_err(|refused| match refused {
                Refused::Acd(error) => ReloadError::Refused(error.to_string()),
                Refused::Stopped => ReloadError::Refused(refused.to_string()),
            })?;

        // The ACD took it: its ids for the new names are in the snapshot it published.
        let snapshot = self.acd.snapshot();
        let queue_id = |name: &str| {
            snapshot
                .queues
                .iter()
                .find(|q| q.name == name && !q.closed)
                .map(|q| q.id)
        };
        let agent_id = |name: &str| {
            snapshot
                .agents
                .iter()
                .find(|a| a.name == name && !a.retired)
                .map(|a| a.id)
        };
        let routing = routing(&validated.config, prompts, queue_id, agent_id)
            .map_err(|e| ReloadError::Refused(format!("{e:#}")))?;
        // The certificate files were read and checked with the rest of the file; a
        // self-signed certificate stays the one made at start.
        let tls = validated.tls_files.clone();
        let reloaded = self.apply(validated, routing, path)?;
        if let Some(pem) = tls {
            if let Some(https) = &self.https {
                https
                    .reload(&pem)
                    .map_err(|e| ReloadError::Refused(format!("http.tls: {e:#}")))?;
            }
            self.edge
                .reload_tls(pem.certificate, pem.private_key, pem.ca_certificates)
                .await
                .map_err(|e| ReloadError::Refused(format!("sip.tls: {e}")))?;
            info!("TLS certificate reloaded");
        }
        Ok(reloaded)
    }

    fn apply(
        &self,
        validated: Validated,
        routing: crate::call::flow::Routing,
        path: &std::path::Path,
    ) -> Result<Reloaded, ReloadError> {
        let edge = validated.edge(None);
        let unregistered = self.edge.reconfigure(edge.agents, edge.trunks);
        self.calls.reroute(routing);
        let config = validated.config;
        self.tokens.store(Arc::new(crate::ops::tokens::Tokens::new(
            &config.api.tokens,
        )));
        self.thresholds.store(Arc::new(
            config
                .queues
                .iter()
                .map(|q| (q.name.clone(), q.thresholds))
                .collect(),
        ));
        let reloaded = Reloaded {
            file: path.display().to_string(),
            queues: config.queues.iter().map(|q| q.name.clone()).collect(),
            agents: config.agents.iter().map(|a| a.name.clone()).collect(),
            trunks: config.trunks.len(),
            unregistered,
        };
        if !reloaded.unregistered.is_empty() {
            warn!(agents = ?reloaded.unregistered, "removed agents' registrations dropped");
        }
        info!(file = %reloaded.file, queues = reloaded.queues.len(), agents = reloaded.agents.len(), "configuration reloaded");
        self.running.store(Arc::new(config));
        Ok(reloaded)
    }
}

/// The first setting that differs and cannot change while the server runs.
fn fixed_change(old: &Config, new: &Config) -> Option<&'static str> {
    let same =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") == format!("{b:?}");
    [
        ("sip", same(&old.sip, &new.sip)),
        ("http", same(&old.http, &new.http)),
        ("rtp", same(&old.rtp, &new.rtp)),
        ("storage", same(&old.storage, &new.storage)),
        ("statistics", same(&old.statistics, &new.statistics)),
        ("reports", same(&old.reports, &new.reports)),
        ("prompts.dir", same(&old.prompts.dir, &new.prompts.dir)),
    ]
    .into_iter()
    .find_map(|(section, same)| (!same).then_some(section))
}

/// Every prompt and music the configuration's queues may play, loaded and encoded once.
/// A bad experience or a missing file is an error that names it.
pub(crate) fn load_prompts(config: &Config) -> anyhow::Result<Arc<Prompts>> {
    let mut experiences: Vec<(Experience, Language)> = Vec::new();
    for queue in &config.queues {
        let experience = config
            .experience
            .get(&queue.name)
            .cloned()
            .unwrap_or_default();
        let language = experience
            .check()
            .map_err(|(f, r)| anyhow::anyhow!("experience.{}.{f}: {r}", queue.name))?;
        experiences.push((experience, language));
    }
    let mut languages: Vec<Language> = experiences.iter().map(|(_, l)| *l).collect();
    languages.sort_by_key(|l| l.as_str());
    languages.dedup();
    let periodic: Vec<String> = experiences
        .iter()
        .flat_map(|(e, _)| e.periodic_announce.clone())
        .collect();
    let music: Vec<String> = experiences.iter().map(|(e, _)| e.music.clone()).collect();
    let folder = crate::call::prompts::folder(config.prompts.dir.as_deref());
    Ok(Arc::new(Prompts::load(
        &folder, &languages, &periodic, &music,
    )?))
}

/// The call flow's routing for `config`, with the ids the ACD gives its queues and agents:
/// each queue's caller experience, the prompts, SIP usernames, trunk gateways.
pub(crate) fn routing(
    config: &Config,
    prompts: Arc<Prompts>,
    queue_id: impl Fn(&str) -> Option<QueueId>,
    agent_id: impl Fn(&str) -> Option<AgentId>,
) -> anyhow::Result<crate::call::flow::Routing> {
    let mut routing = crate::call::flow::Routing::default();
    let mut experiences: Vec<(Experience, Language)> = Vec::new();
    for queue in &config.queues {
        let id = queue_id(&queue.name)
            .ok_or_else(|| anyhow::anyhow!("queue '{}' has no id in the ACD", queue.name))?;
        let experience = config
            .experience
            .get(&queue.name)
            .cloned()
            .unwrap_or_default();
        let language = experience
            .check()
            .map_err(|(f, r)| anyhow::anyhow!("experience.{}.{f}: {r}", queue.name))?;
        if experiences.len() <= id.index() {
            experiences.resize(id.index() + 1, Default::default());
        }
        experiences[id.index()] = (experience, language);
        routing.queues.insert(queue.name.clone(), id);
    }
    routing.prompts = prompts;
    routing.experiences = experiences;
    for agent in &config.agents {
        let id = agent_id(&agent.name)
            .ok_or_else(|| anyhow::anyhow!("agent '{}' has no id in the ACD", agent.name))?;
        let username = agent
            .sip_username
            .clone()
            .unwrap_or_else(|| agent.name.clone());
        if routing.usernames.len() <= id.index() {
            routing.usernames.resize(id.index() + 1, String::new());
            routing.agent_names.resize(id.index() + 1, String::new());
        }
        routing.usernames[id.index()] = username.clone();
        routing.agent_names[id.index()] = agent.name.clone();
        routing.agents_by_username.insert(username, id);
    }
    routing.gateways = config
        .trunks
        .iter()
        .filter_map(|t| {
            let gateway = amico_sip::Gateway {
                address: t.gateway?,
                transport: t.gateway_transport.into(),
            };
            Some((t.name.clone(), gateway))
        })
        .collect();
    Ok(routing)
}
