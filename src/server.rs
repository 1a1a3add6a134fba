//! `amico run`: the server. Binds SIP, RTP and HTTP, starts the ACD's writer and ties the
//! edges to it.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use amico_core::{AgentId, Input, QueueId};
use amico_media::{MediaCounters, PortPool, SessionConfig};
use amico_sip::{EdgeEvent, SipCounters, SipEdge};
use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::callflow::Calls;
use crate::config::Validated;
use crate::runner::{self, Clock};

/// Runs the server until `shutdown`. Prints one JSON line to stdout once every listener is
/// bound: `{"event":"listening","sip_udp":…,"sip_tcp":…,"http":…}` (tests wait for it).
pub(crate) async fn run(
    validated: Validated,
    demo: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let config = &validated.config;
    // The store first: a database that cannot be opened stops the server before any port
    // is bound, like a bad configuration.
    let store = crate::store::Store::open(&config.storage.database)
        .await
        .context("storage.database")?;
    let first_seq = store.last_seq().await.context("storage.database")? + 1;
    let first_call = store.last_call().await.context("storage.database")? + 1;
    let sip_counters = Arc::new(SipCounters::default());
    let media_counters = Arc::new(MediaCounters::default());

    let edge = SipEdge::bind(validated.edge(), sip_counters.clone())
        .await
        .context("sip.listen")?;
    let http = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("http.listen: cannot listen on {}", config.http.listen))?;
    let http_addr = http.local_addr()?;
    let ports = Arc::new(
        PortPool::new(config.rtp.address, config.rtp.port_min, config.rtp.port_max)
            .context("rtp")?,
    );

    let clock = Clock::new();
    let store_counters = Arc::new(crate::events::StoreCounters::default());
    let names = crate::events::Names {
        queues: config.queues.iter().map(|q| q.name.clone()).collect(),
        agents: config.agents.iter().map(|a| a.name.clone()).collect(),
    };
    // The queue log outlives the edges: it stops after them, writing what they handed over.
    let store_shutdown = CancellationToken::new();
    let (events, feed, store_task) = crate::events::start(
        store,
        first_seq,
        names,
        clock,
        store_counters.clone(),
        store_shutdown.clone(),
    );
    // A new ACD starts with every agent logged out and a new statistics interval: reports
    // replaying the log need to know.
    events.record(crate::store::Entry {
        at_us: crate::events::utc_now_us(),
        kind: "acd_started".into(),
        call: None,
        queue: None,
        agent: None,
        body: serde_json::json!({ "event": "acd_started", "first_call": first_call }),
    });
    let (outputs, routed) = mpsc::unbounded_channel();
    let (acd, acd_task) = runner::start(validated.acd.clone(), clock, outputs, shutdown.clone())?;
    let queues: HashMap<String, QueueId> = config
        .queues
        .iter()
        .enumerate()
        .map(|(i, q)| (q.name.clone(), QueueId(i as u32)))
        .collect();
    let usernames: Vec<String> = config
        .agents
        .iter()
        .map(|a| a.sip_username.clone().unwrap_or_else(|| a.name.clone()))
        .collect();
    let agent_ids: HashMap<String, AgentId> = usernames
        .iter()
        .enumerate()
        .map(|(i, u)| (u.clone(), AgentId(i as u32)))
        .collect();
    let session = SessionConfig {
        rtp_timeout: (config.rtp.timeout > 0.0)
            .then(|| Duration::from_secs_f64(config.rtp.timeout)),
        ..SessionConfig::default()
    };
    // Every queue's experience (the defaults where none is configured), and every prompt
    // and music it may play, loaded and encoded once.
    let experiences: Vec<(crate::announce::Experience, crate::phrases::Language)> = config
        .queues
        .iter()
        .map(|q| {
            let experience = config.experience.get(&q.name).cloned().unwrap_or_default();
            let language = experience
                .check()
                .map_err(|(f, r)| anyhow::anyhow!("experience.{}.{f}: {r}", q.name))?;
            Ok((experience, language))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut languages: Vec<_> = experiences.iter().map(|(_, l)| *l).collect();
    languages.sort_by_key(|l| l.as_str());
    languages.dedup();
    let periodic: Vec<String> = experiences
        .iter()
        .flat_map(|(e, _)| e.periodic_announce.clone())
        .collect();
    let music: Vec<String> = experiences.iter().map(|(e, _)| e.music.clone()).collect();
    let folder = crate::prompts::folder(config.prompts.dir.as_deref());
    let prompts = Arc::new(crate::prompts::Prompts::load(
        &folder, &languages, &periodic, &music,
    )?);
    let calls = Calls::new(crate::callflow::CallsParts {
        acd: acd.clone(),
        edge: edge.clone(),
        ports,
        media: media_counters.clone(),
        session,
        queues,
        usernames,
        agent_names: config.agents.iter().map(|a| a.name.clone()).collect(),
        prompts,
        experiences,
        gateways: validated
            .trunks
            .iter()
            .filter_map(|t| Some((t.name.clone(), t.gateway?)))
            .collect(),
        events,
        first_call,
    });
    tokio::spawn(calls.clone().route(routed));

    let (events, mut edge_events) = mpsc::channel(1024);
    let sip_task = tokio::spawn(edge.clone().serve(events, shutdown.clone()));

    let active = {
        let calls = calls.clone();
        Arc::new(move || calls.active()) as Arc<dyn Fn() -> usize + Send + Sync>
    };
    let transactions = {
        let edge = edge.clone();
        Arc::new(move || edge.transactions_in_flight()) as Arc<dyn Fn() -> usize + Send + Sync>
    };
    let registry = crate::metrics::registry(crate::metrics::Sources {
        acd: acd.clone(),
        sip: sip_counters,
        transactions,
        media: media_counters,
        calls: active,
        store: store_counters,
    });
    let state = Arc::new(crate::http::HttpState {
        registry,
        acd: acd.clone(),
        sip_udp: edge.udp_addr(),
        sip_tcp: edge.tcp_addr(),
        calls: calls.clone(),
        feed,
        tokens: arc_swap::ArcSwap::from_pointee(crate::api::Tokens::new(&config.api.tokens)),
        thresholds: arc_swap::ArcSwap::from_pointee(
            config
                .queues
                .iter()
                .map(|q| (q.name.clone(), q.thresholds))
                .collect(),
        ),
        clock,
    });
    let http_shutdown = shutdown.clone();
    let http_task = tokio::spawn(async move {
        axum::serve(http, crate::http::router(state))
            .with_graceful_shutdown(http_shutdown.cancelled_owned())
            .await
    });

    let line = serde_json::json!({
        "event": "listening",
        "sip_udp": edge.udp_addr().to_string(),
        "sip_tcp": edge.tcp_addr().to_string(),
        "http": http_addr.to_string(),
    });
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    drop(stdout);
    info!(sip_udp = %edge.udp_addr(), sip_tcp = %edge.tcp_addr(), http = %http_addr, "Amico is running");
    if demo {
        for token in &config.api.tokens {
            info!(
                "demo API token '{}' ({:?}): curl -H 'Authorization: Bearer {}' http://{http_addr}/api/queues",
                token.name, token.scope, token.token
            );
        }
        for agent in &config.agents {
            let user = agent.sip_username.as_deref().unwrap_or(&agent.name);
            info!(
                "demo agent: register sip:{user}@{} with password '{}'",
                edge.udp_addr(),
                agent.sip_password
            );
        }
        for trunk in &config.trunks {
            for (did, queue) in &trunk.dids {
                info!(
                    "demo number: call sip:{did}@{} from {:?} to reach queue '{queue}'",
                    edge.udp_addr(),
                    trunk.sources
                );
            }
        }
    }

    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            event = edge_events.recv() => match event {
                None => break,
                Some(EdgeEvent::AgentRegistered { user, new, .. }) => {
                    if let Some(&agent) = agent_ids.get(&user) && new {
                        acd.send(Input::Login { agent });
                    }
                }
                Some(EdgeEvent::AgentUnregistered { user, reason }) => {
                    if let Some(&agent) = agent_ids.get(&user) {
                        info!(%user, ?reason, "agent logged out");
                        acd.send(Input::Logout { agent });
                    }
                }
                Some(EdgeEvent::IncomingCall(call)) => calls.accept(call),
            },
        }
    }
    shutdown.cancel();
    edge.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = http_task.await;
        let _ = sip_task.await;
        let _ = acd_task.await;
    })
    .await;
    store_shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), store_task).await;
    Ok(())
}
