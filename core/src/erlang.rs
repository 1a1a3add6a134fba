//! Queueing models for staffing a contact centre: Erlang C and Erlang A.
//!
//! Pure functions of the offered traffic and a staffing level: no clock, no I/O, no state.
//! Every time is in seconds.
//!
//! # Notation and assumptions
//!
//! ```text
//! λ = arrivals per second             h = mean handle time (talk + wrap-up),  μ = 1/h
//! θ = 1 / mean patience               A = λ·h = λ/μ, the offered load in erlangs
//! N = agents                          n = callers in the system (talking or queued)
//! ```
//!
//! Callers arrive as a Poisson stream, handle times are exponential, and agents take queued
//! callers first come, first served. Every probability is per arriving caller: by PASTA
//! (Poisson arrivals see time averages) an arrival finds `n` callers in the system with the
//! stationary probability `π_n`.
//!
//! # Erlang C (M/M/N)
//!
//! Callers never hang up, so the queue is stable only when `A < N`. With the Erlang B
//! recursion, which stays stable for thousands of agents,
//!
//! ```text
//! B(0) = 1,   B(n) = A·B(n−1) / (n + A·B(n−1))
//! C        = N·B(N) / (N − A·(1 − B(N)))       probability of waiting
//! P(W > t) = C·e^{−(Nμ − λ)t}                  W the wait
//! ASA      = C / (Nμ − λ)
//! ```
//!
//! and nobody abandons.
//!
//! # Erlang A (M/M/N+M, Palm's model)
//!
//! Each caller also has a patience `τ ~ Exp(θ)` and hangs up if not answered by then. The
//! number in the system is a birth–death chain with births `λ` and deaths
//! `min(n, N)μ + max(n − N, 0)θ`, stable at any load:
//!
//! ```text
//! π_n     ∝ Aⁿ / n!                                   n ≤ N
//! π_{N+j} = π_N · ∏_{k=1..j} λ / (Nμ + kθ)            j ≥ 1 callers queued
//! ```
//!
//! It is computed in the log domain, and the tail is cut where what is left is below 10⁻¹⁷ of
//! the mass, so it holds for thousands of agents and loads far above `N`.
//!
//! An arrival that finds `n < N` is answered at once. One that finds `n = N + j` has `j`
//! callers ahead; its virtual wait `V` (the time until an agent would take it if it never
//! hung up) passes through stages `i = j, j−1, …, 0` with `i` callers ahead, each left at
//! rate `r_i = Nμ + iθ` (an agent comes free, or one of the `i` callers ahead hangs up). It
//! is answered iff `V < τ` and spends `min(V, τ)` waiting. Each stage is held `Exp(r_i + θ)`
//! whichever way it ends, so
//!
//! ```text
//! P(answered | j)      = ∏_{i=0..j} r_i / (r_i + θ)
//! E[V | answered, j]   = Σ_{i=0..j} 1 / (r_i + θ)
//! P(abandon)           = Σ_j π_{N+j} · (1 − P(answered | j))  =  θ·E[Q] / λ
//! ```
//!
//! with `Q` the number queued. Time-bounded figures (answered within `t`, abandoned within
//! `t`) come from uniformization of the absorbing chain on the stages, started with mass
//! `π_{N+j}` on stage `j`: with `Λ = max_i(r_i + θ)`, one step moves mass from stage `i` to
//! stage `i − 1` (to "answered" from stage 0) with probability `r_i/Λ`, to "abandoned" with
//! probability `θ/Λ`, and leaves the rest in place; then
//!
//! ```text
//! P(absorbed by t) = Σ_k Poisson(k; Λt) · (mass absorbed after k steps)
//! ```
//!
//! One propagation gives every threshold. As `θ → 0` with `A < N`, Erlang A tends to
//! Erlang C.
//!
//! The Poisson weights are computed in the log domain (`ln k!` as a running sum), so `Λt` in
//! the thousands works; the sum stops where the Chernoff bound puts the remaining weight
//! below 10⁻¹³, or once the queue has drained. Each step visits the stages still holding
//! mass (at most the truncated queue length), so a figure costs about `Λ·t` times that. The
//! chain models at most a million queued callers: beyond that (patience of days in
//! overload) the result is [`ErlangError::QueueTooLong`].
//!
//! # The figures
//!
//! For a staffing level, [`Figures`] holds, per arriving caller (`W = min(V, τ)` the time
//! spent waiting, `V` and `τ` as above, `V = 0` for a caller answered at once, `τ = ∞` in
//! Erlang C; `T` = [`Thresholds::service_level_secs`], `T_ab` =
//! [`Thresholds::abandon_secs`], `T_short` = [`Thresholds::short_abandon_secs`]):
//!
//! ```text
//! p_wait                     = P(V > 0) = P(n ≥ N)          all agents busy on arrival
//! p_abandon                  = P(τ ≤ V)                     hangs up before an answer
//! p_abandon_after_threshold  = P(τ ≤ V, τ > T_ab)
//! p_short_abandon            = P(τ ≤ V, τ ≤ T_short)
//! p_answered_within_sl       = P(V < τ, V ≤ T)              zero waits included
//! p_abandoned_within_sl      = P(τ ≤ V, τ ≤ T)
//! service_level              = p_answered_within_sl / (1 − p_short_abandon)
//!                              answered within T / (answered + abandoned − short abandons)
//! service_level_abandons_met = p_answered_within_sl + p_abandoned_within_sl
//!                              (answered within T + abandoned within T) / (answered + abandoned)
//! asa_secs                   = E[V | V < τ]                 mean wait of answered callers
//! mean_wait_secs             = E[W] = E[Q] / λ              Little's law
//! occupancy                  = λ·(1 − p_abandon)·h / N
//! ```
//!
//! [`p_wait_longer_than`] gives `P(W > t)` for any `t`, and [`staff`] the fewest agents
//! meeting a [`StaffingTarget`].

/// Offered traffic: Poisson arrivals, exponential handle times and, for Erlang A, exponential
/// patience.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Traffic {
    /// λ, the mean number of calls arriving per second.
    pub arrivals_per_sec: f64,
    /// h = 1/μ, the mean handle time in seconds (talk plus wrap-up).
    pub mean_handle_secs: f64,
    /// 1/θ, the mean time a caller waits before hanging up; `None` for infinitely patient
    /// callers (Erlang C).
    pub mean_patience_secs: Option<f64>,
}

/// Waiting-time thresholds used by the figures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// T, the service-level target wait: a call answered within it counts as served in time
    /// (default 20 s).
    pub service_level_secs: f64,
    /// Abandons after waiting longer than this are counted apart, in
    /// [`Figures::p_abandon_after_threshold`] (default 47 s).
    pub abandon_secs: f64,
    /// Abandons within this wait are "short" (wrong numbers, changed minds) and leave the
    /// service-level denominator (default 5 s).
    pub short_abandon_secs: f64,
}

impl Default for Thresholds {
    /// 20 s service level, 47 s abandon threshold, 5 s short abandons.
    fn default() -> Self {
        Self {
            service_level_secs: 20.0,
            abandon_secs: 47.0,
            short_abandon_secs: 5.0,
        }
    }
}

