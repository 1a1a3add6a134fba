//! Amico's command line: the server, its configuration check, the simulator and the
//! staffing calculator.

use std::process::ExitCode;
use std::time::Duration;

use amico_core::erlang::{self, StaffingTarget, Thresholds};
use amico_core::simulator::{self, Arrivals, HandleTime, Scenario, Traffic};
use clap::{Parser, Subcommand, ValueEnum};

use crate::records::{bench as benchstore, history, store};
use crate::{config, server};

mod report;

/// Amico: an automatic call distribution engine.
#[derive(Debug, Parser)]
#[command(name = "amico", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Commands>,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Run the server (SIP, RTP, HTTP). Without --config: the embedded demo configuration.
    Run(RunArgs),
    /// Check a configuration file; every error names the field and the reason.
    CheckConfig {
        /// The TOML file.
        file: std::path::PathBuf,
    },
    /// Run the real ACD core against simulated callers and compare with Erlang A.
    /// With no flags: a day of Parma's contact centre.
    Simulate(SimulateArgs),
    /// How many agents a queue needs for its abandonment and service-level targets
    /// (Erlang A, or Erlang C without --patience).
    Staff(StaffArgs),
    /// Interval and daily reports from the store, per queue and per agent.
    Report(ReportArgs),
    /// How fast this machine's store commits the queue log: records a second, and the
    /// wait from hand-over to commit. Real ACD events on a virtual clock; by default into
    /// a scratch SQLite file.
    BenchStore(BenchStoreArgs),
}

#[derive(Debug, clap::Args)]
struct BenchStoreArgs {
    /// Calls to record (an answered call leaves 14 records).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    calls: u64,
    /// Calls a second; without it every call is handed over at once (throughput).
    #[arg(long, value_name = "CALLS_PER_SEC", value_parser = positive)]
    rate: Option<f64>,
    /// The database: sqlite:FILE or postgres://…, with no queue log yet. Default: a scratch
    /// SQLite file, removed afterwards.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// The configuration whose queues and agents take the calls. Default: the embedded
    /// demo configuration.
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, clap::Args)]
struct ReportArgs {
    /// Start of the period: 2026-11-26 (midnight), 2026-11-26T08:30 (local time), or an
    /// instant with its offset (2026-11-26T08:30:00Z). Default: today's midnight.
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// End of the period (not included), in the same forms. Default: now.
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Interval length: 15m, 30m, 1h, day, or none for the period's totals only.
    #[arg(long, value_name = "LENGTH", default_value = "15m", value_parser = history::parse_interval)]
    interval: history::Interval,
    /// Rows per queue, per agent, or both.
    #[arg(long, value_enum, default_value_t = history::By::Both)]
    by: history::By,
    /// Output format.
    #[arg(long, value_enum, default_value_t = history::Format::Table)]
    format: history::Format,
    /// The time zone for dates, intervals and midnights (an IANA name such as
    /// Europe/Rome). Default: the configuration's `[reports] time_zone`, else the system's.
    #[arg(long, value_name = "ZONE")]
    tz: Option<String>,
    /// The database: sqlite:FILE or postgres://… Default: the configuration's.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// The configuration (for its database and each queue's thresholds). Default: the
    /// embedded demo configuration.
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
}

#[derive(Debug, Default, clap::Args)]
struct RunArgs {
    /// The TOML configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// The database, instead of the configuration's `[storage] database`: `sqlite:FILE`
    /// or `postgres://USER:PASSWORD@HOST/DB`.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// A readable table.
    Table,
    /// One JSON object.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Distribution {
    /// Exponential, as Erlang A assumes.
    Exponential,
    /// Log-normal with --handle-cv.
    Lognormal,
}

#[derive(Debug, clap::Args)]
#[command(allow_negative_numbers = true)]
struct SimulateArgs {
    /// Agents serving the queue.
    #[arg(long, default_value_t = 13, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    agents: u32,
    /// Calls per hour at a constant rate (Poisson). Without it, calls follow Parma's
    /// 10-hour day (peak hour 15 %).
    #[arg(long, value_name = "L", value_parser = positive)]
    arrival_rate_per_hour: Option<f64>,
    /// Mean handle time in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 240.0, value_parser = positive)]
    aht: f64,
    /// Mean patience in seconds (exponential); "inf" for callers who never hang up.
    #[arg(long, value_name = "SECS", default_value_t = 180.0, value_parser = positive)]
    patience: f64,
    /// Number of calls.
    #[arg(long, value_name = "N", default_value_t = 1225, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    calls: u64,
    /// Days the profile's calls are spread over (without --arrival-rate-per-hour).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    days: u32,
    /// Random seed: the same seed gives the same figures.
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// Abandons after this wait are counted apart (seconds).
    #[arg(long, value_name = "SECS", default_value_t = 47.0, value_parser = non_negative)]
    threshold: f64,
    /// Service-level target time (seconds).
    #[arg(long, value_name = "SECS", default_value_t = 20.0, value_parser = non_negative)]
    sl_threshold: f64,
    /// Handle-time distribution.
    #[arg(long, value_enum, default_value_t = Distribution::Exponential)]
    handle_time: Distribution,
    /// Coefficient of variation of a log-normal handle time.
    #[arg(long, value_name = "CV", default_value_t = 1.0, value_parser = positive)]
    handle_cv: f64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, clap::Args)]
