//! The `amico` command line, run as a process: the flags other tools rely on and the
//! errors a user sees.

use std::process::{Command, Output};

fn amico(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amico"))
        .args(args)
        .output()
        .expect("amico runs")
}

fn json(args: &[&str]) -> serde_json::Value {
    let output = amico(args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is one JSON object")
}

#[test]
fn simulate_prints_the_promised_json_fields() {
    let value = json(&[
        "simulate",
        "--agents",
        "10",
        "--arrival-rate-per-hour",
        "120",
        "--aht",
        "240",
        "--patience",
        "300",
        "--calls",
        "20000",
        "--seed",
        "7",
        "--format",
        "json",
    ]);
    for field in [
        "offered",
        "answered",
        "abandoned",
        "abandoned_after_threshold",
        "p_abandon",
        "p_abandon_after_threshold",
        "service_level",
        "asa_secs",
        "wait_p50_secs",
        "wait_p90_secs",
        "wait_p99_secs",
    ] {
        assert!(value[field].is_number(), "{field} missing in {value}");
    }
    for field in [
        "p_abandon",
        "p_abandon_after_threshold",
        "service_level",
        "asa_secs",
    ] {
        assert!(
            value["erlang_a"][field].is_number(),
            "erlang_a.{field} missing"
        );
    }
    assert_eq!(value["offered"], 20000);
    let answered = value["answered"].as_u64().unwrap();
    let abandoned = value["abandoned"].as_u64().unwrap();
    assert_eq!(answered + abandoned, 20000);
    let p = value["p_abandon"].as_f64().unwrap();
    assert!((p - abandoned as f64 / 20000.0).abs() < 1e-12);
    assert!(value["wait_p50_secs"].as_f64() <= value["wait_p90_secs"].as_f64());
    assert!(value["wait_p90_secs"].as_f64() <= value["wait_p99_secs"].as_f64());
}

#[test]
fn the_same_seed_gives_the_same_figures() {
    let args = [
        "simulate", "--calls", "3000", "--seed", "99", "--format", "json",
    ];
    assert_eq!(json(&args), json(&args));
    let other = json(&[
        "simulate", "--calls", "3000", "--seed", "100", "--format", "json",
    ]);
    assert_ne!(json(&args)["answered"], serde_json::Value::Null);
    assert_ne!(json(&args), other);
}

#[test]
fn thresholds_change_what_is_counted() {
    let base = [
        "simulate",
        "--agents",
        "12",
        "--arrival-rate-per-hour",
        "200",
        "--calls",
        "20000",
        "--format",
        "json",
    ];
    let default = json(&base);
    let longer: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--threshold", "120", "--sl-threshold", "60"])
        .collect();
    let longer = json(&longer);
    assert_eq!(
        default["abandoned"], longer["abandoned"],
        "same seed, same calls"
    );
    assert!(
        longer["abandoned_after_threshold"].as_u64()
            < default["abandoned_after_threshold"].as_u64()
    );
    assert!(longer["service_level"].as_f64() > default["service_level"].as_f64());
    assert!(
        longer["erlang_a"]["service_level"].as_f64()
            > default["erlang_a"]["service_level"].as_f64()
    );
}

#[test]
fn simulate_without_flags_runs_parmas_day_as_a_table() {
    let output = amico(&["simulate"]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("1225 calls over 1 day(s) of Parma's 10-hour profile"),
        "{text}"
    );
    assert!(text.contains("13 agents"), "{text}");
    assert!(text.contains("abandon rate after 47 s"), "{text}");
    assert!(text.contains("Parma reported 2.80 %"), "{text}");
    assert!(text.contains("Erlang A"), "{text}");
}

#[test]
fn staff_finds_the_smallest_team() {
    let value = json(&[
        "staff",
        "--arrival-rate-per-hour",
        "183.75",
        "--aht",
        "240",
        "--patience",
        "180",
        "--target-abandon",
        "0.03",
        "--target-sl",
        "0.8",
        "--sl-threshold",
        "20",
        "--format",
        "json",
    ]);
    let agents = value["agents"].as_u64().unwrap();
    assert!(value["p_abandon"].as_f64().unwrap() <= 0.03);
    assert!(value["service_level"].as_f64().unwrap() >= 0.8);
    assert!(value["asa_secs"].is_number());
    // One fewer misses a target.
    let fewer = amico(&[
        "staff",
        "--arrival-rate-per-hour",
        "183.75",
        "--aht",
        "240",
        "--patience",
        "180",
        "--target-abandon",
        "0.03",
        "--target-sl",
        "0.8",
        "--max-agents",
        &(agents - 1).to_string(),
        "--format",
        "json",
    ]);
    assert!(!fewer.status.success());
    assert!(fewer.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&fewer.stderr);
    assert!(
        stderr.contains(&format!("no staffing level up to {} agents", agents - 1)),
        "{stderr}"
    );
}

#[test]
fn bad_flags_name_the_flag_and_fail() {
    for (args, flag) in [
        (vec!["simulate", "--agents", "0"], "--agents"),
        (vec!["simulate", "--aht", "-3"], "--aht"),
        (
            vec!["simulate", "--arrival-rate-per-hour", "many"],
            "--arrival-rate-per-hour",
        ),
        (vec!["simulate", "--format", "xml"], "--format"),
        (vec!["simulate", "--calls", "0"], "--calls"),
        (vec!["simulate", "--agnets", "3"], "--agnets"),
        (vec!["staff", "--aht", "240"], "--arrival-rate-per-hour"),
        (vec!["bench-store", "--calls", "0"], "--calls"),
        (vec!["bench-store", "--rate", "0"], "--rate"),
        (
            vec!["bench-store", "--database", "mysql://x/y"],
            "--database: database 'mysql://x/y': unknown scheme 'mysql'",
        ),
        (
            vec![
                "staff",
                "--arrival-rate-per-hour",
                "100",
                "--aht",
                "240",
                "--target-abandon",
                "3",
            ],
            "--target-abandon",
        ),
    ] {
        let output = amico(&args);
        assert!(!output.status.success(), "{args:?} must fail");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
    let output = amico(&["staff", "--arrival-rate-per-hour", "100", "--aht", "240"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--target-abandon or --target-sl"));
}

#[test]
fn report_refuses_bad_input_with_the_reason() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let missing = format!("sqlite:{}", dir.join("no-such-amico.db").display());
    for (args, says) in [
        (vec!["report", "--database", &missing], "no such file"),
        (
            vec!["report", "--database", "mysql://x/y"],
            "unknown scheme 'mysql'",
        ),
        (
            vec!["report", "--from", "yesterday"],
            "--from: 'yesterday' is not a date",
        ),
        (vec!["report", "--interval", "7m"], "divide a day"),
        (vec!["report", "--tz", "Mars/Olympus"], "--tz Mars/Olympus"),
        (
            vec![
                "report",
                "--database",
                &missing,
                "--from",
                "2026-11-27",
                "--to",
                "2026-11-26",
            ],
            "must be before --to",
        ),
        (
            vec![
                "report",
                "--database",
                &missing,
                "--from",
                "2000-01-01",
                "--to",
                "2100-01-01",
            ],
            "at most 100000",
        ),
    ] {
        let output = amico(&args);
        assert!(!output.status.success(), "{args:?} must fail");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    assert!(
        !dir.join("no-such-amico.db").exists(),
        "a report never creates a database"
    );
}

#[test]
fn help_promises_only_the_edge_that_exists() {
    let output = amico(&["--help"]);
    assert!(output.status.success(), "{output:?}");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.contains("SIP") && help.contains("RTP"),
        "the SIP and RTP edge is named: {help}"
    );
    assert!(
        !help.to_ascii_lowercase().contains("webrtc"),
        "no WebRTC edge yet: {help}"
    );
}