/// What the model predicts for one staffing level. All probabilities are per arriving
/// caller; the module documentation gives each one's formula.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Figures {
    /// N, the staffing level these figures are for.
    pub agents: u32,
    /// A = λ·h, the offered load in erlangs.
    pub offered_erlangs: f64,
    /// P(an arriving caller must wait at all) = P(all agents busy).
    pub p_wait: f64,
    /// P(the caller hangs up before being answered); 0 in Erlang C.
    pub p_abandon: f64,
    /// P(the caller abandons and had waited more than `abandon_secs`).
    pub p_abandon_after_threshold: f64,
    /// P(the caller abandons within `short_abandon_secs`).
    pub p_short_abandon: f64,
    /// P(the caller is answered with a wait of at most `service_level_secs`), zero waits
    /// included.
    pub p_answered_within_sl: f64,
    /// P(the caller abandons with a wait of at most `service_level_secs`).
    pub p_abandoned_within_sl: f64,
    /// `p_answered_within_sl / (1 − p_short_abandon)`: answered within T over answered plus
    /// abandoned less short abandons.
    pub service_level: f64,
    /// `p_answered_within_sl + p_abandoned_within_sl`: answered or abandoned within T over
    /// answered plus abandoned.
    pub service_level_abandons_met: f64,
    /// Average speed of answer: the mean wait of answered callers, zero waits included.
    pub asa_secs: f64,
    /// The mean time in queue over all callers, `E[min(V, τ)] = E[Q]/λ`.
    pub mean_wait_secs: f64,
    /// The share of agent time spent handling calls, `λ·(1 − p_abandon)·h / N`.
    pub occupancy: f64,
}

/// Staffing targets for [`staff`]; a `None` target is not checked.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StaffingTarget {
    /// The highest acceptable [`Figures::p_abandon`].
    pub max_p_abandon: Option<f64>,
    /// The lowest acceptable [`Figures::service_level`].
    pub min_service_level: Option<f64>,
}

/// Why a figure cannot be computed.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum ErlangError {
    /// A parameter is NaN, infinite or out of range. The arrival rate, handle time and
    /// patience (when given) must be above zero; a threshold or `secs` may also be zero; a
    /// staffing target must be finite.
    #[error("{name} must be a finite number above zero, got {value}")]
    InvalidParameter {
        /// The field's name, e.g. `"arrivals_per_sec"`.
        name: &'static str,
        /// The value refused.
        value: f64,
    },
    /// The staffing level (or `max_agents`) is zero.
    #[error("no agents: at least one agent is needed")]
    NoAgents,
    /// Erlang C only: the offered load is at least the number of agents, so a queue of
    /// infinitely patient callers grows without bound.
    #[error(
        "unstable: {offered_erlangs} erlangs offered to {agents} agents, so a queue of callers \
         who never hang up grows without bound"
    )]
    Unstable {
        /// A = λ·h.
        offered_erlangs: f64,
        /// N.
        agents: u32,
    },
    /// No staffing level up to `max_agents` meets every target.
    #[error("no staffing level up to {max_agents} agents meets the targets")]
    TargetUnreachable {
        /// The largest staffing level tried.
        max_agents: u32,
    },
    /// Erlang A only: the stationary queue is too long to represent, because the patience is
    /// so long for the overload that callers pile up by the million (Erlang A's cost grows
    /// with the queue length).
    #[error(
        "the Erlang A queue at {agents} agents needs more than {limit} states: patience too \
         long for this overload"
    )]
    QueueTooLong {
        /// N.
        agents: u32,
        /// The most queued callers modelled.
        limit: usize,
    },
}

/// The Erlang C figures for `agents` agents; the traffic's patience is ignored.
///
/// `C = N·B/(N − A(1 − B))` with `B` from the Erlang B recursion,
/// `service_level = 1 − C·e^{−(Nμ − λ)T}`, `ASA = mean wait = C/(Nμ − λ)`,
/// `occupancy = A/N`, and every abandon figure 0. Fails with
/// [`ErlangError::Unstable`] when `λh ≥ N`.
pub fn erlang_c(
    traffic: Traffic,
    agents: u32,
    thresholds: Thresholds,
) -> Result<Figures, ErlangError> {
    let (lambda, handle) = check_rates(&traffic)?;
    check_thresholds(&thresholds)?;
    let model = ErlangC::new(lambda, handle, agents)?;
    let within_sl = 1.0 - model.p_wait_longer_than(thresholds.service_level_secs);
    let asa = model.p_wait / model.decay_per_sec;
    Ok(Figures {
        agents,
        offered_erlangs: model.offered,
        p_wait: model.p_wait,
        p_abandon: 0.0,
        p_abandon_after_threshold: 0.0,
        p_short_abandon: 0.0,
        p_answered_within_sl: within_sl,
        p_abandoned_within_sl: 0.0,
        service_level: within_sl,
        service_level_abandons_met: within_sl,
        asa_secs: asa,
        mean_wait_secs: asa,
        occupancy: model.offered / f64::from(agents),
    })
}

/// The Erlang A (M/M/N+M) figures for `agents` agents, or the Erlang C ones
/// ([`erlang_c`]) when `mean_patience_secs` is `None`.
///
/// The stationary distribution, the closed forms per queue position and the uniformization
/// that gives the time-bounded figures are in the module documentation. Stable at any load.
/// Fails with [`ErlangError::QueueTooLong`] when the queue would need more than a million
/// states.
pub fn erlang_a(
    traffic: Traffic,
    agents: u32,
    thresholds: Thresholds,
) -> Result<Figures, ErlangError> {
    let (lambda, handle) = check_rates(&traffic)?;
    let Some(patience) = check_patience(&traffic)? else {
        return erlang_c(traffic, agents, thresholds);
    };
    check_thresholds(&thresholds)?;
    let chain = Palm::new(lambda, handle, patience, agents)?;
    Ok(chain.figures(agents, lambda * handle, thresholds))
}

/// `P(W > secs)`: the probability that an arriving caller spends more than `secs` seconds
/// waiting, the time spent waiting being `min(V, τ)` (answered or hung up, whichever comes
/// first).
///
/// Erlang C (patience `None`): `C·e^{−(Nμ − λ)·secs}`, failing with
/// [`ErlangError::Unstable`] when `λh ≥ N`. Erlang A: the mass still in the queue stages at
/// `secs`, by uniformization. At `secs = 0` both give [`Figures::p_wait`].
pub fn p_wait_longer_than(traffic: Traffic, agents: u32, secs: f64) -> Result<f64, ErlangError> {
    let (lambda, handle) = check_rates(&traffic)?;
    let patience = check_patience(&traffic)?;
    let secs = non_negative("secs", secs)?;
    match patience {
        None => Ok(ErlangC::new(lambda, handle, agents)?.p_wait_longer_than(secs)),
        Some(patience) => {
            let chain = Palm::new(lambda, handle, patience, agents)?;
            // Abandonment alone empties the queue as e^{−θt}; past this the answer is 0.
            if secs / patience > f64::MAX_EXP as f64 * std::f64::consts::LN_2 {
                return Ok(0.0);
            }
            Ok(chain.absorb(secs).at(secs).waiting)
        }
    }
}