#[command(allow_negative_numbers = true)]
pub(crate) struct StaffArgs {
    /// Calls per hour.
    #[arg(long, value_name = "L", value_parser = positive)]
    pub(crate) arrival_rate_per_hour: f64,
    /// Mean handle time in seconds.
    #[arg(long, value_name = "SECS", value_parser = positive)]
    pub(crate) aht: f64,
    /// Mean patience in seconds; without it, Erlang C (callers never hang up).
    #[arg(long, value_name = "SECS", value_parser = positive)]
    pub(crate) patience: Option<f64>,
    /// Highest acceptable share of callers who abandon.
    #[arg(long, value_name = "P", value_parser = probability)]
    pub(crate) target_abandon: Option<f64>,
    /// Lowest acceptable service level.
    #[arg(long, value_name = "P", value_parser = probability)]
    pub(crate) target_sl: Option<f64>,
    /// Service-level target time (seconds).
    #[arg(long, value_name = "SECS", default_value_t = 20.0, value_parser = non_negative)]
    pub(crate) sl_threshold: f64,
    /// Abandons after this wait are counted apart (seconds).
    #[arg(long, value_name = "SECS", default_value_t = 47.0, value_parser = non_negative)]
    pub(crate) threshold: f64,
    /// Give up above this many agents.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub(crate) max_agents: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

fn positive(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(v) if v > 0.0 && !v.is_nan() => Ok(v),
        Ok(_) => Err("must be greater than zero".into()),
        Err(_) => Err("not a number".into()),
    }
}

fn non_negative(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Ok(_) => Err("must be a finite number, zero or more".into()),
        Err(_) => Err("not a number".into()),
    }
}

fn probability(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        Ok(_) => Err("must be a share between 0 and 1 (0.03 for 3 %)".into()),
        Err(_) => Err("not a number".into()),
    }
}

/// Parses the command line, runs the command and gives the process's exit code: what the
/// `amico` binary does.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => run(&RunArgs::default()),
        Some(Commands::Run(args)) => run(&args),
        Some(Commands::CheckConfig { file }) => check_config(&file),
        Some(Commands::Simulate(args)) => simulate(&args),
        Some(Commands::Staff(args)) => staff(&args),
        Some(Commands::Report(args)) => report(&args),
        Some(Commands::BenchStore(args)) => bench_store(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("amico: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<config::Validated> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    config::Config::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn check_config(path: &std::path::Path) -> anyhow::Result<()> {
    let validated = load(path)?;
    let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    println!(
        "{}: ok ({}, {}, {})",
        path.display(),
        count(validated.acd.queues.len(), "queue"),
        count(validated.acd.agents.len(), "agent"),
        count(validated.trunks.len(), "trunk")
    );
    Ok(())
}

fn run(args: &RunArgs) -> anyhow::Result<()> {
    // The whole configuration is checked before any port is bound.
    let mut validated = match &args.config {
        Some(path) => load(path)?,
        None => {
            config::Config::parse(config::DEMO).map_err(|e| anyhow::anyhow!("demo config: {e}"))?
        }
    };
    if let Some(database) = &args.database {
        store::database_url(database).map_err(|e| anyhow::anyhow!("--database: {e}"))?;
        validated.config.storage.database = database.clone();
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AMICO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rsipstack=warn")),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let signals = shutdown.clone();
        tokio::spawn(async move {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => term,
                    Err(_) => return,
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            signals.cancel();
        });
        // On a worker, not on this thread: the server's loop hands agents' logins and
        // logouts to the ACD, and a hand-over between workers is cheaper than waking the
        // main thread for it (trunk calls go from the edge's task to theirs directly).
        let server = server::run(
            validated,
            args.config.clone(),
            args.database.clone(),
            shutdown,
        );
        tokio::spawn(server)
            .await
            .map_err(|error| anyhow::anyhow!("the server's task: {error}"))?
    })
}

fn bench_store(args: &BenchStoreArgs) -> anyhow::Result<()> {
    let validated = match &args.config {
        Some(path) => load(path)?,
        None => {
            config::Config::parse(config::DEMO).map_err(|e| anyhow::anyhow!("demo config: {e}"))?
        }
    };
    if let Some(database) = &args.database {
        store::database_url(database).map_err(|e| anyhow::anyhow!("--database: {e}"))?;
    }
    let settings = benchstore::Settings {
        database: args.database.clone(),
        calls: args.calls,
        rate: args.rate,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let measured = runtime.block_on(benchstore::measure(
        &settings,
        validated.acd,
        |done, handed| {
            eprintln!("amico bench-store: {done} of {handed} records committed");
        },
    ))?;
    match args.format {
        Format::Table => print!("{}", measured.table()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&measured)?),
    }
    Ok(())
}

