//! `/metrics`: the ACD's queue metrics, SIP and RTP counters, in the Prometheus
//! (OpenMetrics) text format, read from lock-free snapshots and atomics at scrape time.

use std::sync::Arc;

use amico_core::AcdSnapshot;
use amico_core::metrics::DistributionSummary;
use amico_sip::SipCounters;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// Where the exporter reads from.
pub(crate) struct Sources {
    pub(crate) acd: crate::runner::AcdHandle,
    pub(crate) sip: Arc<SipCounters>,
    pub(crate) transactions: Arc<dyn Fn() -> usize + Send + Sync>,
    pub(crate) media: Arc<amico_media::MediaCounters>,
    pub(crate) calls: Arc<dyn Fn() -> usize + Send + Sync>,
    pub(crate) store: Arc<crate::records::log::StoreCounters>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sources")
    }
}

#[derive(Debug)]
struct AmicoCollector(Sources);

type Labels = Vec<(&'static str, String)>;

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    values: &[(Labels, f64)],
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    for (labels, value) in values {
        ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    values: &[(Labels, u64)],
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for (labels, value) in values {
        ConstCounter::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn quantiles(queue: &str, summary: &DistributionSummary) -> Vec<(Labels, f64)> {
    [
        ("0.5", summary.p50),
        ("0.9", summary.p90),
        ("0.95", summary.p95),
        ("0.99", summary.p99),
        ("0.999", summary.p999),
    ]
    .into_iter()
    .map(|(q, value)| {
        (
            vec![("queue", queue.to_owned()), ("quantile", q.to_owned())],
            value.as_secs_f64(),
        )
    })
    .collect()
}

impl Collector for AmicoCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let snapshot: Arc<AcdSnapshot> = self.0.acd.snapshot();
        let queue = |name: &str| vec![("queue", name.to_owned())];
        let per_queue_gauge =
            |f: &dyn Fn(&amico_core::QueueSnapshot) -> f64| -> Vec<(Labels, f64)> {
                snapshot
                    .queues
                    .iter()
                    .map(|q| (queue(&q.name), f(q)))
                    .collect()
            };
        let per_queue_counter =
            |f: &dyn Fn(&amico_core::metrics::Counters) -> u64| -> Vec<(Labels, u64)> {
                snapshot
                    .queues
                    .iter()
                    .map(|q| (queue(&q.name), f(&q.cumulative.counters)))
                    .collect()
            };
        gauge(
            &mut encoder,
            "amico_queue_waiting_callers",
            "Callers waiting for an agent.",
            &per_queue_gauge(&|q| f64::from(q.waiting)),
        )?;
        gauge(
            &mut encoder,
            "amico_queue_ringing_callers",
            "Callers ringing an agent.",
            &per_queue_gauge(&|q| f64::from(q.ringing)),
        )?;
        gauge(
            &mut encoder,
            "amico_queue_longest_wait_seconds",
            "Longest current wait in the queue.",
            &per_queue_gauge(&|q| q.longest_wait.as_secs_f64()),
        )?;
        counter(
            &mut encoder,
            "amico_queue_offered",
            "Callers who joined the queue.",
            &per_queue_counter(&|c| c.offered),
        )?;
        counter(
            &mut encoder,
            "amico_queue_answered",
            "Callers answered by an agent.",
            &per_queue_counter(&|c| c.answered),
        )?;
        counter(
            &mut encoder,
            "amico_queue_abandoned",
            "Callers who hung up before an answer.",
            &per_queue_counter(&|c| c.abandoned),
        )?;
        counter(
            &mut encoder,
            "amico_queue_short_abandoned",
            "Abandons within the short-abandon threshold.",
            &per_queue_counter(&|c| c.short_abandoned),
        )?;
        counter(
            &mut encoder,
            "amico_queue_abandoned_after_threshold",
            "Abandons after the abandon threshold (47 s by default).",
            &per_queue_counter(&|c| c.abandoned_after_threshold),
        )?;
        counter(
            &mut encoder,
            "amico_queue_overflowed",
            "Callers who left through a queue limit.",
            &per_queue_counter(&|c| c.overflowed),
        )?;
        counter(
            &mut encoder,
            "amico_queue_transferred",
            "Callers a supervisor moved to another queue.",
            &per_queue_counter(&|c| c.transferred),
        )?;
        counter(
            &mut encoder,
            "amico_queue_removed",
            "Calls a supervisor ended before an answer (not abandons).",
            &per_queue_counter(&|c| c.removed),
        )?;
        counter(
            &mut encoder,
            "amico_queue_answered_within_sl",
            "Answers within the service-level time.",
            &per_queue_counter(&|c| c.answered_within_sl),
        )?;
        counter(
            &mut encoder,
            "amico_queue_offers_failed",
            "Offers to agents not taken.",
            &per_queue_counter(&|c| c.offers_failed),
        )?;
        counter(
            &mut encoder,
            "amico_queue_callbacks_requested",
            "Callers who asked to be called back.",
            &per_queue_counter(&|c| c.callbacks_requested),
        )?;
        counter(
            &mut encoder,
            "amico_queue_callbacks_unanswered",
            "Callbacks that never reached their caller.",
            &per_queue_counter(&|c| c.callbacks_unanswered),
        )?;
        gauge(
            &mut encoder,
            "amico_queue_service_level_ratio",
            "Answered within T / (answered + abandoned - short abandons), since start.",
            &per_queue_gauge(&|q| q.cumulative.rates.service_level.unwrap_or(1.0)),
        )?;
        gauge(
            &mut encoder,
            "amico_queue_abandon_ratio",
            "Abandoned / (answered + abandoned), since start.",
            &per_queue_gauge(&|q| q.cumulative.rates.abandon_rate.unwrap_or(0.0)),
        )?;
        gauge(
            &mut encoder,
            "amico_queue_abandon_after_threshold_ratio",
            "Abandoned after the threshold / (answered + abandoned), since start.",
            &per_queue_gauge(&|q| {
                q.cumulative
                    .rates
                    .abandon_after_threshold_rate
                    .unwrap_or(0.0)
            }),
        )?;
        let waits: Vec<_> = snapshot
            .queues
            .iter()
            .flat_map(|q| quantiles(&q.name, &q.cumulative.wait))
            .collect();
        gauge(
            &mut encoder,
            "amico_queue_wait_seconds",
            "Wait of answered calls, by quantile, since start.",
            &waits,
        )?;
        let abandons: Vec<_> = snapshot
            .queues
            .iter()
            .flat_map(|q| quantiles(&q.name, &q.cumulative.abandon))
            .collect();
        gauge(
            &mut encoder,
            "amico_queue_time_to_abandon_seconds",
            "Time to abandon, by quantile, since start.",
            &abandons,
        )?;
        let agents: Vec<(Labels, f64)> = snapshot
            .queues
            .iter()
            .flat_map(|q| {
                let a = q.agents;
                [
                    ("available", a.available),
                    ("reserved", a.reserved),
                    ("on_call", a.on_call),
                    ("wrap_up", a.wrap_up),
                    ("paused", a.paused),
                ]
                .into_iter()
                .map(|(state, n)| {
                    (
                        vec![("queue", q.name.clone()), ("state", state.to_owned())],
                        f64::from(n),
                    )
                })
            })
            .collect();
        gauge(
            &mut encoder,
            "amico_queue_agents",
            "The queue's own agents by state (logged out not counted).",
            &agents,
        )?;

        let votes = |queue_or_agent: (&'static str, String),
                     survey: &amico_core::metrics::SurveyCounts| {
            [
                ("satisfied", survey.satisfied),
                ("sufficient", survey.sufficient),
                ("unsatisfied", survey.unsatisfied),
                ("none", survey.no_vote),
            ]
            .into_iter()
            .map(move |(vote, n)| (vec![queue_or_agent.clone(), ("vote", vote.to_owned())], n))
        };
        let by_queue: Vec<(Labels, u64)> = snapshot
            .queues
            .iter()
            .flat_map(|q| votes(("queue", q.name.clone()), &q.cumulative.counters.survey))
            .collect();
        counter(
            &mut encoder,
            "amico_survey_votes",
            "Post-call ratings by queue and vote (none: no key pressed in time).",
            &by_queue,
        )?;
        let by_agent: Vec<(Labels, u64)> = snapshot
            .agents
            .iter()
            .flat_map(|a| votes(("agent", a.name.clone()), &a.survey))
            .collect();
        counter(
            &mut encoder,
            "amico_agent_survey_votes",
            "Post-call ratings by agent and vote.",
            &by_agent,
        )?;
        let satisfied: Vec<(Labels, f64)> = snapshot
            .queues
            .iter()
            .filter_map(|q| {
                q.cumulative
                    .counters
                    .survey
                    .shares()
                    .map(|(s, _, _)| (queue(&q.name), s))
            })
            .collect();
        gauge(
            &mut encoder,
            "amico_survey_satisfied_ratio",
            "Satisfied / votes cast, since start.",
            &satisfied,
        )?;
        let agent_states: Vec<(Labels, f64)> = snapshot
            .agents
            .iter()
            .map(|a| {
                (
                    vec![
                        ("agent", a.name.clone()),
                        ("state", format!("{:?}", a.state.status()).to_lowercase()),
                    ],
                    1.0,
                )
            })
            .collect();
        gauge(
            &mut encoder,
            "amico_agent_state",
            "Each agent's current state (1 for the state it is in).",
            &agent_states,
        )?;

        let methods = |values: Vec<(&'static str, u64)>| -> Vec<(Labels, u64)> {
            values
                .into_iter()
                .map(|(m, n)| (vec![("method", m.to_owned())], n))
                .collect()
        };
        let classes = |values: Vec<(&'static str, u64)>| -> Vec<(Labels, u64)> {
            values
                .into_iter()
                .map(|(c, n)| (vec![("class", c.to_owned())], n))
                .collect()
        };
        let sip = &self.0.sip;
        counter(
            &mut encoder,
            "amico_sip_requests_received",
            "SIP requests received, by method.",
            &methods(sip.requests_received().collect()),
        )?;
        counter(
            &mut encoder,
            "amico_sip_requests_sent",
            "SIP requests sent, by method.",
            &methods(sip.requests_sent().collect()),
        )?;
        counter(
            &mut encoder,
            "amico_sip_responses_received",
            "SIP responses received, by class.",
            &classes(sip.responses_received().collect()),
        )?;
        counter(
            &mut encoder,
            "amico_sip_responses_sent",
            "SIP responses sent, by class.",
            &classes(sip.responses_sent().collect()),
        )?;
        counter(
            &mut encoder,
            "amico_sip_malformed",
            "SIP messages that could not be taken.",
            &[(vec![], sip.malformed_total())],
        )?;
        counter(
            &mut encoder,
            "amico_sip_malformed_answered",
            "Malformed SIP requests answered 400 or 501.",
            &[(vec![], sip.malformed_answered_total())],
        )?;
        counter(
            &mut encoder,
            "amico_sip_auth_failures",
            "Failed digest authentications: wrong passwords, unknown users, replays.",
            &[(vec![], sip.auth_failures_total())],
        )?;
        counter(
            &mut encoder,
            "amico_sip_user_blocks",
            "Users blocked from a source address after repeated failed authentication.",
            &[(vec![], sip.user_blocks_total())],
        )?;
        counter(
            &mut encoder,
            "amico_sip_bans",
            "Source addresses banned after repeated failed authentication.",
            &[(vec![], sip.bans_total())],
        )?;
        gauge(
            &mut encoder,
            "amico_sip_banned_sources",
            "Source addresses banned now (everything they send is dropped).",
            &[(vec![], sip.banned_sources() as f64)],
        )?;
        let refusals: Vec<(Labels, u64)> = sip
            .refusals()
            .map(|(reason, n)| (vec![("reason", reason.to_owned())], n))
            .collect();
        counter(
            &mut encoder,
            "amico_sip_refused",
            "SIP requests and connections refused before handling: over a source's rate \
             (503; a connection closed), a user blocked from its source, a trunk at its call \
             limit (503), a banned source (dropped), a connection over its source's cap \
             (closed).",
            &refusals,
        )?;
        gauge(
            &mut encoder,
            "amico_sip_connections",
            "SIP connections open now: TCP, TLS and WebSocket.",
            &[(vec![], sip.connections_open() as f64)],
        )?;
        gauge(
            &mut encoder,
            "amico_sip_transactions",
            "SIP transactions in flight.",
            &[(vec![], (self.0.transactions)() as f64)],
        )?;
        gauge(
            &mut encoder,
            "amico_calls_active",
            "Calls in progress (trunk legs).",
            &[(vec![], (self.0.calls)() as f64)],
        )?;
        let media = &self.0.media;
        counter(
            &mut encoder,
            "amico_rtp_packets_relayed",
            "RTP packets relayed between legs.",
            &[(vec![], media.packets_relayed())],
        )?;
        counter(
            &mut encoder,
            "amico_rtp_packets_generated",
            "RTP packets generated (comfort stream).",
            &[(vec![], media.packets_generated())],
        )?;
        let dropped: Vec<(Labels, u64)> = amico_media::DropReason::ALL
            .into_iter()
            .map(|reason| {
                (
                    vec![("reason", reason.as_str().to_owned())],
                    media.packets_dropped(reason),
                )
            })
            .collect();
        counter(
            &mut encoder,
            "amico_rtp_packets_dropped",
            "RTP packets dropped, by reason.",
            &dropped,
        )?;
        gauge(
            &mut encoder,
            "amico_rtp_sessions",
            "Media sessions active.",
            &[(vec![], media.sessions_active() as f64)],
        )?;
        let store = &self.0.store;
        let load = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
        gauge(
            &mut encoder,
            "amico_store_committed_seq",
            "The highest queue-log sequence number committed to the database.",
            &[(vec![], load(&store.committed_seq) as f64)],
        )?;
        gauge(
            &mut encoder,
            "amico_store_pending",
            "Queue-log entries handed to the writer and not yet committed.",
            &[(vec![], load(&store.pending) as f64)],
        )?;
        counter(
            &mut encoder,
            "amico_store_batches",
            "Transactions committed to the database.",
            &[(vec![], load(&store.batches))],
        )?;
        counter(
            &mut encoder,
            "amico_store_errors",
            "Failed database writes (retried).",
            &[(vec![], load(&store.errors))],
        )?;
        counter(
            &mut encoder,
            "amico_store_dropped",
            "Queue-log entries the database refused (logged in full).",
            &[(vec![], load(&store.dropped))],
        )?;
        Ok(())
    }
}

/// A registry with Amico's collector.
pub(crate) fn registry(sources: Sources) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(AmicoCollector(sources)));
    registry
}