/// The smallest staffing level meeting every target in `target`, with its figures: Erlang A,
/// or Erlang C when `mean_patience_secs` is `None`.
///
/// Levels are tried from 1 agent (Erlang A) or from the first stable level, `⌊λh⌋ + 1`
/// (Erlang C), up to `max_agents`; beyond that the result is
/// [`ErlangError::TargetUnreachable`]. The search gallops (1, 2, 4, … agents past the start)
/// then bisects, so it takes a few dozen evaluations even for thousands of agents; it finds
/// the smallest level because the figures improve with every agent added (abandonment and
/// waits fall, the service level rises; the tests check this across loads). A level whose
/// Erlang A queue is too long to model ([`ErlangError::QueueTooLong`]) counts as missing
/// the targets: it is deep in overload. With no target set, the first level is returned.
/// `max_p_abandon` bounds every abandon ([`Figures::p_abandon`]), not only those after
/// `abandon_secs`.
pub fn staff(
    traffic: Traffic,
    thresholds: Thresholds,
    target: StaffingTarget,
    max_agents: u32,
) -> Result<Figures, ErlangError> {
    let (lambda, handle) = check_rates(&traffic)?;
    let patience = check_patience(&traffic)?;
    check_thresholds(&thresholds)?;
    if let Some(value) = target.max_p_abandon {
        finite("max_p_abandon", value)?;
    }
    if let Some(value) = target.min_service_level {
        finite("min_service_level", value)?;
    }
    if max_agents == 0 {
        return Err(ErlangError::NoAgents);
    }
    let first = match patience {
        Some(_) => 1.0,
        None => (lambda * handle).floor() + 1.0,
    };
    if first > f64::from(max_agents) {
        return Err(ErlangError::TargetUnreachable { max_agents });
    }
    // Exact: `first` is an integer no larger than max_agents.
    let first = first as u32;
    if target.max_p_abandon.is_none() && target.min_service_level.is_none() {
        return erlang_a(traffic, first, thresholds);
    }
    let meets = |agents: u32| -> Result<Option<Figures>, ErlangError> {
        match erlang_a(traffic, agents, thresholds) {
            Ok(figures) => {
                let abandon_ok = target
                    .max_p_abandon
                    .is_none_or(|max| figures.p_abandon <= max);
                let sl_ok = target
                    .min_service_level
                    .is_none_or(|min| figures.service_level >= min);
                Ok((abandon_ok && sl_ok).then_some(figures))
            }
            Err(ErlangError::QueueTooLong { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    };
    // Invariant: every level up to `failing` misses a target (or is unstable).
    let mut failing = first - 1;
    let mut agents = first;
    let mut stride = 1u32;
    let (mut passing, mut figures) = loop {
        if let Some(figures) = meets(agents)? {
            break (agents, figures);
        }
        failing = agents;
        if agents == max_agents {
            return Err(ErlangError::TargetUnreachable { max_agents });
        }
        agents = agents.saturating_add(stride).min(max_agents);
        stride = stride.saturating_mul(2);
    };
    while passing - failing > 1 {
        let middle = failing + (passing - failing) / 2;
        match meets(middle)? {
            Some(found) => (passing, figures) = (middle, found),
            None => failing = middle,
        }
    }
    Ok(figures)
}

/// The queue part of the stationary distribution is cut where the rest is below this share
/// of the mass (ln 10⁻¹⁷).
const LN_TAIL: f64 = -17.0 * std::f64::consts::LN_10;

/// Poisson weights beyond the uniformization horizon sum to less than this (ln 10⁻¹³).
const LN_POISSON_TAIL: f64 = -13.0 * std::f64::consts::LN_10;

/// The uniformization stops once the mass still queued is below this share of what started.
const DRAINED: f64 = 1e-18;

/// Stage masses below this share of what started are dropped.
const NEGLIGIBLE: f64 = 1e-200;

/// The most queued callers the Erlang A chain models: the memory and time needed grow with it.
const MAX_QUEUE_STATES: usize = 1_000_000;

fn finite(name: &'static str, value: f64) -> Result<f64, ErlangError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(ErlangError::InvalidParameter { name, value })
    }
}

fn positive(name: &'static str, value: f64) -> Result<f64, ErlangError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(ErlangError::InvalidParameter { name, value })
    }
}

fn non_negative(name: &'static str, value: f64) -> Result<f64, ErlangError> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(ErlangError::InvalidParameter { name, value })
    }
}

/// λ and h, checked; also refuses an offered load that overflows.
fn check_rates(traffic: &Traffic) -> Result<(f64, f64), ErlangError> {
    let lambda = positive("arrivals_per_sec", traffic.arrivals_per_sec)?;
    let handle = positive("mean_handle_secs", traffic.mean_handle_secs)?;
    positive("arrivals_per_sec", lambda * handle).map_err(|_| ErlangError::InvalidParameter {
        name: "arrivals_per_sec",
        value: lambda,
    })?;
    Ok((lambda, handle))
}

fn check_patience(traffic: &Traffic) -> Result<Option<f64>, ErlangError> {
    traffic
        .mean_patience_secs
        .map(|secs| positive("mean_patience_secs", secs))
        .transpose()
}

fn check_thresholds(thresholds: &Thresholds) -> Result<(), ErlangError> {
    non_negative("service_level_secs", thresholds.service_level_secs)?;
    non_negative("abandon_secs", thresholds.abandon_secs)?;
    non_negative("short_abandon_secs", thresholds.short_abandon_secs)?;
    Ok(())
}

/// An M/M/N queue of infinitely patient callers.
struct ErlangC {
    /// A = λh.
    offered: f64,
    /// C, the probability of waiting.
    p_wait: f64,
    /// Nμ − λ, the rate at which the tail of the wait decays.
    decay_per_sec: f64,
}

impl ErlangC {
    fn new(lambda: f64, handle: f64, agents: u32) -> Result<Self, ErlangError> {
        if agents == 0 {
            return Err(ErlangError::NoAgents);
        }
        let offered = lambda * handle;
        let n = f64::from(agents);
        if offered >= n {
            return Err(ErlangError::Unstable {
                offered_erlangs: offered,
                agents,
            });
        }
        let mut blocking = 1.0;
        for k in 1..=agents {
            blocking = offered * blocking / (f64::from(k) + offered * blocking);
            if blocking == 0.0 {
                // Underflowed: it only shrinks from here.
                break;
            }
        }
        let p_wait = n * blocking / (n - offered * (1.0 - blocking));
        Ok(Self {
            offered,
            p_wait,
            decay_per_sec: (n - offered) / handle,
        })
    }

    fn p_wait_longer_than(&self, secs: f64) -> f64 {
        self.p_wait * (-self.decay_per_sec * secs).exp()
    }
}

/// The stationary Erlang A (M/M/N+M) chain, as seen by an arriving caller.
#[derive(Debug)]
struct Palm {
    lambda: f64,
    /// Nμ, the rate at which agents come free while all are busy.
    n_mu: f64,
    theta: f64,
    /// P(n < N): answered at once.
    p_idle: f64,
    /// P(n ≥ N), kept apart from `1 − p_idle` so that it stays accurate when small.
    p_wait: f64,
    /// `queued[j]` = π_{N+j}, the probability of finding every agent busy and `j` queued.
    queued: Vec<f64>,
}

/// Per step of the uniformized stage chain: mass absorbed so far and mass still queued.
struct Absorption {
    /// Λ, the uniformization rate.
    rate: f64,
    /// P(wait): the masses below are relative to it.
    scale: f64,
    /// `answered[k]`: mass answered from the queue after `k` steps.
    answered: Vec<f64>,
    /// `abandoned[k]`: mass abandoned after `k` steps.
    abandoned: Vec<f64>,
    /// `waiting[k]`: mass still queued after `k` steps.
    waiting: Vec<f64>,
}

/// Mass of the queued arrivals by an elapsed time.
#[derive(Clone, Copy, Debug)]
struct Absorbed {
    answered: f64,
    abandoned: f64,
    waiting: f64,
}