fn report(args: &ReportArgs) -> anyhow::Result<()> {
    let validated = match &args.config {
        Some(path) => load(path)?,
        None => {
            config::Config::parse(config::DEMO).map_err(|e| anyhow::anyhow!("demo config: {e}"))?
        }
    };
    let zone = match &args.tz {
        Some(name) => {
            jiff::tz::TimeZone::get(name).map_err(|e| anyhow::anyhow!("--tz {name}: {e}"))?
        }
        None => validated.config.reports.zone(),
    };
    let now = jiff::Timestamp::now().to_zoned_datetime(zone.clone());
    let from = match &args.from {
        Some(text) => {
            history::parse_time(text, &zone).map_err(|e| anyhow::anyhow!("--from: {e}"))?
        }
        None => now.start_of_day()?,
    };
    let to = match &args.to {
        Some(text) => history::parse_time(text, &zone).map_err(|e| anyhow::anyhow!("--to: {e}"))?,
        None => now,
    };
    let request = history::Request {
        database: args
            .database
            .clone()
            .unwrap_or_else(|| validated.config.storage.database.clone()),
        from,
        to,
        interval: args.interval.0,
        thresholds: validated
            .acd
            .queues
            .iter()
            .map(|q| (q.name.clone(), q.thresholds))
            .collect(),
        by: args.by,
        format: args.format,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(history::build(&request))?;
    print!("{}", report.render(request.format)?);
    Ok(())
}

fn simulate(args: &SimulateArgs) -> anyhow::Result<()> {
    let secs = Duration::from_secs_f64;
    let mean = secs(args.aht);
    let traffic = Traffic {
        queue: "comune".into(),
        calls: args.calls,
        arrivals: match args.arrival_rate_per_hour {
            Some(per_hour) => Arrivals::Poisson { per_hour },
            None => Arrivals::Profile {
                hourly: simulator::PARMA_PROFILE.to_vec(),
                days: args.days,
            },
        },
        handle: match args.handle_time {
            Distribution::Exponential => HandleTime::Exponential { mean },
            Distribution::Lognormal => HandleTime::LogNormal {
                mean,
                cv: args.handle_cv,
            },
        },
        patience: args.patience.is_finite().then(|| secs(args.patience)),
        priority: 0,
    };
    let mut scenario = Scenario::single_queue(args.agents, traffic.clone());
    let queue = &mut scenario.config.queues[0];
    queue.thresholds.abandon = secs(args.threshold);
    queue.thresholds.service_level = secs(args.sl_threshold);
    let thresholds = Thresholds {
        service_level_secs: args.sl_threshold,
        abandon_secs: args.threshold,
        short_abandon_secs: queue.thresholds.short_abandon.as_secs_f64(),
    };

    let outcome = simulator::run(&scenario, args.seed)?;
    let model = simulator::erlang_a_for(&traffic, args.agents, thresholds).ok();
    let report = report::SimulationReport::new(args_summary(args), &outcome, model);
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Table => print!("{}", report.table()),
    }
    Ok(())
}

fn args_summary(args: &SimulateArgs) -> report::ScenarioSummary {
    report::ScenarioSummary {
        agents: args.agents,
        calls: args.calls,
        arrivals: match args.arrival_rate_per_hour {
            Some(_) => "poisson".into(),
            None => "parma-profile".into(),
        },
        arrival_rate_per_hour: args.arrival_rate_per_hour,
        days: args.arrival_rate_per_hour.is_none().then_some(args.days),
        aht_secs: args.aht,
        handle_time: match args.handle_time {
            Distribution::Exponential => "exponential".into(),
            Distribution::Lognormal => format!("lognormal(cv={})", args.handle_cv),
        },
        patience_secs: args.patience.is_finite().then_some(args.patience),
        threshold_secs: args.threshold,
        sl_threshold_secs: args.sl_threshold,
        seed: args.seed,
    }
}

fn staff(args: &StaffArgs) -> anyhow::Result<()> {
    if args.target_abandon.is_none() && args.target_sl.is_none() {
        anyhow::bail!("give at least one target: --target-abandon or --target-sl");
    }
    let traffic = erlang::Traffic {
        arrivals_per_sec: args.arrival_rate_per_hour / 3600.0,
        mean_handle_secs: args.aht,
        mean_patience_secs: args.patience.filter(|p| p.is_finite()),
    };
    let thresholds = Thresholds {
        service_level_secs: args.sl_threshold,
        abandon_secs: args.threshold,
        ..Thresholds::default()
    };
    let target = StaffingTarget {
        max_p_abandon: args.target_abandon,
        min_service_level: args.target_sl,
    };
    let figures = erlang::staff(traffic, thresholds, target, args.max_agents)?;
    let report = report::StaffReport::new(&figures, traffic);
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Table => print!("{}", report.table(args)),
    }
    Ok(())
}
