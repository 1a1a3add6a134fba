//! The deployment files in `deploy/`: the example configuration passes `amico
//! check-config` and runs; every metric the Grafana dashboard and the Prometheus alerts
//! name is one a real server exports; the systemd unit, the container file and the
//! Prometheus configuration start, reload and scrape what they should, with the ports,
//! paths and versions of the configuration and the workspace.

#[path = "support/server.rs"]
mod server;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use server::Server;

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn deploy_path(file: &str) -> PathBuf {
    repository().join("deploy").join(file)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(deploy_path(file)).unwrap_or_else(|e| panic!("deploy/{file}: {e}"))
}

fn example() -> toml::Table {
    read("amico.toml")
        .parse()
        .unwrap_or_else(|e| panic!("deploy/amico.toml is not TOML: {e}"))
}

/// `table.a.b` as a string.
fn text<'a>(table: &'a toml::Table, path: &[&str]) -> &'a str {
    let mut value = table
        .get(path[0])
        .unwrap_or_else(|| panic!("no {}", path[0]));
    for key in &path[1..] {
        value = value
            .get(key)
            .unwrap_or_else(|| panic!("no {}", path.join(".")));
    }
    value
        .as_str()
        .unwrap_or_else(|| panic!("{} is not a string", path.join(".")))
}

fn integer(table: &toml::Table, path: &[&str]) -> i64 {
    let mut value = &table[path[0]];
    for key in &path[1..] {
        value = &value[key];
    }
    value
        .as_integer()
        .unwrap_or_else(|| panic!("{} is not an integer", path.join(".")))
}

fn array<'a>(table: &'a toml::Table, key: &str) -> &'a [toml::Value] {
    table
        .get(key)
        .and_then(|v| v.as_array())
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

// ---------------------------------------------------------------------------------------
// The example configuration

#[test]
fn the_example_configuration_passes_check_config() {
    let output = Command::new(env!("CARGO_BIN_EXE_amico"))
        .arg("check-config")
        .arg(deploy_path("amico.toml"))
        .output()
        .expect("amico runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "amico check-config deploy/amico.toml failed:\n{}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(": ok ("), "{stdout}");
}

#[test]
fn the_example_configuration_is_for_production_and_its_secrets_are_placeholders() {
    let config = example();
    assert_eq!(
        text(&config, &["storage", "database"]),
        "sqlite:/var/lib/amico/amico.db"
    );
    assert_eq!(
        text(&config, &["prompts", "dir"]),
        "/usr/share/amico/prompts"
    );
    for section in ["sip", "http"] {
        let listen: SocketAddr = text(&config, &[section, "listen"]).parse().unwrap();
        assert!(listen.ip().is_unspecified(), "{section}.listen: {listen}");
    }
    let raw = read("amico.toml");
    assert!(
        raw.contains("# database = \"postgres://"),
        "the PostgreSQL alternative is shown, commented out"
    );

    // Every secret is an obvious placeholder, so that no real one is ever committed and
    // `grep CHANGE-ME` finds each one to replace.
    let mut secrets = Vec::new();
    for agent in array(&config, "agents") {
        secrets.push(("agents.sip_password", &agent["sip_password"]));
    }
    for trunk in array(&config, "trunks") {
        if let Some(password) = trunk.get("password") {
            secrets.push(("trunks.password", password));
        }
    }
    let tokens = config["api"]["tokens"].as_array().expect("api tokens");
    for token in tokens {
        secrets.push(("api.tokens.token", &token["token"]));
    }
    assert!(secrets.len() >= 5, "{secrets:?}");
    for (field, secret) in &secrets {
        let secret = secret.as_str().unwrap_or_default();
        assert!(secret.starts_with("CHANGE-ME"), "{field} = {secret:?}");
    }

    // What the brief promises of the example: a trunk trusted by address and one with
    // digest credentials, several queues and agents, a supervisor token.
    let trunks = array(&config, "trunks");
    assert!(trunks.iter().any(|t| t.get("sources").is_some()));
    assert!(
        trunks
            .iter()
            .any(|t| t.get("username").is_some() && t.get("sources").is_none())
    );
    assert!(array(&config, "queues").len() >= 2);
    assert!(array(&config, "agents").len() >= 3);
    assert!(
        tokens
            .iter()
            .any(|t| t["scope"].as_str() == Some("supervisor"))
    );
}