/// ln Σ eˣ over a stream, as `max + ln(sum)` with `sum` relative to `max`.
#[derive(Clone, Copy, Debug)]
struct LogSum {
    max: f64,
    sum: f64,
}

impl LogSum {
    const EMPTY: Self = Self {
        max: f64::NEG_INFINITY,
        sum: 0.0,
    };

    fn add(&mut self, x: f64) {
        if x <= self.max {
            self.sum += (x - self.max).exp();
        } else {
            self.sum = self.sum * (self.max - x).exp() + 1.0;
            self.max = x;
        }
    }

    /// The sum relative to e^`reference`.
    fn scaled_to(self, reference: f64) -> f64 {
        self.sum * (self.max - reference).exp()
    }
}

impl Palm {
    fn new(lambda: f64, handle: f64, patience: f64, agents: u32) -> Result<Self, ErlangError> {
        if agents == 0 {
            return Err(ErlangError::NoAgents);
        }
        let offered = lambda * handle;
        let theta = 1.0 / patience;
        let n_mu = f64::from(agents) / handle;
        // Logs are relative to π_N, so neither Aⁿ nor n! is ever formed: going down from N,
        // π_{n−1}/π_n = n/A.
        let mut idle = LogSum::EMPTY;
        let mut log_idle_term = 0.0;
        for n in (1..=agents).rev() {
            log_idle_term += (f64::from(n) / offered).ln();
            idle.add(log_idle_term);
        }
        // ln(π_{N+j}/π_N), while the tail beyond is still worth keeping.
        let ln_lambda = lambda.ln();
        let mut logs = vec![0.0];
        let mut log_term = 0.0;
        let mut max = idle.max.max(0.0);
        loop {
            let next_rate = n_mu + logs.len() as f64 * theta;
            let ratio = lambda / next_rate;
            // The ratios only fall from here, so the tail is at most term·q/(1 − q).
            if ratio < 1.0 && log_term - max + ratio.ln() - (-ratio).ln_1p() < LN_TAIL {
                break;
            }
            if logs.len() > MAX_QUEUE_STATES {
                return Err(ErlangError::QueueTooLong {
                    agents,
                    limit: MAX_QUEUE_STATES,
                });
            }
            log_term += ln_lambda - next_rate.ln();
            logs.push(log_term);
            max = max.max(log_term);
        }
        let idle_mass = idle.scaled_to(max);
        let mut queued = logs;
        let mut queued_mass = 0.0;
        for term in &mut queued {
            *term = (*term - max).exp();
            queued_mass += *term;
        }
        let total = idle_mass + queued_mass;
        for term in &mut queued {
            *term /= total;
        }
        Ok(Self {
            lambda,
            n_mu,
            theta,
            p_idle: idle_mass / total,
            p_wait: queued_mass / total,
            queued,
        })
    }

    fn figures(&self, agents: u32, offered: f64, thresholds: Thresholds) -> Figures {
        let theta = self.theta;
        let mut p_abandon = 0.0;
        let mut answered_from_queue = 0.0;
        let mut answered_wait = 0.0;
        let mut mean_queue = 0.0;
        let mut log_p_answered = 0.0;
        let mut answered_mean_wait = 0.0;
        for (ahead, &mass) in self.queued.iter().enumerate() {
            let rate = self.n_mu + ahead as f64 * theta;
            // ln_1p/expm1 keep 1 − P(answered | j) accurate when θ is tiny (near Erlang C).
            log_p_answered -= (theta / rate).ln_1p();
            answered_mean_wait += 1.0 / (rate + theta);
            let p_answered = log_p_answered.exp();
            p_abandon += mass * -log_p_answered.exp_m1();
            answered_from_queue += mass * p_answered;
            answered_wait += mass * p_answered * answered_mean_wait;
            mean_queue += mass * ahead as f64;
        }
        // Rounding may take sums of probabilities a hair past 1.
        let p_answered = (self.p_idle + answered_from_queue).min(1.0);
        let sl = thresholds.service_level_secs;
        let horizon = sl
            .max(thresholds.abandon_secs)
            .max(thresholds.short_abandon_secs);
        let absorption = self.absorb(horizon);
        let within_sl = absorption.at(sl);
        let p_answered_within_sl = (self.p_idle + within_sl.answered).min(1.0);
        let p_short_abandon = absorption
            .at(thresholds.short_abandon_secs)
            .abandoned
            .min(p_abandon);
        let abandoned_by_threshold = absorption.at(thresholds.abandon_secs).abandoned;
        let counted = 1.0 - p_short_abandon;
        Figures {
            agents,
            offered_erlangs: offered,
            p_wait: self.p_wait,
            p_abandon,
            p_abandon_after_threshold: (p_abandon - abandoned_by_threshold).max(0.0),
            p_short_abandon,
            p_answered_within_sl,
            p_abandoned_within_sl: within_sl.abandoned,
            service_level: if counted > 0.0 {
                (p_answered_within_sl / counted).min(1.0)
            } else {
                0.0
            },
            service_level_abandons_met: (p_answered_within_sl + within_sl.abandoned).min(1.0),
            asa_secs: if p_answered > 0.0 {
                answered_wait / p_answered
            } else {
                0.0
            },
            mean_wait_secs: mean_queue / self.lambda,
            occupancy: (offered * p_answered / f64::from(agents)).min(1.0),
        }
    }

    /// Uniformizes the stage chain far enough that the Poisson weights for `horizon_secs`
    /// are all covered, or until the queue has drained.
    fn absorb(&self, horizon_secs: f64) -> Absorption {
        let theta = self.theta;
        let top = self.queued.len() - 1;
        let rate = self.n_mu + (top as f64 + 1.0) * theta;
        let mut absorption = Absorption {
            rate,
            scale: self.p_wait,
            answered: vec![0.0],
            abandoned: vec![0.0],
            waiting: vec![1.0],
        };
        if self.p_wait <= 0.0 {
            return absorption;
        }
        // Stage i keeps its mass with probability 1 − (r_i + θ)/Λ = (top − i)θ/Λ, written so
        // that it cannot go negative.
        let stay: Vec<f64> = (0..=top).map(|i| (top - i) as f64 * theta / rate).collect();
        let down: Vec<f64> = (0..=top)
            .map(|i| (self.n_mu + i as f64 * theta) / rate)
            .collect();
        // Relative to P(wait), masses this small are flushed to zero: subnormal numbers would
        // make every step many times slower, and dropping them costs nothing measurable.
        let flush = |mass: f64| if mass < NEGLIGIBLE { 0.0 } else { mass };
        let mut mass: Vec<f64> = self
            .queued
            .iter()
            .map(|&m| flush(m / self.p_wait))
            .collect();
        // Every nonzero mass lies in low..=high. Mass only moves down, so the stages above
        // `high` stay empty, and those below `low` fill one per step: neither is visited.
        let mut high = top;
        let mut low = 0;
        let shrink = |mass: &[f64], low: &mut usize, high: &mut usize| {
            while *high > *low && mass[*high] == 0.0 {
                *high -= 1;
            }
            while *low < *high && mass[*low] == 0.0 {
                *low += 1;
            }
        };
        shrink(&mass, &mut low, &mut high);
        let mut waiting_now: f64 = mass[low..=high].iter().sum();
        let (mut answered_now, mut abandoned_now) = (0.0, 0.0);
        for _ in 0..poisson_horizon(rate * horizon_secs) {
            if waiting_now <= DRAINED {
                break;
            }
            answered_now += mass[0] * down[0];
            abandoned_now += waiting_now * theta / rate;
            low = low.saturating_sub(1);
            for i in low..high {
                mass[i] = flush(mass[i] * stay[i] + mass[i + 1] * down[i + 1]);
            }
            mass[high] = flush(mass[high] * stay[high]);
            shrink(&mass, &mut low, &mut high);
            // Summed afresh each step so rounding cannot accumulate.
            waiting_now = mass[low..=high].iter().sum();
            absorption.answered.push(answered_now);
            absorption.abandoned.push(abandoned_now);
            absorption.waiting.push(waiting_now);
        }
        absorption
    }
}

