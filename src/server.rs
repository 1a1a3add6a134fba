//! `amico run`: the server. Binds SIP, RTP and HTTP, starts the ACD's writer and ties the
//! edges to it.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use amico_core::{AgentId, Input, QueueId};
use amico_media::{MediaCounters, PortPool, SessionConfig};
use amico_sip::{EdgeEvent, SipCounters, SipEdge};
use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::call::flow::{Calls, Dispatch, LiveCalls};
use crate::config::Validated;
use crate::runner::{self, Clock};

/// Runs the server until `shutdown`. Prints one JSON line to stdout once every listener is
/// bound: `{"event":"listening","sip_udp":…,"sip_tcp":…,"http":…,"webrtc":…}`, with `"sip_tls":…`
/// when TLS is on (tests wait for it).
pub(crate) async fn run(
    validated: Validated,
    path: Option<std::path::PathBuf>,
    database: Option<String>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let demo = path.is_none();
    let config = &validated.config;
    // The store first: a database that cannot be opened stops the server before any port
    // is bound, like a bad configuration.
    let store = crate::records::store::Store::open(&config.storage.database)
        .await
        .context("storage.database")?;
    let first_seq = store.last_seq().await.context("storage.database")? + 1;
    let first_call = store.last_call().await.context("storage.database")? + 1;
    let sip_counters = Arc::new(SipCounters::default());
    let media_counters = Arc::new(MediaCounters::default());

    let tls = validated.tls().context("sip.tls")?;
    // HTTPS takes the same certificate (a self-signed one is made once, for both).
    let https = match (&tls, config.http.tls) {
        (Some(pem), true) => {
            Some(crate::ops::https::HttpsCertificate::new(pem).context("http.tls")?)
        }
        _ => None,
    };
    let edge = SipEdge::bind(validated.edge(tls), sip_counters.clone())
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
    let webrtc = amico_media::WebRtcEndpoint::bind(
        std::net::SocketAddr::new(config.rtp.address, config.rtp.webrtc_port),
        media_counters.clone(),
    )
    .context("rtp.webrtc_port")?;

    let clock = Clock::new();
    let store_counters = Arc::new(crate::records::log::StoreCounters::default());
    let names = crate::records::log::Names {
        queues: config.queues.iter().map(|q| q.name.clone()).collect(),
        agents: config.agents.iter().map(|a| a.name.clone()).collect(),
    };
    // The queue log outlives the edges: it stops after them, writing what they handed over.
    let store_shutdown = CancellationToken::new();
    let (events, feed, store_task) = crate::records::log::start(
        store,
        first_seq,
        names,
        clock,
        store_counters.clone(),
        store_shutdown.clone(),
    );
    // A new ACD starts with every agent logged out and a new statistics interval: reports
    // replaying the log need to know.
    events.record(crate::records::store::Entry {
        at_us: crate::records::log::utc_now_us(),
        kind: "acd_started".into(),
        call: None,
        queue: None,
        agent: None,
        body: serde_json::json!({
            "event": "acd_started",
            "first_call": first_call,
            "queues": config.queues.iter().map(|q| serde_json::json!({
                "name": q.name,
                "thresholds": q.thresholds,
            })).collect::<Vec<_>>(),
        }),
    });
    let live = LiveCalls::default();
    let dispatch = Dispatch::new(live.clone(), events.clone());
    let (acd, acd_task) = runner::start(
        validated.acd.clone(),
        clock,
        move |at, output| dispatch.output(at, output),
        shutdown.clone(),
    )?;
    let session = SessionConfig {
        rtp_timeout: (config.rtp.timeout > 0.0)
            .then(|| Duration::from_secs_f64(config.rtp.timeout)),
        ..SessionConfig::default()
    };
    // At start, ids follow the configuration's order.
    let prompts = crate::ops::reload::load_prompts(config)?;
    let routing = crate::ops::reload::routing(
        config,
        prompts,
        |name| {
            config
                .queues
                .iter()
                .position(|q| q.name == name)
                .map(|i| QueueId(i as u32))
        },
        |name| {
            config
                .agents
                .iter()
                .position(|a| a.name == name)
                .map(|i| AgentId(i as u32))
        },
    )?;
    let calls = Calls::new(crate::call::flow::CallsParts {
        acd: acd.clone(),
        edge: edge.clone(),
        ports: ports.clone(),
        webrtc: webrtc.clone(),
        media: media_counters.clone(),
        session,
        routing,
        events,
        first_call,
        live,
    });
    edge.set_overload_check(overload_check(
        calls.clone(),
        ports.clone(),
        store_counters.clone(),
        config.sip.max_calls,
        config.storage.max_backlog,
    ));
    edge.set_call_handler({
        let calls = calls.clone();
        Box::new(move |call| calls.accept(call))
    });

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
    let registry = crate::ops::metrics::registry(crate::ops::metrics::Sources {
        acd: acd.clone(),
        sip: sip_counters,
        transactions,
        media: media_counters,
        calls: active,
        store: store_counters,
    });
    let tokens = Arc::new(arc_swap::ArcSwap::from_pointee(
        crate::ops::tokens::Tokens::new(&config.api.tokens),
    ));
    let thresholds = Arc::new(arc_swap::ArcSwap::from_pointee(
        config
            .queues
            .iter()
            .map(|q| (q.name.clone(), q.thresholds))
            .collect(),
    ));
    let reloader = Arc::new(crate::ops::reload::Reloader::new(
        crate::ops::reload::Parts {
            path,
            database,
            running: config.clone(),
            acd: acd.clone(),
            calls: calls.clone(),
            edge: edge.clone(),
            tokens: tokens.clone(),
            thresholds: thresholds.clone(),
            https: https.clone(),
        },
    ));
    let zone = config.reports.zone();
    let today = crate::records::today::start(
        feed.clone(),
        zone.clone(),
        thresholds.clone(),
        shutdown.clone(),
    );
    let state = Arc::new(crate::ops::state::HttpState {
        registry,
        acd: acd.clone(),
        sip_udp: edge.udp_addr(),
        sip_tcp: edge.tcp_addr(),
        edge: edge.clone(),
        http_addr,
        calls: calls.clone(),
        feed,
        tokens: tokens.clone(),
        thresholds: thresholds.clone(),
        reloader: reloader.clone(),
        clock,
        today,
        zone,
    });
    let http_shutdown = shutdown.clone();
    let service = crate::ops::http::router(state)
        .into_make_service_with_connect_info::<crate::ops::https::RemoteAddr>();
    let http_task = match https {
        Some(certificate) => {
            let listener =
                crate::ops::https::TlsListener::new(http, certificate, http_shutdown.clone())?;
            tokio::spawn(async move {
                axum::serve(listener, service)
                    .with_graceful_shutdown(http_shutdown.cancelled_owned())
                    .await
            })
        }
        None => tokio::spawn(async move {
            axum::serve(http, service)
                .with_graceful_shutdown(http_shutdown.cancelled_owned())
                .await
        }),
    };

    let mut line = serde_json::json!({
        "event": "listening",
        "sip_udp": edge.udp_addr().to_string(),
        "sip_tcp": edge.tcp_addr().to_string(),
        "http": http_addr.to_string(),
        "https": config.http.tls,
        "webrtc": webrtc.local_addr().to_string(),
    });
    if let Some(tls) = edge.tls_addr() {
        line["sip_tls"] = tls.to_string().into();
        info!(sip_tls = %tls, self_signed = validated.tls_files.is_none(), "SIP over TLS");
    }
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
    }
    info!(sip_udp = %edge.udp_addr(), sip_tcp = %edge.tcp_addr(), http = %http_addr, "Amico is running");
    if demo {
        for token in &config.api.tokens {
            info!(
                "demo API token '{}' ({:?}): curl -H 'Authorization: Bearer {}' http://{http_addr}/api/queues",
                token.name, token.scope, token.token
            );
        }
        info!(
            "demo agent desktop: open http://{http_addr}/agent and log in with an agent's token (demo-token-for-anna)"
        );
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

    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("SIGHUP handler")?;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = hangups.recv() => {
                info!("SIGHUP: reloading the configuration");
                match reloader.reload().await {
                    Ok(reloaded) => info!(?reloaded, "reloaded on SIGHUP"),
                    Err(error) => warn!(%error, "reload refused; the running configuration stays"),
                }
            }
            event = edge_events.recv() => match event {
                None => break,
                Some(EdgeEvent::AgentRegistered { user, new, .. }) => {
                    if let Some(agent) = calls.agent_for_username(&user) && new {
                        acd.send(Input::Login { agent });
                    }
                }
                Some(EdgeEvent::AgentUnregistered { user, reason }) => {
                    if let Some(agent) = calls.agent_for_username(&user) {
                        info!(%user, ?reason, "agent logged out");
                        acd.send(Input::Logout { agent });
                    }
                }
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

/// Whether one more trunk call can be taken: not when `max_calls` (0: no limit) are in
/// progress, when fewer than two RTP ports are free (the caller's and an agent's), or when
/// the queue log has `max_backlog` records waiting for the database. The calls already
/// admitted come first; the new one is told to come back in a few seconds.
fn overload_check(
    calls: Arc<Calls>,
    ports: Arc<PortPool>,
    store: Arc<crate::records::log::StoreCounters>,
    max_calls: usize,
    max_backlog: u64,
) -> amico_sip::OverloadCheck {
    const RETRY_AFTER: Duration = Duration::from_secs(5);
    Box::new(move || {
        let calls_full = max_calls > 0 && calls.active() >= max_calls;
        let ports_full = ports.capacity().saturating_sub(ports.in_use()) < 2;
        let store_behind = store.pending.load(std::sync::atomic::Ordering::Relaxed) >= max_backlog;
        (calls_full || ports_full || store_behind).then_some(RETRY_AFTER)
    })
}