/// The example with its listeners on ephemeral local ports, the test's own RTP range and
/// the repository's prompts; everything else (trunks, queues, experiences, tokens) as
/// shipped.
fn runnable_example() -> String {
    let mut config = example();
    let test_config: toml::Table = server::config(0, "").parse().expect("the test config");
    config["sip"]["listen"] = "127.0.0.1:0".into();
    config["http"]["listen"] = "127.0.0.1:0".into();
    config.insert("rtp".into(), test_config["rtp"].clone());
    let prompts = repository().join("prompts");
    config["prompts"]["dir"] = prompts.display().to_string().into();
    toml::to_string(&config).expect("TOML")
}

#[test]
fn the_example_configuration_runs_with_its_prompts_and_tokens() {
    // `check-config` does not open the prompts; a start does, so an announcement named
    // in an [experience] that has no recording fails here.
    let config = example();
    let server = Server::start(&runnable_example());
    let health: serde_json::Value =
        serde_json::from_str(&server.get("/health")).expect("/health is JSON");
    assert_eq!(health["status"], "ok", "{health}");
    let queues: Vec<&str> = array(&config, "queues")
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    let running: Vec<&str> = health["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(running, queues);

    for token in config["api"]["tokens"].as_array().unwrap() {
        let (status, body) = server.api("GET", "/api/queues", token["token"].as_str(), None);
        assert_eq!(status, 200, "token {}: {body}", token["name"]);
    }
    let (status, _) = server.api("GET", "/api/queues", Some("not-a-configured-token"), None);
    assert_eq!(status, 401);
}

// ---------------------------------------------------------------------------------------
// Metric names

/// The sample names a scrape's families have in the OpenMetrics text format (a counter
/// `x` is sampled as `x_total`, a histogram as `x_bucket`, `x_sum`, `x_count`), with every
/// sample name the scrape shows. A family with no sample yet (a ratio before any vote)
/// still names its samples through its `# TYPE` line.
fn exported_names(scrape: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in scrape.lines() {
        if let Some(declaration) = line.strip_prefix("# TYPE ") {
            let mut words = declaration.split_whitespace();
            let (Some(family), Some(kind)) = (words.next(), words.next()) else {
                panic!("a bad TYPE line: {line}");
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total", "_created"],
                "histogram" => &["_bucket", "_sum", "_count", "_created"],
                "gaugehistogram" => &["_bucket", "_gsum", "_gcount"],
                "summary" => &["", "_sum", "_count", "_created"],
                "info" => &["_info"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{family}{s}")));
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Every identifier that starts with `amico_` in `text` (up to the first character that
/// cannot be in a metric name).
fn metric_names(text: &str, names: &mut BTreeSet<String>) {
    let mut from = 0;
    while let Some(found) = text[from..].find("amico_") {
        let start = from + found;
        let end = text[start..]
            .find(|c: char| !is_name_char(c))
            .map_or(text.len(), |n| start + n);
        let preceded = text[..start].chars().next_back().is_some_and(is_name_char);
        if !preceded {
            names.insert(text[start..end].to_owned());
        }
        from = end;
    }
}

/// Every string in a JSON document.
fn strings<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match value {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read("grafana-dashboard.json"))
        .unwrap_or_else(|e| panic!("deploy/grafana-dashboard.json is not JSON: {e}"))
}

/// The dashboard's panels, those inside rows included (rows themselves left out).
fn panels(dashboard: &serde_json::Value) -> Vec<&serde_json::Value> {
    fn walk<'a>(list: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
        for panel in list.as_array().into_iter().flatten() {
            if panel["type"] == "row" {
                walk(&panel["panels"], out);
            } else {
                out.push(panel);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

#[test]
fn the_dashboard_and_the_alerts_use_only_metrics_amico_exports() {
    let server = Server::start(&server::config(1, ""));
    let scrape = server.get("/metrics");
    let exported = exported_names(&scrape);
    // The scrape is the real one: a counter as its _total sample, a gauge by its name.
    for name in ["amico_queue_offered_total", "amico_queue_waiting_callers"] {
        assert!(
            exported.contains(name),
            "{name} not in the scrape:\n{scrape}"
        );
    }
    assert!(!exported.contains("amico_queue_offered"));

    let dashboard = dashboard();
    let mut dashboard_strings = Vec::new();
    strings(&dashboard, &mut dashboard_strings);
    let mut in_dashboard = BTreeSet::new();
    for s in dashboard_strings {
        metric_names(s, &mut in_dashboard);
    }
    let mut in_alerts = BTreeSet::new();
    metric_names(&read("amico-alerts.yml"), &mut in_alerts);

    for (file, used) in [
        ("grafana-dashboard.json", &in_dashboard),
        ("amico-alerts.yml", &in_alerts),
    ] {
        let unknown: Vec<&String> = used.iter().filter(|n| !exported.contains(*n)).collect();
        assert!(
            unknown.is_empty(),
            "deploy/{file} uses metrics Amico does not export: {unknown:?}\nexported: {exported:?}"
        );
    }

    // What each file is for: the dashboard shows these, the alerts watch those.
    for name in [
        "amico_queue_waiting_callers",
        "amico_queue_longest_wait_seconds",
        "amico_queue_answered_within_sl_total",
        "amico_queue_abandoned_after_threshold_total",
        "amico_queue_abandoned_total",
        "amico_queue_offered_total",
        "amico_queue_answered_total",
        "amico_queue_wait_seconds",
        "amico_queue_agents",
        "amico_survey_votes_total",
        "amico_sip_requests_received_total",
        "amico_sip_responses_sent_total",
        "amico_rtp_packets_relayed_total",
        "amico_rtp_packets_dropped_total",
        "amico_calls_active",
        "amico_store_pending",
        "amico_store_committed_seq",
    ] {
        assert!(in_dashboard.contains(name), "the dashboard shows no {name}");
    }
    for name in [
        "amico_queue_abandoned_after_threshold_total",
        "amico_queue_answered_within_sl_total",
        "amico_queue_waiting_callers",
        "amico_queue_agents",
        "amico_store_errors_total",
        "amico_store_dropped_total",
        "amico_sip_malformed_total",
    ] {
        assert!(in_alerts.contains(name), "no alert watches {name}");
    }
}

// ---------------------------------------------------------------------------------------
// The Grafana dashboard

#[test]
fn every_dashboard_panel_queries_the_prometheus_data_source() {
    let dashboard = dashboard();
    let schema = dashboard["schemaVersion"].as_u64().expect("schemaVersion");
    assert!(schema >= 36, "schemaVersion {schema}");

    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating");
    let variable = |name: &str| {
        variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no ${name} variable"))
    };
    let source = variable("DS_PROMETHEUS");
    assert_eq!(source["type"], "datasource");
    assert_eq!(source["query"], "prometheus");
    let queue = variable("queue");
    let query = queue["query"]["query"]
        .as_str()
        .or(queue["query"].as_str())
        .expect("the queue variable's query");
    assert_eq!(query, "label_values(amico_queue_offered_total, queue)");
    assert_eq!(queue["datasource"]["uid"], "${DS_PROMETHEUS}");

    let panels = panels(&dashboard);
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let mut ids = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        assert!(
            ids.insert(panel["id"].as_u64().expect("a panel id")),
            "{title}: duplicate id"
        );
        assert_eq!(
            panel["datasource"]["uid"], "${DS_PROMETHEUS}",
            "{title}: datasource"
        );
        assert_eq!(panel["datasource"]["type"], "prometheus", "{title}");
        let targets = panel["targets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        assert!(!targets.is_empty(), "{title}: no target");
        for target in targets {
            let expr = target["expr"].as_str().unwrap_or_default();
            assert!(!expr.trim().is_empty(), "{title}: a target without expr");
            assert!(expr.contains("amico_"), "{title}: {expr}");
            if !target["datasource"].is_null() {
                assert_eq!(target["datasource"], panel["datasource"], "{title}");
            }
        }
    }
    // The 3 % target is drawn on the abandon panel, the 80 % one on the service level.
    let thresholds: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["fieldConfig"]["defaults"]["thresholds"].to_string())
        .collect();
    assert!(thresholds.iter().any(|t| t.contains("0.03")), "no 3 % line");
    assert!(thresholds.iter().any(|t| t.contains("0.8")), "no 80 % line");
}

// ---------------------------------------------------------------------------------------
// The systemd unit

/// `Key=Value` lines by section, in order (keys may repeat).
fn unit() -> BTreeMap<String, Vec<(String, String)>> {
    let mut sections: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut section = String::new();
    for line in read("amico.service").lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("amico.service: not Key=Value: {line}"));
        sections
            .entry(section.clone())
            .or_default()
            .push((key.trim().to_owned(), value.trim().to_owned()));
    }
    sections
}

#[test]
fn the_systemd_unit_runs_reloads_and_confines_amico() {
    let unit = unit();
    let service = &unit["Service"];
    let values = |key: &str| -> Vec<&str> {
        service
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let one = |key: &str| -> &str {
        match values(key).as_slice() {
            [value] => value,
            other => panic!("[Service] {key}: {other:?}"),
        }
    };
    let start: Vec<&str> = one("ExecStart").split_whitespace().collect();
    assert!(start[0].ends_with("/amico"), "{start:?}");
    assert_eq!(start[1..], ["run", "--config", "/etc/amico/amico.toml"]);
    let reload = values("ExecReload");
    assert!(
        reload.iter().any(|r| {
            let words: Vec<&str> = r.split_whitespace().collect();
            words.len() == 3
                && words[0].ends_with("/kill")
                && words[1] == "-HUP"
                && words[2] == "$MAINPID"
        }),
        "{reload:?}"
    );
    for (key, want) in [
        ("Type", "simple"),
        ("User", "amico"),
        ("Restart", "on-failure"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("PrivateTmp", "yes"),
        ("StateDirectory", "amico"),
    ] {
        assert_eq!(one(key), want, "[Service] {key}");
    }
    let limit: u64 = one("LimitNOFILE").parse().expect("LimitNOFILE");
    assert!(limit >= 4096, "LimitNOFILE={limit}");

    // ProtectSystem=strict makes everything read-only but ReadWritePaths: the SQLite
    // database (and its -wal and -shm files) must be under one of them.
    let writable: Vec<&str> = values("ReadWritePaths")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .collect();
    let database = example()["storage"]["database"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = database.strip_prefix("sqlite:").expect("an SQLite example");
    let folder = Path::new(file).parent().unwrap();
    assert!(
        writable.iter().any(|w| folder.starts_with(w)),
        "{file} is not under ReadWritePaths {writable:?}"
    );
    assert_eq!(folder, Path::new("/var/lib").join(one("StateDirectory")));
}

// ---------------------------------------------------------------------------------------
// The container file

/// The Containerfile's instructions (continuation lines joined, comments left out), as
/// (instruction, arguments).
fn containerfile() -> Vec<(String, String)> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in read("Containerfile").lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (instruction, arguments) = current
                    .trim()
                    .split_once(char::is_whitespace)
                    .unwrap_or_else(|| panic!("Containerfile: {current}"));
                instructions.push((instruction.to_uppercase(), arguments.trim().to_owned()));
                current.clear();
            }
        }
    }
    instructions
}

#[test]
fn the_container_builds_the_workspace_and_runs_amico_unprivileged() {
    let instructions = containerfile();
    let all = |name: &str| -> Vec<&str> {
        instructions
            .iter()
            .filter(|(i, _)| i == name)
            .map(|(_, a)| a.as_str())
            .collect()
    };
    let last = |name: &str| -> &str {
        all(name)
            .last()
            .copied()
            .unwrap_or_else(|| panic!("no {name}"))
    };

    // The entry point, in exec form so that SIGTERM (docker stop) and SIGHUP reach amico.
    let entrypoint: Vec<String> =
        serde_json::from_str(last("ENTRYPOINT")).expect("ENTRYPOINT in JSON (exec) form");
    assert!(entrypoint[0].ends_with("/amico"), "{entrypoint:?}");
    assert_eq!(
        entrypoint[1..],
        ["run", "--config", "/etc/amico/amico.toml"]
    );

    // Built with the workspace's Rust, run on Debian bookworm.
    let manifest: toml::Table = std::fs::read_to_string(repository().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let rust_version = manifest["workspace"]["package"]["rust-version"]
        .as_str()
        .unwrap();
    let stages = all("FROM");
    assert_eq!(stages.len(), 3, "{stages:?}");
    assert!(
        stages[0].contains(&format!("rust:{rust_version}")),
        "{stages:?}"
    );
    assert!(stages[1].contains("node:"), "{stages:?}");
    assert!(stages[2].contains("debian:bookworm-slim"), "{stages:?}");
    assert!(
        all("RUN")
            .iter()
            .any(|r| r.contains("scripts/desktop-bundle")),
        "the desktop's JsSIP is not built"
    );
    assert!(
        all("RUN")
            .iter()
            .any(|r| r.contains("cargo build --release --locked")),
        "no release build"
    );

    // Everything the build reads is copied into the build stage: each workspace member,
    // and the files compiled into the binary (src/ with demo.toml, migrations/, web/).
    let runtime_stage = instructions.iter().rposition(|(i, _)| i == "FROM").unwrap();
    let copied: BTreeSet<&str> = instructions[..runtime_stage]
        .iter()
        .filter(|(i, _)| i == "COPY")
        .flat_map(|(_, a)| {
            let words: Vec<&str> = a.split_whitespace().collect();
            words[..words.len() - 1].to_vec()
        })
        .collect();
    let mut needed = vec!["Cargo.toml", "Cargo.lock", "src", "migrations", "web"];
    let members = manifest["workspace"]["members"].as_array().unwrap();
    needed.extend(
        members
            .iter()
            .map(|m| m.as_str().unwrap())
            .filter(|m| *m != "."),
    );
    for path in needed {
        assert!(
            copied.contains(path),
            "the build stage does not copy {path} (it copies {copied:?})"
        );
    }

    // The prompts where the example configuration looks for them.
    let config = example();
    let prompts = text(&config, &["prompts", "dir"]);
    assert!(
        all("COPY").contains(&format!("prompts {prompts}").as_str()),
        "prompts are not copied to {prompts}"
    );

    // JsSIP where the example configuration's desktop looks for it.
    let bundle = text(&config, &["desktop", "bundle"]);
    assert!(
        instructions[runtime_stage..]
            .iter()
            .any(|(i, a)| i == "COPY" && a.starts_with("--from=desktop ") && a.ends_with(bundle)),
        "JsSIP is not copied to {bundle}"
    );

    // Not root; the data folder a volume.
    let user = last("USER");
    assert!(
        !["root", "0", "root:root", "0:0"].contains(&user),
        "USER {user}"
    );
    assert!(
        all("VOLUME").iter().any(|v| v.contains("/var/lib/amico")),
        "no volume for /var/lib/amico"
    );

    // The ports of the example configuration.
    let exposed: BTreeSet<&str> = all("EXPOSE")
        .iter()
        .flat_map(|e| e.split_whitespace())
        .collect();
    let sip: SocketAddr = text(&config, &["sip", "listen"]).parse().unwrap();
    let http: SocketAddr = text(&config, &["http", "listen"]).parse().unwrap();
    let rtp = format!(
        "{}-{}/udp",
        integer(&config, &["rtp", "port_min"]),
        integer(&config, &["rtp", "port_max"])
    );
    let webrtc = format!("{}/udp", integer(&config, &["rtp", "webrtc_port"]));
    for port in [
        format!("{}/udp", sip.port()),
        format!("{}/tcp", sip.port()),
        format!("{}/tcp", http.port()),
        rtp,
        webrtc,
    ] {
        assert!(exposed.contains(port.as_str()), "{port} not in {exposed:?}");
    }

    // The health check calls /health on the HTTP port, with a tool the image installs.
    let health = last("HEALTHCHECK");
    assert!(
        health.contains(&format!("127.0.0.1:{}/health", http.port())),
        "{health}"
    );
    let tool = ["curl", "wget"]
        .into_iter()
        .find(|t| health.contains(t))
        .expect("the health check uses curl or wget");
    assert!(
        instructions[runtime_stage..]
            .iter()
            .any(|(i, a)| i == "RUN" && a.contains("apt-get install") && a.contains(tool)),
        "the runtime image does not install {tool}"
    );
}

// ---------------------------------------------------------------------------------------
// Prometheus

#[test]
fn prometheus_scrapes_amico_and_loads_the_alerts() {
    let config = read("prometheus.yml");
    let lines: Vec<&str> = config
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    let has = |text: &str| lines.iter().any(|l| l.trim() == text);
    assert!(has("- job_name: amico"), "no job amico");
    assert!(has("metrics_path: /metrics"), "no metrics_path /metrics");
    assert!(has("scrape_interval: 15s"), "no 15 s scrape interval");

    // rule_files lists the alerts file, which exists beside it.
    let start = lines
        .iter()
        .position(|l| l.trim() == "rule_files:")
        .expect("rule_files");
    let rules: Vec<&str> = lines[start + 1..]
        .iter()
        .map(|l| l.trim())
        .take_while(|l| l.starts_with("- "))
        .map(|l| l.trim_start_matches("- ").trim_matches(['"', '\'']))
        .collect();
    assert_eq!(rules, ["amico-alerts.yml"]);
    assert!(deploy_path(rules[0]).is_file());

    // Each alert has an expression, a severity and a summary.
    let alerts = read("amico-alerts.yml");
    let blocks: Vec<&str> = alerts.split("- alert: ").skip(1).collect();
    assert!(blocks.len() >= 5, "{} alerts", blocks.len());
    for block in blocks {
        let name = block.lines().next().unwrap_or_default();
        for key in ["expr:", "severity:", "summary:"] {
            assert!(block.contains(key), "alert {name}: no {key}");
        }
    }
    let threshold = alerts
        .split("- alert: ")
        .find(|b| b.contains("amico_queue_abandoned_after_threshold_total"))
        .expect("an alert on abandons after the threshold");
    assert!(threshold.contains("> 0.03"), "the 3 % target: {threshold}");

    // promtool, where it is installed (Debian's prometheus package), checks the YAML
    // and PromQL too.
    match Command::new("promtool")
        .args(["check", "config"])
        .arg(deploy_path("prometheus.yml"))
        .output()
    {
        Ok(output) => assert!(
            output.status.success(),
            "promtool check config:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(_) => eprintln!("promtool is not installed: YAML and PromQL syntax not checked"),
    }
}

#[test]
fn metric_names_are_found_where_they_stand() {
    let mut names = BTreeSet::new();
    metric_names(
        "sum(rate(amico_queue_offered_total{queue=~\"$q\"}[5m])) / xamico_no amico_sip_malformed_total>0",
        &mut names,
    );
    let want: BTreeSet<String> = ["amico_queue_offered_total", "amico_sip_malformed_total"]
        .map(String::from)
        .into();
    assert_eq!(names, want);
    let exported = exported_names(
        "# TYPE amico_a counter\namico_a_total 1\n# TYPE amico_b gauge\n# TYPE amico_c histogram\n",
    );
    for name in [
        "amico_a_total",
        "amico_b",
        "amico_c_bucket",
        "amico_c_count",
    ] {
        assert!(exported.contains(name), "{name}: {exported:?}");
    }
    assert!(!exported.contains("amico_a"));
}

/// The fail2ban filter in deploy/fail2ban finds the address in Amico's own failure lines,
/// checked by fail2ban's `fail2ban-regex` against a real server's log.
#[test]
fn the_fail2ban_filter_matches_amicos_failure_lines() {
    let config =
        server::config(1, "").replace("sources = [\"127.0.0.1\"]", "sources = [\"10.0.0.0/8\"]");
    let server = Server::start(&config);
    let phone = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    phone
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let port = phone.local_addr().unwrap().port();
    // A REGISTER for a name that is not an agent, with credentials: a failure.
    let register = format!(
        "REGISTER sip:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-f2b;rport\r\nMax-Forwards: 70\r\nFrom: <sip:mallory@127.0.0.1>;tag=m\r\nTo: <sip:mallory@127.0.0.1>\r\nCall-ID: f2b\r\nCSeq: 1 REGISTER\r\nContact: <sip:mallory@127.0.0.1:{port}>\r\nAuthorization: Digest username=\"mallory\", realm=\"amico\", nonce=\"0.0.0\", uri=\"sip:{sip}\", response=\"00\"\r\nContent-Length: 0\r\n\r\n",
        sip = server.sip
    );
    // An invented nonce is not a guess: it is challenged, not counted. Answer the
    // challenge wrongly instead.
    phone.send_to(register.as_bytes(), server.sip).unwrap();
    let mut buf = [0u8; 4096];
    let (len, _) = phone.recv_from(&mut buf).expect("a challenge");
    let challenge = String::from_utf8_lossy(&buf[..len]).into_owned();
    let nonce = challenge
        .split("nonce=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a nonce");
    let guess = register
        .replace("nonce=\"0.0.0\"", &format!("nonce=\"{nonce}\""))
        .replace("z9hG4bK-f2b", "z9hG4bK-f2b2");
    phone.send_to(guess.as_bytes(), server.sip).unwrap();
    phone.recv_from(&mut buf).expect("a second challenge");
    server.wait_metric(
        "amico_sip_auth_failures_total",
        |v| v == 1.0,
        std::time::Duration::from_secs(5),
    );

    let output = Command::new("fail2ban-regex")
        .arg(&server.log)
        .arg(deploy_path("fail2ban/filter.d/amico.conf"))
        .output()
        .expect("fail2ban-regex runs (Debian fail2ban; scripts/test installs it)");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}");
    let lines = report
        .lines()
        .find(|l| l.starts_with("Lines: "))
        .unwrap_or_else(|| panic!("no summary in: {report}"));
    assert!(lines.contains(", 1 matched,"), "{lines}\n{report}");
}