impl Absorption {
    /// The masses at `secs`: Σ_k Poisson(k; Λ·secs) × the masses after k steps, the weights
    /// past the last step recorded applying to its masses (the queue had drained, or they
    /// are negligible).
    fn at(&self, secs: f64) -> Absorbed {
        let last = self.waiting.len() - 1;
        let mean = self.rate * secs;
        if mean == 0.0 {
            return Absorbed {
                answered: self.scale * self.answered[0],
                abandoned: self.scale * self.abandoned[0],
                waiting: self.scale * self.waiting[0],
            };
        }
        let ln_mean = mean.ln();
        let mut ln_factorial = 0.0;
        let mut cumulative = 0.0;
        let mut sums = Absorbed {
            answered: 0.0,
            abandoned: 0.0,
            waiting: 0.0,
        };
        for k in 0..=last {
            if k > 0 {
                ln_factorial += (k as f64).ln();
            }
            // In the log domain so that Λt in the thousands neither overflows nor underflows.
            let weight = (k as f64 * ln_mean - mean - ln_factorial).exp();
            cumulative += weight;
            sums.answered += weight * self.answered[k];
            sums.abandoned += weight * self.abandoned[k];
            sums.waiting += weight * self.waiting[k];
        }
        let rest = (1.0 - cumulative).max(0.0);
        sums.answered += rest * self.answered[last];
        sums.abandoned += rest * self.abandoned[last];
        sums.waiting += rest * self.waiting[last];
        Absorbed {
            answered: self.scale * sums.answered,
            abandoned: self.scale * sums.abandoned,
            waiting: self.scale * sums.waiting,
        }
    }
}

