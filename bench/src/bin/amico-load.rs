//! `amico-load`: both sides of a contact centre against a SIP ACD over UDP — a trunk that
//! places calls at a Poisson rate and agents that register, answer, talk and hang up —
//! with a live progress line and a final report (a table, or JSON with `--json`).
//!
//! ```text
//! cargo run --release -p amico-bench --bin amico-load -- --target 127.0.0.1:5060 \
//!     --rate 20 --duration 30 --agents 50 --talk 1 --server-pid $(pidof amico)
//! ```
//!
//! `--help` lists the options; see `amico_bench::load` for what is measured.

use amico_bench::load::{Options, USAGE, ramp, ramp_table, run};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|arg| arg == "--help" || arg == "-h") {
        print!("{USAGE}");
        return;
    }
    let options = match Options::parse(args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("amico-load: {message}");
            std::process::exit(2);
        }
    };
    // One thread unless asked: the generator shares the server's cores, and each wake-up
    // handed from one of its threads to another costs them a futex and a context switch.
    let runtime = match options.threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        threads => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("amico-load: cannot start the runtime: {error}");
            std::process::exit(1);
        }
    };
    runtime.block_on(generate(options));
}

async fn generate(options: Options) {
    let json = options.json;
    if options.ramp.is_some() {
        match ramp(options).await {
            Ok(reports) if json => println!(
                "{}",
                serde_json::Value::Array(reports.iter().map(|r| r.json()).collect())
            ),
            Ok(reports) => print!("{}", ramp_table(&reports)),
            Err(error) => {
                eprintln!("amico-load: {error:#}");
                std::process::exit(1);
            }
        }
        return;
    }
    match run(options).await {
        Ok(report) if json => println!("{}", report.json()),
        Ok(report) => print!("{}", report.table()),
        Err(error) => {
            eprintln!("amico-load: {error:#}");
            std::process::exit(1);
        }
    }
}