/// The number of uniformization steps past which Poisson(`mean`) weights sum to less than
/// 10⁻¹³, by the Chernoff bound `P(X ≥ k) ≤ e^{k − mean − k·ln(k/mean)}` for `k > mean`.
fn poisson_horizon(mean: f64) -> usize {
    if mean <= 0.0 {
        return 0;
    }
    let stride = mean.sqrt().ceil();
    let mut k = mean.floor() + 1.0;
    while k - mean - k * (k / mean).ln() > LN_POISSON_TAIL {
        k += stride;
    }
    k as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traffic(arrivals_per_sec: f64, mean_handle_secs: f64, patience: Option<f64>) -> Traffic {
        Traffic {
            arrivals_per_sec,
            mean_handle_secs,
            mean_patience_secs: patience,
        }
    }

    fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
        (actual - expected).abs() <= tolerance
    }

    fn relatively_close(actual: f64, expected: f64, tolerance: f64) -> bool {
        (actual - expected).abs() <= tolerance * expected.abs().max(f64::MIN_POSITIVE)
    }

    /// 100 calls per 30 minutes, AHT 3 minutes: 10 erlangs.
    fn published_example() -> Traffic {
        traffic(100.0 / 1800.0, 180.0, None)
    }

    /// Parma's peak hour: 15 % of 1,225 daily contacts, 4-minute handle, 3-minute patience.
    fn parma_peak() -> Traffic {
        traffic(1225.0 * 0.15 / 3600.0, 240.0, Some(180.0))
    }

    #[test]
    fn published_erlang_c_example() {
        let fourteen = erlang_c(published_example(), 14, Thresholds::default()).unwrap();
        assert!(close(fourteen.p_wait, 0.1741, 0.00005), "{fourteen:?}");
        assert!(
            close(fourteen.service_level, 0.8884, 0.00005),
            "{fourteen:?}"
        );
        assert!(close(fourteen.asa_secs, 7.84, 0.005), "{fourteen:?}");
        assert!(close(fourteen.offered_erlangs, 10.0, 1e-12));
        assert!(close(fourteen.occupancy, 10.0 / 14.0, 1e-12));
        let eleven = erlang_c(published_example(), 11, Thresholds::default()).unwrap();
        assert!(close(eleven.p_wait, 0.6821, 0.00005), "{eleven:?}");
        assert!(close(eleven.service_level, 0.3896, 0.00005), "{eleven:?}");
    }

    #[test]
    fn erlang_a_with_endless_patience_is_erlang_c() {
        let cases = [
            (100.0 / 1800.0, 180.0, 14),
            (100.0 / 1800.0, 180.0, 11),
            (0.01, 100.0, 2),
            (0.5, 300.0, 160),
            (2.0, 60.0, 125),
        ];
        for (lambda, handle, agents) in cases {
            let c = erlang_c(traffic(lambda, handle, None), agents, Thresholds::default()).unwrap();
            let a = erlang_a(
                traffic(lambda, handle, Some(1e9)),
                agents,
                Thresholds::default(),
            )
            .unwrap();
            for (name, a, c) in [
                ("p_wait", a.p_wait, c.p_wait),
                ("service_level", a.service_level, c.service_level),
                ("asa", a.asa_secs, c.asa_secs),
                ("mean_wait", a.mean_wait_secs, c.mean_wait_secs),
            ] {
                assert!(
                    relatively_close(a, c, 1e-4),
                    "{name} {lambda} {handle} {agents}: {a} {c}"
                );
            }
            assert!(a.p_abandon < 1e-4, "{a:?}");
        }
    }

    #[test]
    fn patience_none_is_erlang_c() {
        let example = published_example();
        assert_eq!(
            erlang_a(example, 14, Thresholds::default()),
            erlang_c(example, 14, Thresholds::default())
        );
        let example = Traffic {
            mean_patience_secs: Some(60.0),
            ..example
        };
        // erlang_c ignores patience.
        assert_eq!(
            erlang_c(example, 14, Thresholds::default()),
            erlang_c(published_example(), 14, Thresholds::default())
        );
    }

    #[test]
    fn abandonment_is_theta_times_mean_queue_over_lambda() {
        for (lambda, handle, patience, agents) in [
            (0.05, 240.0, 180.0, 13),
            (0.2, 300.0, 60.0, 50),
            (1.0, 200.0, 100.0, 150),
        ] {
            let chain = Palm::new(lambda, handle, patience, agents).unwrap();
            let mean_queue: f64 = chain
                .queued
                .iter()
                .enumerate()
                .map(|(j, pi)| j as f64 * pi)
                .sum();
            let figures = erlang_a(
                traffic(lambda, handle, Some(patience)),
                agents,
                Thresholds::default(),
            )
            .unwrap();
            let expected = mean_queue / patience / lambda;
            assert!(
                relatively_close(figures.p_abandon, expected, 1e-9),
                "{figures:?}"
            );
            assert!(relatively_close(
                figures.mean_wait_secs,
                mean_queue / lambda,
                1e-12
            ));
        }
    }

    #[test]
    fn figures_are_consistent() {
        let thresholds = Thresholds::default();
        for (lambda, handle, patience, agents) in [
            (0.05, 240.0, 180.0, 13),
            (0.2, 300.0, 60.0, 50),
            (0.2, 300.0, 60.0, 70),
        ] {
            let t = traffic(lambda, handle, Some(patience));
            let f = erlang_a(t, agents, thresholds).unwrap();
            assert!(
                f.p_answered_within_sl + f.p_abandoned_within_sl <= 1.0 + 1e-12,
                "{f:?}"
            );
            // Everyone is answered, hangs up, or is still waiting at T.
            let waiting = p_wait_longer_than(t, agents, thresholds.service_level_secs).unwrap();
            let total = f.p_answered_within_sl + f.p_abandoned_within_sl + waiting;
            assert!(close(total, 1.0, 1e-12), "{total}");
            // After long enough, everyone queued has been answered or has hung up.
            let chain = Palm::new(lambda, handle, patience, agents).unwrap();
            let end = chain.absorb(1e5).at(1e5);
            assert!(close(end.abandoned, f.p_abandon, 1e-12), "{end:?} {f:?}");
            assert!(close(chain.p_idle + end.answered, 1.0 - f.p_abandon, 1e-12));
            assert!(close(end.waiting, 0.0, 1e-15));
            assert!(close(
                p_wait_longer_than(t, agents, 0.0).unwrap(),
                f.p_wait,
                1e-12
            ));
            assert!(f.p_short_abandon <= f.p_abandoned_within_sl);
            assert!(f.p_abandon_after_threshold < f.p_abandon - f.p_abandoned_within_sl);
            assert!(f.occupancy < 1.0 && f.occupancy > 0.0);
            // A finite patience only shortens the queue relative to Erlang C.
            if let Ok(c) = erlang_c(traffic(lambda, handle, None), agents, thresholds) {
                assert!(
                    f.p_wait < c.p_wait && f.asa_secs < c.asa_secs,
                    "{f:?} {c:?}"
                );
            }
        }
    }

    #[test]
    fn waiting_beyond_zero_is_p_wait_in_erlang_c() {
        for agents in [11, 14, 20] {
            let figures = erlang_c(published_example(), agents, Thresholds::default()).unwrap();
            let p = p_wait_longer_than(published_example(), agents, 0.0).unwrap();
            assert!(close(p, figures.p_wait, 1e-15), "{p} {figures:?}");
            let p20 = p_wait_longer_than(published_example(), agents, 20.0).unwrap();
            assert!(close(1.0 - p20, figures.service_level, 1e-15));
        }
    }

    #[test]
    fn longer_thresholds_answer_more_within_them() {
        for patience in [None, Some(180.0)] {
            let t = Traffic {
                mean_patience_secs: patience,
                ..parma_peak()
            };
            let mut previous_sl = 0.0;
            let mut previous_tail = 1.0;
            for secs in [0.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 600.0] {
                let thresholds = Thresholds {
                    service_level_secs: secs,
                    ..Thresholds::default()
                };
                let sl = erlang_a(t, 14, thresholds).unwrap().service_level;
                let tail = p_wait_longer_than(t, 14, secs).unwrap();
                assert!(
                    sl > previous_sl && tail < previous_tail,
                    "{secs}: {sl} {tail}"
                );
                (previous_sl, previous_tail) = (sl, tail);
            }
        }
    }

    #[test]
    fn more_agents_do_better() {
        // Deep in overload some figures are saturated and move only by rounding.
        let slack = 1e-12;
        for (t, most) in [(parma_peak(), 30), (traffic(0.5, 240.0, Some(90.0)), 150)] {
            let first = erlang_a(t, 1, Thresholds::default()).unwrap();
            let mut previous = first;
            for agents in 2..=most {
                let f = erlang_a(t, agents, Thresholds::default()).unwrap();
                assert!(f.p_abandon < previous.p_abandon, "{agents}: {f:?}");
                assert!(f.p_wait <= previous.p_wait, "{agents}: {f:?}");
                assert!(
                    f.service_level > previous.service_level - slack,
                    "{agents}: {f:?}"
                );
                assert!(
                    f.p_short_abandon < previous.p_short_abandon + slack,
                    "{agents}: {f:?}"
                );
                assert!(
                    f.mean_wait_secs < previous.mean_wait_secs,
                    "{agents}: {f:?}"
                );
                previous = f;
            }
            assert!(previous.p_wait < first.p_wait && previous.service_level > 0.99);
            assert!(
                previous.p_short_abandon < first.p_short_abandon / 100.0,
                "{previous:?}"
            );
        }
    }

    /// Erlang A by brute force: π by direct products, and each queue position's virtual wait
    /// as a hypoexponential with distinct rates, `P(V > s) = Σ_i c_i e^{−r_i s}` with
    /// `c_i = ∏_{k≠i} r_k / (r_k − r_i)`, integrated in closed form against the patience.
    /// Returns p_wait, p_abandon, ASA, answered within T, abandoned within T, abandoned
    /// within `abandon_secs`, abandoned within `short_abandon_secs`.
    fn brute_force(t: Traffic, agents: usize, thresholds: Thresholds) -> [f64; 7] {
        let (lambda, handle) = (t.arrivals_per_sec, t.mean_handle_secs);
        let theta = 1.0 / t.mean_patience_secs.unwrap();
        let n_mu = agents as f64 / handle;
        let offered = lambda * handle;
        let mut weights = vec![1.0];
        for n in 1..=agents {
            weights.push(weights[n - 1] * offered / n as f64);
        }
        for j in 1..=60 {
            weights.push(weights[agents + j - 1] * lambda / (n_mu + j as f64 * theta));
        }
        let total: f64 = weights.iter().sum();
        let (mut p_wait, mut answered, mut answered_wait, mut answered_sl) = (0.0, 0.0, 0.0, 0.0);
        // Abandoned within the service-level, abandon and short-abandon thresholds.
        let limits = [
            thresholds.service_level_secs,
            thresholds.abandon_secs,
            thresholds.short_abandon_secs,
        ];
        let mut abandoned_by = [0.0; 3];
        for (j, weight) in weights[agents..].iter().enumerate() {
            let pi = weight / total;
            let rates: Vec<f64> = (0..=j).map(|i| n_mu + i as f64 * theta).collect();
            for (i, &r) in rates.iter().enumerate() {
                let c: f64 = rates
                    .iter()
                    .enumerate()
                    .filter(|&(k, _)| k != i)
                    .map(|(_, &rk)| rk / (rk - r))
                    .product();
                let killed = r + theta;
                let ended_by = |secs: f64| 1.0 - (-killed * secs).exp();
                answered += pi * c * r / killed;
                answered_wait += pi * c * r / (killed * killed);
                answered_sl += pi * c * r * ended_by(limits[0]) / killed;
                for (abandoned, limit) in abandoned_by.iter_mut().zip(limits) {
                    *abandoned += pi * c * theta * ended_by(limit) / killed;
                }
            }
            p_wait += pi;
        }
        let p_idle = 1.0 - p_wait;
        [
            p_wait,
            p_wait - answered,
            answered_wait / (p_idle + answered),
            p_idle + answered_sl,
            abandoned_by[0],
            abandoned_by[1],
            abandoned_by[2],
        ]
    }

    #[test]
    fn erlang_a_matches_brute_force() {
        for (t, agents) in [
            (traffic(0.015, 100.0, Some(60.0)), 2),
            (traffic(3.5 / 180.0, 180.0, Some(300.0)), 3),
            (traffic(0.05, 240.0, Some(100.0)), 10),
        ] {
            for (sl, abandon, short) in [(0.0, 47.0, 5.0), (7.0, 3.0, 0.0), (20.0, 47.0, 5.0)] {
                let thresholds = Thresholds {
                    service_level_secs: sl,
                    abandon_secs: abandon,
                    short_abandon_secs: short,
                };
                let f = erlang_a(t, agents, thresholds).unwrap();
                let [
                    p_wait,
                    p_abandon,
                    asa,
                    answered_sl,
                    abandoned_sl,
                    by_threshold,
                    short,
                ] = brute_force(t, agents as usize, thresholds);
                let context = format!("{f:?} {thresholds:?}");
                assert!(close(f.p_wait, p_wait, 1e-11), "{context}");
                assert!(close(f.p_abandon, p_abandon, 1e-11), "{context}");
                assert!(relatively_close(f.asa_secs, asa, 1e-10), "{context}");
                assert!(
                    close(f.p_answered_within_sl, answered_sl, 1e-11),
                    "{context}"
                );
                assert!(
                    close(f.p_abandoned_within_sl, abandoned_sl, 1e-11),
                    "{context}"
                );
                let after = p_abandon - by_threshold;
                assert!(
                    close(f.p_abandon_after_threshold, after, 1e-11),
                    "{context}"
                );
                assert!(close(f.p_short_abandon, short, 1e-11), "{context}");
                let counted = 1.0 - short;
                assert!(
                    close(f.service_level, answered_sl / counted, 1e-11),
                    "{context}"
                );
            }
        }
        // Far past the threshold, the wait's tail matches the same closed forms.
        let t = traffic(3.5 / 180.0, 180.0, Some(300.0));
        let long = Thresholds {
            service_level_secs: 600.0,
            ..Thresholds::default()
        };
        let [.., answered_sl, abandoned_sl, _, _] = brute_force(t, 3, long);
        let tail = p_wait_longer_than(t, 3, 600.0).unwrap();
        assert!(
            close(tail, 1.0 - answered_sl - abandoned_sl, 1e-11),
            "{tail}"
        );
        assert!(tail > 1e-5, "{tail}");
    }

    /// splitmix64, for a simulation that needs no crates.
    struct SplitMix64(u64);

    impl SplitMix64 {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn exponential(&mut self, rate: f64) -> f64 {
            let uniform = ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            -uniform.ln() / rate
        }
    }

    /// Simulates callers through N agents first come, first served: each caller's virtual
    /// wait is until the earliest agent frees after everyone answered before it, and it is
    /// answered iff that beats its patience. Returns p_wait, p_abandon, p_short_abandon,
    /// answered within sl, abandoned within sl, abandoned after abandon_secs, ASA, mean wait.
    fn simulate(t: Traffic, agents: usize, thresholds: Thresholds, callers: usize) -> [f64; 8] {
        let mut rng = SplitMix64(0x5EED_A11C);
        let patience_rate = 1.0 / t.mean_patience_secs.unwrap();
        let mut free_at = vec![0.0_f64; agents];
        let mut now = 0.0;
        let warm_up = callers / 10;
        let mut counts = [0.0; 6];
        let (mut answered, mut answered_wait, mut total_wait) = (0.0, 0.0, 0.0);
        for caller in 0..warm_up + callers {
            now += rng.exponential(t.arrivals_per_sec);
            let patience = rng.exponential(patience_rate);
            let handle = rng.exponential(1.0 / t.mean_handle_secs);
            let (agent, earliest) = free_at
                .iter()
                .copied()
                .enumerate()
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            let wait = (earliest - now).max(0.0);
            let is_answered = wait < patience;
            if is_answered {
                free_at[agent] = now + wait + handle;
            }
            if caller < warm_up {
                continue;
            }
            let abandoned = !is_answered;
            let events = [
                wait > 0.0,
                abandoned,
                abandoned && patience <= thresholds.short_abandon_secs,
                is_answered && wait <= thresholds.service_level_secs,
                abandoned && patience <= thresholds.service_level_secs,
                abandoned && patience > thresholds.abandon_secs,
            ];
            for (count, happened) in counts.iter_mut().zip(events) {
                *count += f64::from(u8::from(happened));
            }
            if is_answered {
                answered += 1.0;
                answered_wait += wait;
            }
            total_wait += wait.min(patience);
        }
        let n = callers as f64;
        let c = counts.map(|count| count / n);
        [
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            c[5],
            answered_wait / answered,
            total_wait / n,
        ]
    }

    #[test]
    fn erlang_a_matches_a_simulation() {
        let thresholds = Thresholds::default();
        for (t, agents) in [
            (traffic(3.3 / 180.0, 180.0, Some(120.0)), 3),
            (traffic(10.0 / 240.0, 240.0, Some(60.0)), 9),
        ] {
            let f = erlang_a(t, agents, thresholds).unwrap();
            let simulated = simulate(t, agents as usize, thresholds, 1_000_000);
            let modelled = [
                f.p_wait,
                f.p_abandon,
                f.p_short_abandon,
                f.p_answered_within_sl,
                f.p_abandoned_within_sl,
                f.p_abandon_after_threshold,
            ];
            for (i, (m, s)) in modelled.iter().zip(simulated).enumerate() {
                assert!(close(*m, s, 0.005), "figure {i}: model {m}, simulation {s}");
            }
            assert!(
                relatively_close(f.asa_secs, simulated[6], 0.03),
                "{f:?} {simulated:?}"
            );
            assert!(
                relatively_close(f.mean_wait_secs, simulated[7], 0.03),
                "{simulated:?}"
            );
        }
    }

    #[test]
    fn overload_tends_to_the_fluid_limit() {
        // 200 erlangs on 100 agents: half the callers must go, whatever the patience.
        let t = traffic(200.0 / 240.0, 240.0, Some(180.0));
        let f = erlang_a(t, 100, Thresholds::default()).unwrap();
        assert!(close(f.p_abandon, 0.5, 0.05), "{f:?}");
        assert!(f.p_wait > 0.99 && f.occupancy > 0.95, "{f:?}");
        let big = traffic(10_000.0 / 240.0, 240.0, Some(180.0));
        let f = erlang_a(big, 5000, Thresholds::default()).unwrap();
        assert!(close(f.p_abandon, 0.5, 0.01), "{f:?}");
        let values = [
            f.p_wait,
            f.p_abandon,
            f.p_abandon_after_threshold,
            f.p_short_abandon,
            f.p_answered_within_sl,
            f.p_abandoned_within_sl,
            f.service_level,
            f.service_level_abandons_met,
            f.asa_secs,
            f.mean_wait_secs,
            f.occupancy,
        ];
        assert!(values.iter().all(|v| v.is_finite() && *v >= 0.0), "{f:?}");
        // Staffed at the load, the big centre is in the quality-and-efficiency regime.
        let balanced = traffic(5000.0 / 240.0, 240.0, Some(180.0));
        let f = erlang_a(balanced, 5000, Thresholds::default()).unwrap();
        assert!(
            f.p_abandon < 0.02 && f.p_wait > 0.1 && f.p_wait < 0.9,
            "{f:?}"
        );
    }

    #[test]
    fn staffing_parma_peak_hour() {
        let thresholds = Thresholds::default();
        let target = StaffingTarget {
            max_p_abandon: Some(0.03),
            min_service_level: Some(0.8),
        };
        let f = staff(parma_peak(), thresholds, target, 100).unwrap();
        assert!(f.p_abandon <= 0.03 && f.service_level >= 0.8, "{f:?}");
        let fewer = erlang_a(parma_peak(), f.agents - 1, thresholds).unwrap();
        assert!(
            fewer.p_abandon > 0.03 || fewer.service_level < 0.8,
            "{fewer:?}"
        );
        let first_meeting = (1..=100)
            .find(|&n| {
                let g = erlang_a(parma_peak(), n, thresholds).unwrap();
                g.p_abandon <= 0.03 && g.service_level >= 0.8
            })
            .unwrap();
        assert_eq!(f.agents, first_meeting);
        assert_eq!(
            staff(parma_peak(), thresholds, target, f.agents - 1),
            Err(ErlangError::TargetUnreachable {
                max_agents: f.agents - 1
            })
        );
    }

    #[test]
    fn staffing_erlang_c_starts_past_the_load() {
        let target = StaffingTarget {
            max_p_abandon: None,
            min_service_level: Some(0.8),
        };
        let f = staff(published_example(), Thresholds::default(), target, 1000).unwrap();
        assert_eq!(f.agents, 14);
        let any = staff(
            published_example(),
            Thresholds::default(),
            StaffingTarget::default(),
            50,
        );
        assert_eq!(any.unwrap().agents, 11);
        let integral_load = traffic(0.1, 100.0, None);
        let f = staff(integral_load, Thresholds::default(), target, 1000).unwrap();
        assert!(f.agents > 10, "{f:?}");
        assert_eq!(
            staff(integral_load, Thresholds::default(), target, 10),
            Err(ErlangError::TargetUnreachable { max_agents: 10 })
        );
        // A target that no staffing can meet: Erlang A always loses someone.
        let never = StaffingTarget {
            max_p_abandon: Some(0.0),
            min_service_level: None,
        };
        assert_eq!(
            staff(parma_peak(), Thresholds::default(), never, 40),
            Err(ErlangError::TargetUnreachable { max_agents: 40 })
        );
    }

    #[test]
    fn bad_input_is_refused() {
        let thresholds = Thresholds::default();
        fn invalid<T>(name: &'static str, value: f64) -> Result<T, ErlangError> {
            Err(ErlangError::InvalidParameter { name, value })
        }
        let t = traffic(-1.0, 180.0, None);
        assert_eq!(
            erlang_c(t, 5, thresholds),
            invalid("arrivals_per_sec", -1.0)
        );
        let t = traffic(0.1, 0.0, None);
        assert_eq!(erlang_a(t, 5, thresholds), invalid("mean_handle_secs", 0.0));
        let t = traffic(0.1, f64::INFINITY, None);
        assert_eq!(
            erlang_a(t, 5, thresholds),
            invalid("mean_handle_secs", f64::INFINITY)
        );
        let t = traffic(0.1, 10.0, Some(-3.0));
        assert_eq!(
            erlang_a(t, 5, thresholds),
            invalid("mean_patience_secs", -3.0)
        );
        let nan = erlang_a(traffic(f64::NAN, 10.0, None), 5, thresholds);
        assert!(
            matches!(nan, Err(ErlangError::InvalidParameter { name: "arrivals_per_sec", value })
                if value.is_nan())
        );
        let bad = Thresholds {
            abandon_secs: -1.0,
            ..thresholds
        };
        assert_eq!(
            erlang_a(parma_peak(), 5, bad),
            invalid("abandon_secs", -1.0)
        );
        let zero = Thresholds {
            service_level_secs: 0.0,
            short_abandon_secs: 0.0,
            ..thresholds
        };
        assert!(erlang_a(parma_peak(), 5, zero).is_ok());
        assert_eq!(
            p_wait_longer_than(parma_peak(), 5, -2.0),
            invalid("secs", -2.0)
        );
        let target = StaffingTarget {
            max_p_abandon: Some(f64::INFINITY),
            min_service_level: None,
        };
        assert_eq!(
            staff(parma_peak(), thresholds, target, 10),
            invalid("max_p_abandon", f64::INFINITY)
        );

        assert_eq!(
            erlang_a(parma_peak(), 0, thresholds),
            Err(ErlangError::NoAgents)
        );
        assert_eq!(
            erlang_c(published_example(), 0, thresholds),
            Err(ErlangError::NoAgents)
        );
        assert_eq!(
            p_wait_longer_than(parma_peak(), 0, 1.0),
            Err(ErlangError::NoAgents)
        );
        assert_eq!(
            staff(parma_peak(), thresholds, StaffingTarget::default(), 0),
            Err(ErlangError::NoAgents)
        );

        let unstable = ErlangError::Unstable {
            offered_erlangs: 10.0,
            agents: 10,
        };
        assert_eq!(erlang_c(published_example(), 10, thresholds), Err(unstable));
        assert_eq!(erlang_a(published_example(), 10, thresholds), Err(unstable));
        assert_eq!(
            p_wait_longer_than(published_example(), 10, 5.0),
            Err(unstable)
        );
        assert!(matches!(
            erlang_c(published_example(), 9, thresholds),
            Err(ErlangError::Unstable { agents: 9, .. })
        ));
        // The same load with patient-but-finite callers is fine.
        let patient = Traffic {
            mean_patience_secs: Some(600.0),
            ..published_example()
        };
        assert!(erlang_a(patient, 9, thresholds).is_ok());
    }

    #[test]
    fn endless_patience_in_overload_is_too_long_a_queue() {
        let t = traffic(1.0, 240.0, Some(1e9));
        assert_eq!(
            erlang_a(t, 100, Thresholds::default()),
            Err(ErlangError::QueueTooLong {
                agents: 100,
                limit: MAX_QUEUE_STATES
            })
        );
        // Staffing steps over such levels, to the stable ones.
        let target = StaffingTarget {
            max_p_abandon: Some(0.01),
            min_service_level: Some(0.8),
        };
        let f = staff(t, Thresholds::default(), target, 1000).unwrap();
        assert!(f.agents > 240 && f.service_level >= 0.8, "{f:?}");
    }

    #[test]
    fn figures_serialize() {
        let f = erlang_c(published_example(), 14, Thresholds::default()).unwrap();
        let json = serde_json::to_value(f).unwrap();
        assert_eq!(json["agents"], 14);
        assert!(json["service_level"].as_f64().unwrap() > 0.88);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        #[test]
        fn erlang_a_figures_are_probabilities(
            lambda in 0.001..1.0_f64,
            handle in 10.0..600.0_f64,
            patience in 5.0..1000.0_f64,
            agents in 1..60_u32,
            sl in 0.0..120.0_f64,
        ) {
            let thresholds = Thresholds { service_level_secs: sl, ..Thresholds::default() };
            let t = traffic(lambda, handle, Some(patience));
            let f = erlang_a(t, agents, thresholds).unwrap();
            for p in [
                f.p_wait,
                f.p_abandon,
                f.p_abandon_after_threshold,
                f.p_short_abandon,
                f.p_answered_within_sl,
                f.p_abandoned_within_sl,
                f.service_level,
                f.service_level_abandons_met,
                f.occupancy,
            ] {
                proptest::prop_assert!((0.0..=1.0 + 1e-12).contains(&p), "{f:?}");
            }
            proptest::prop_assert!(f.p_abandon <= f.p_wait + 1e-15);
            proptest::prop_assert!(close(f.p_abandon, f.mean_wait_secs / patience, 1e-9));
            let waiting = p_wait_longer_than(t, agents, sl).unwrap();
            let total = f.p_answered_within_sl + f.p_abandoned_within_sl + waiting;
            proptest::prop_assert!(close(total, 1.0, 1e-11), "{total} {f:?}");
            proptest::prop_assert!(f.asa_secs.is_finite() && f.asa_secs >= 0.0);
        }
    }
}
