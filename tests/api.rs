//! The HTTP API's contract, endpoint by endpoint, bad input included: the real server, a
//! real HTTP client, and a PJSIP caller where a call is needed.

#[path = "support/peers.rs"]
mod peers;
#[path = "support/server.rs"]
mod server;

use std::time::Duration;

use peers::{Ua, event};
use serde_json::{Value, json};
use server::Server;

const STEP: Duration = Duration::from_secs(20);
const SUPERVISOR: &str = "supervisor-token-0123456789";
const AGENT1: &str = "agent1-token-0123456789";

fn ok<T>(result: Result<T, String>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

fn config() -> String {
    format!(
        "{}\n[[api.tokens]]\nname = \"boss\"\ntoken = \"{SUPERVISOR}\"\nscope = \"supervisor\"\n\n\
         [[api.tokens]]\nname = \"agent1-phone\"\ntoken = \"{AGENT1}\"\nscope = \"agent\"\nagent = \"agent1\"\n",
        server::config(2, "ring_timeout = 10")
    )
}

/// An error answer: its status, and a JSON body whose message contains `says`.
fn assert_error(answer: (u16, Value), status: u16, code: &str, says: &str) {
    let (got, body) = answer;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(says), "'{says}' in {body}");
}

#[test]
fn the_openapi_document_describes_every_route_and_the_bearer_scheme() {
    let server = Server::start(&config());
    let (status, document) = server.api("GET", "/api/openapi.json", None, None);
    assert_eq!(status, 200, "{document}");
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "{document}"
    );
    let paths = &document["paths"];
    for (path, methods) in [
        ("/api/agents", &["get"][..]),
        ("/api/agents/{name}", &["get"]),
        ("/api/agents/{name}/login", &["post"]),
        ("/api/agents/{name}/logout", &["post"]),
        ("/api/agents/{name}/ready", &["post"]),
        ("/api/agents/{name}/pause", &["post"]),
        ("/api/agents/{name}/wrap-up", &["post"]),
        ("/api/queues", &["get"]),
        ("/api/queues/{name}", &["get", "patch"]),
        ("/api/calls", &["get"]),
        ("/api/calls/{id}", &["get", "delete"]),
        ("/api/calls/{id}/move", &["post"]),
        ("/api/calls/{id}/priority", &["post"]),
        ("/api/config/reload", &["post"]),
        ("/api/stats", &["get"]),
        ("/api/events", &["get"]),
    ] {
        for method in methods {
            assert!(
                paths[path][method].is_object(),
                "{method} {path} is documented"
            );
            assert!(
                paths[path][method]["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty()),
                "{method} {path} has responses"
            );
        }
    }
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // And every documented route answers (here: without a token, 401, not 404).
    for path in paths.as_object().expect("paths").keys() {
        let concrete = path.replace("{name}", "agent1").replace("{id}", "1");
        let method = if paths[path]["get"].is_object() {
            "GET"
        } else {
            "POST"
        };
        let (status, body) = server.api(method, &concrete, None, None);
        assert_eq!(status, 401, "{method} {concrete}: {body}");
    }
}

#[test]
fn tokens_are_checked_and_errors_are_json_that_name_the_problem() {
    let server = Server::start(&config());
    assert_error(
        server.api("GET", "/api/agents", None, None),
        401,
        "unauthorized",
        "a token is needed",
    );
    assert_error(
        server.api("GET", "/api/agents", Some("not-a-known-token-at-all"), None),
        401,
        "unauthorized",
        "not known",
    );
    // A token in the query works (browsers' WebSockets cannot send headers).
    let (status, agents) = server.api(
        "GET",
        &format!("/api/agents?token={SUPERVISOR}"),
        None,
        None,
    );
    assert_eq!(status, 200, "{agents}");
    // An agent token is not a supervisor's.
    assert_error(
        server.api("GET", "/api/calls", Some(AGENT1), None),
        403,
        "forbidden",
        "agent token",
    );
    assert_error(
        server.api("POST", "/api/agents/agent2/login", Some(AGENT1), None),
        403,
        "forbidden",
        "acts for agent 'agent1' only, not for 'agent2'",
    );
    assert_error(
        server.api("GET", "/api/stats", Some(AGENT1), None),
        403,
        "forbidden",
        "supervisor token",
    );
    // Routes and methods that do not exist.
    assert_error(
        server.api("GET", "/api/nothing-here", Some(SUPERVISOR), None),
        404,
        "not_found",
        "no such API route",
    );
    assert_error(
        server.api("PUT", "/api/agents", Some(SUPERVISOR), None),
        405,
        "method_not_allowed",
        "does not take that method",
    );
}

#[test]
fn agents_log_in_pause_with_a_reason_come_back_and_log_out() {
    let server = Server::start(&config());
    let (status, agents) = server.api("GET", "/api/agents", Some(AGENT1), None);
    assert_eq!(status, 200);
    let names: Vec<&str> = agents
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, ["agent1", "agent2"]);
    assert_eq!(agents[0]["state"], "logged_out");

    let (status, agent) = server.api("POST", "/api/agents/agent1/login", Some(AGENT1), None);
    assert_eq!(
        (status, &agent["state"]),
        (200, &json!("available")),
        "{agent}"
    );
    assert!(
        agent["since"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{agent}"
    );

    assert_error(
        server.api(
            "POST",
            "/api/agents/agent1/pause",
            Some(AGENT1),
            Some(&json!({"reason": "  "})),
        ),
        400,
        "bad_request",
        "reason",
    );
    assert_error(
        server.raw_request(
            "POST",
            "/api/agents/agent1/pause",
            Some(AGENT1),
            Some("{\"reason\": "),
        ),
        400,
        "bad_request",
        "the body",
    );
    assert_error(
        server.api(
            "POST",
            "/api/agents/agent1/pause",
            Some(AGENT1),
            Some(&json!({"reason": "lunch", "minutes": 30})),
        ),
        400,
        "bad_request",
        "minutes",
    );
    let (status, agent) = server.api(
        "POST",
        "/api/agents/agent1/pause",
        Some(AGENT1),
        Some(&json!({"reason": "lunch"})),
    );
    assert_eq!(status, 200, "{agent}");
    assert_eq!(agent["state"], "paused");
    assert_eq!(agent["reason"], "lunch");
    let (_, agent) = server.api("GET", "/api/agents/agent1", Some(SUPERVISOR), None);
    assert_eq!(agent["state"], "paused", "a read after a change sees it");

    let (status, agent) = server.api("POST", "/api/agents/agent1/ready", Some(SUPERVISOR), None);
    assert_eq!(
        (status, &agent["state"]),
        (200, &json!("available")),
        "{agent}"
    );
    let (status, agent) = server.api("POST", "/api/agents/agent1/logout", Some(AGENT1), None);
    assert_eq!(
        (status, &agent["state"]),
        (200, &json!("logged_out")),
        "{agent}"
    );
    // What the ACD refuses comes back as a conflict with its reason.
    assert_error(
        server.api("POST", "/api/agents/agent1/ready", Some(AGENT1), None),
        409,
        "conflict",
        "not logged in",
    );
    assert_error(
        server.api("POST", "/api/agents/zoe/login", Some(SUPERVISOR), None),
        404,
        "not_found",
        "agent 'zoe' does not exist",
    );
    assert_error(
        server.api("GET", "/api/agents/zoe", Some(SUPERVISOR), None),
        404,
        "not_found",
        "agent 'zoe'",
    );
}

#[test]
fn a_waiting_caller_is_seen_in_its_queue_and_among_the_calls_and_a_supervisor_hangs_it_up() {
    let server = Server::start(&config());
    let (status, queues) = server.api("GET", "/api/queues", Some(AGENT1), None);
    assert_eq!(status, 200, "{queues}");
    assert_eq!(queues[0]["name"], "comune");
    assert_eq!(queues[0]["waiting"], 0);
    assert_error(
        server.api("GET", "/api/queues/nowhere", Some(SUPERVISOR), None),
        404,
        "not_found",
        "queue 'nowhere' does not exist",
    );

    // No agent is logged in: the caller waits.
    let to = format!("sip:100@{}", server.sip);
    let mut caller = ok(Ua::spawn(
        "api-caller",
        &[
            "--role",
            "caller",
            "--to",
            &to,
            "--from-user",
            "%2B39055123",
            "--from-display",
            "Rossi",
            "--timeout",
            "60",
        ],
    ));
    ok(caller.wait_for(event("confirmed"), STEP));
    let queue = wait_json(&server, "/api/queues/comune", |q| q["waiting"] == 1);
    let waiting = &queue["callers"][0];
    assert_eq!(waiting["position"], 1, "{queue}");
    assert!(
        waiting["caller"]
            .as_str()
            .is_some_and(|c| c.contains("+39055123") && !c.contains("tag=")),
        "{queue}"
    );
    assert_eq!(waiting["did"], "100");
    let id = waiting["call"].as_u64().expect("a call id");
    // An agent token sees the line, not who is in it.
    let (_, seen_by_agent) = server.api("GET", "/api/queues/comune", Some(AGENT1), None);
    assert_eq!(
        seen_by_agent["callers"][0]["caller"],
        Value::Null,
        "{seen_by_agent}"
    );

    let (status, calls) = server.api("GET", "/api/calls", Some(SUPERVISOR), None);
    assert_eq!(status, 200, "{calls}");
    assert_eq!(calls[0]["call"], id);
    assert_eq!(calls[0]["state"], "waiting");
    assert_eq!(calls[0]["queue"], "comune");
    let (status, call) = server.api("GET", &format!("/api/calls/{id}"), Some(SUPERVISOR), None);
    assert_eq!((status, &call["trunk"]), (200, &json!("pbx")), "{call}");

    assert_error(
        server.api("DELETE", "/api/calls/abc", Some(SUPERVISOR), None),
        400,
        "bad_request",
        "call id 'abc' is not a number",
    );
    assert_error(
        server.api("DELETE", &format!("/api/calls/{id}"), Some(AGENT1), None),
        403,
        "forbidden",
        "supervisor token",
    );
    let (status, _) = server.api(
        "DELETE",
        &format!("/api/calls/{id}"),
        Some(SUPERVISOR),
        None,
    );
    assert_eq!(status, 204);
    let ended = ok(caller.wait_for(event("disconnected"), STEP));
    assert_eq!(ended["by"], "remote", "Amico hung up: {ended}");
    wait_json(&server, "/api/calls", |calls| {
        calls.as_array().is_some_and(Vec::is_empty)
    });
    assert_error(
        server.api(
            "DELETE",
            &format!("/api/calls/{id}"),
            Some(SUPERVISOR),
            None,
        ),
        404,
        "not_found",
        "is not in progress",
    );
    // Removed, not abandoned: the caller did not choose to leave.
    let queue = wait_json(&server, "/api/queues/comune", |q| {
        q["today"]["removed"] == 1 && q["waiting"] == 0
    });
    assert_eq!(queue["today"]["abandoned"], 0, "{queue}");
    assert_eq!(queue["today"]["abandon_rate"], Value::Null, "{queue}");
    assert_eq!(
        server.metric("amico_queue_removed_total{queue=\"comune\"}"),
        1.0
    );
    // The report from the store agrees.
    wait_json(&server, "/api/stats?interval=none", |stats| {
        stats["queues"].as_array().is_some_and(|rows| {
            rows.iter()
                .any(|row| row["queue"] == "comune" && row["removed"] == 1 && row["abandoned"] == 0)
        })
    });
}

#[test]
fn statistics_come_from_the_store_with_their_formulas_and_bad_parameters_are_named() {
    let server = Server::start(&format!(
        "{}\n[reports]\ntime_zone = \"Europe/Rome\"\n",
        config()
    ));
    // The centre's zone unless asked for another.
    let (status, stats) = server.api("GET", "/api/stats?interval=none", Some(SUPERVISOR), None);
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["time_zone"], "Europe/Rome");
    let (_, stats) = server.api(
        "GET",
        "/api/stats?interval=none&tz=UTC",
        Some(SUPERVISOR),
        None,
    );
    assert_eq!(stats["time_zone"], "UTC");
    let formulas = stats["formulas"].as_array().expect("formulas");
    assert!(
        formulas.iter().any(|f| f[0] == "service_level"
            && f[1]
                .as_str()
                .is_some_and(|t| t.contains("answered within T"))),
        "{stats}"
    );
    for (query, says) in [
        ("interval=7m", "interval: '7m'"),
        ("tz=Mars/Olympus", "tz: 'Mars/Olympus'"),
        ("from=yesterday", "from: 'yesterday' is not a date"),
        ("from=2026-11-27&to=2026-11-26", "must be before"),
        ("by=team", "by: 'team' is not queue, agent or both"),
        ("from=2000-01-01&to=2026-01-01", "at most 100000"),
    ] {
        assert_error(
            server.api(
                "GET",
                &format!("/api/stats?{query}"),
                Some(SUPERVISOR),
                None,
            ),
            400,
            "bad_request",
            says,
        );
    }
}

/// GETs `path` as the supervisor until `check` holds, failing after a deadline.
fn wait_json(server: &Server, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    server.wait_api(path, SUPERVISOR, check, STEP)
}

/// Two queues (`comune` from DID 100, `tributi` from DID 101), two agents, the tokens.
fn two_queues() -> String {
    config()
        .replace(
            "dids = { \"100\" = \"comune\"",
            "dids = { \"101\" = \"tributi\", \"100\" = \"comune\"",
        )
        .replacen(
            "[[agents]]",
            "[[queues]]\nname = \"tributi\"\nskills = [{ skill = \"general\", min_level = 1 }]\n\n[[agents]]",
            1,
        )
}

/// `calls` callers to DID 100 that stay on the line.
fn waiting_callers(server: &Server, label: &str, calls: u32) -> Ua {
    let to = format!("sip:100@{}", server.sip);
    let calls = calls.to_string();
    let mut ua = ok(Ua::spawn(
        label,
        &[
            "--role",
            "caller",
            "--to",
            &to,
            "--calls",
            &calls,
            "--timeout",
            "60",
        ],
    ));
    ok(ua.wait_for(event("confirmed"), STEP));
    ua
}

#[test]
fn a_supervisor_reorders_moves_callers_and_changes_a_queue_while_it_runs() {
    let server = Server::start(&two_queues());
    let mut callers = waiting_callers(&server, "api-movers", 2);
    let queue = wait_json(&server, "/api/queues/comune", |q| q["waiting"] == 2);
    let (first, second) = (
        queue["callers"][0]["call"].as_u64().expect("a call"),
        queue["callers"][1]["call"].as_u64().expect("a call"),
    );

    // The second caller jumps the line.
    let (status, call) = server.api(
        "POST",
        &format!("/api/calls/{second}/priority"),
        Some(SUPERVISOR),
        Some(&json!({"priority": 5})),
    );
    assert_eq!(status, 200, "{call}");
    assert_eq!(call["position"], 1, "{call}");
    assert_error(
        server.api(
            "POST",
            &format!("/api/calls/{second}/priority"),
            Some(SUPERVISOR),
            Some(&json!({"priority": 300})),
        ),
        400,
        "bad_request",
        "priority",
    );

    // The first moves to tributi: counted as transferred out of comune.
    let (status, call) = server.api(
        "POST",
        &format!("/api/calls/{first}/move"),
        Some(SUPERVISOR),
        Some(&json!({"queue": "tributi"})),
    );
    assert_eq!(status, 200, "{call}");
    assert_eq!(call["queue"], "tributi", "{call}");
    assert_eq!(call["state"], "waiting", "{call}");
    wait_json(&server, "/api/queues/comune", |q| {
        q["waiting"] == 1 && q["today"]["transferred"] == 1
    });
    assert_error(
        server.api(
            "POST",
            &format!("/api/calls/{first}/move"),
            Some(SUPERVISOR),
            Some(&json!({"queue": "tributi"})),
        ),
        409,
        "conflict",
        "already in queue 'tributi'",
    );
    assert_error(
        server.api(
            "POST",
            &format!("/api/calls/{first}/move"),
            Some(SUPERVISOR),
            Some(&json!({"queue": "nowhere"})),
        ),
        400,
        "bad_request",
        "queue: 'nowhere' does not exist",
    );
    assert_error(
        server.api(
            "POST",
            "/api/calls/999999/move",
            Some(SUPERVISOR),
            Some(&json!({"queue": "comune"})),
        ),
        404,
        "not_found",
        "call 999999",
    );

    // The queue changes while it runs; bad changes name their field.
    let (status, queue) = server.api(
        "PATCH",
        "/api/queues/comune",
        Some(SUPERVISOR),
        Some(&json!({"ring_timeout": 15, "max_callers": 50, "strategy": "fewest-calls"})),
    );
    assert_eq!(status, 200, "{queue}");
    assert_eq!(queue["waiting"], 1, "the caller is still there: {queue}");
    assert_error(
        server.api(
            "PATCH",
            "/api/queues/comune",
            Some(SUPERVISOR),
            Some(&json!({"ring_timeout": 0})),
        ),
        400,
        "bad_request",
        "ring_timeout",
    );
    assert_error(
        server.api(
            "PATCH",
            "/api/queues/comune",
            Some(SUPERVISOR),
            Some(&json!({"strategy": "bogus"})),
        ),
        400,
        "bad_request",
        "strategy",
    );
    assert_error(
        server.api(
            "PATCH",
            "/api/queues/comune",
            Some(SUPERVISOR),
            Some(&json!({"colour": "red"})),
        ),
        400,
        "bad_request",
        "colour",
    );
    assert_error(
        server.api(
            "PATCH",
            "/api/queues/comune",
            Some(AGENT1),
            Some(&json!({"ring_timeout": 15})),
        ),
        403,
        "forbidden",
        "supervisor token",
    );

    // Wrap-up: only an agent in wrap-up gets more.
    server.api("POST", "/api/agents/agent2/login", Some(SUPERVISOR), None);
    let (status, _) = server.api(
        "POST",
        "/api/agents/agent2/pause",
        Some(SUPERVISOR),
        Some(&json!({"reason": "meeting"})),
    );
    assert_eq!(status, 200);
    assert_error(
        server.api(
            "POST",
            "/api/agents/agent2/wrap-up",
            Some(SUPERVISOR),
            Some(&json!({"extend": 30})),
        ),
        409,
        "conflict",
        "agent 'agent2' is not in wrap-up",
    );
    assert_error(
        server.api(
            "POST",
            "/api/agents/agent2/wrap-up",
            Some(SUPERVISOR),
            Some(&json!({"extend": -1})),
        ),
        400,
        "bad_request",
        "extend",
    );
    drop(callers.shutdown(STEP));
}

#[test]
fn a_reload_applies_the_new_file_without_dropping_calls_and_a_bad_file_changes_nothing() {
    let server = Server::start(&config());
    let mut caller = waiting_callers(&server, "api-reload", 1);
    wait_json(&server, "/api/queues/comune", |q| q["waiting"] == 1);

    // A new queue, a new agent and a new token.
    let grown = two_queues()
        + "\n[[agents]]\nname = \"agent3\"\nsip_password = \"secret-3\"\nskills = [{ skill = \"general\", level = 5 }]\n\
           \n[[api.tokens]]\nname = \"night\"\ntoken = \"night-shift-token-0123\"\nscope = \"supervisor\"\n";
    // The RTP range must stay: it is fixed while the server runs.
    let grown = keep_rtp(&server, &grown);
    std::fs::write(&server.config, &grown).expect("write");
    let (status, reloaded) = server.api("POST", "/api/config/reload", Some(SUPERVISOR), None);
    assert_eq!(status, 200, "{reloaded}");
    assert_eq!(reloaded["queues"], json!(["comune", "tributi"]));
    assert_eq!(reloaded["agents"], json!(["agent1", "agent2", "agent3"]));
    let (status, _) = server.api(
        "GET",
        "/api/queues/tributi",
        Some("night-shift-token-0123"),
        None,
    );
    assert_eq!(status, 200, "the new token works");
    let (status, agent) = server.api("POST", "/api/agents/agent3/login", Some(SUPERVISOR), None);
    // Logged in; the waiting call may be offered to it at once and fail (its phone is not
    // registered), so its state a moment later is not asserted.
    assert_eq!(status, 200, "{agent}");
    assert_eq!(agent["name"], "agent3", "{agent}");
    // The caller waited through it: still in line, and now answered by nobody (agent3
    // has no phone) — it is still the same call.
    let (_, calls) = server.api("GET", "/api/calls", Some(SUPERVISOR), None);
    assert_eq!(calls.as_array().map(Vec::len), Some(1), "{calls}");
    server.api("POST", "/api/agents/agent3/logout", Some(SUPERVISOR), None);

    // A broken file, and a file that changes what cannot change: refused, nothing changes.
    std::fs::write(&server.config, "queues = 5\n").expect("write");
    assert_error(
        server.api("POST", "/api/config/reload", Some(SUPERVISOR), None),
        400,
        "bad_request",
        "queues",
    );
    std::fs::write(
        &server.config,
        grown.replace(
            "[http]\nlisten = \"127.0.0.1:0\"",
            "[http]\nlisten = \"127.0.0.1:1\"",
        ),
    )
    .expect("write");
    assert_error(
        server.api("POST", "/api/config/reload", Some(SUPERVISOR), None),
        400,
        "bad_request",
        "http cannot change while the server runs",
    );
    let (_, queues) = server.api("GET", "/api/queues", Some(SUPERVISOR), None);
    assert_eq!(queues.as_array().map(Vec::len), Some(2), "{queues}");

    // Removing a queue that has callers is refused; removing an empty one works, by SIGHUP.
    let shrunk = keep_rtp(&server, &config());
    let mut moved = server.api("GET", "/api/calls", Some(SUPERVISOR), None).1;
    let id = moved[0]["call"].take();
    let (status, _) = server.api(
        "POST",
        &format!("/api/calls/{id}/move"),
        Some(SUPERVISOR),
        Some(&json!({"queue": "tributi"})),
    );
    assert_eq!(status, 200);
    std::fs::write(&server.config, &shrunk).expect("write");
    assert_error(
        server.api("POST", "/api/config/reload", Some(SUPERVISOR), None),
        409,
        "conflict",
        "'tributi'",
    );
    let (status, _) = server.api(
        "DELETE",
        &format!("/api/calls/{id}"),
        Some(SUPERVISOR),
        None,
    );
    assert_eq!(status, 204);
    ok(caller.wait_for(event("disconnected"), STEP));
    wait_json(&server, "/api/queues/tributi", |q| q["waiting"] == 0);
    server.signal("HUP");
    wait_json(&server, "/api/queues", |queues| {
        queues
            .as_array()
            .is_some_and(|q| q.len() == 1 && q[0]["name"] == "comune")
    });
    assert_error(
        server.api("GET", "/api/agents/agent3", Some(SUPERVISOR), None),
        404,
        "not_found",
        "agent 'agent3'",
    );
}

/// `config` with the RTP range the running server was started with.
fn keep_rtp(server: &Server, config: &str) -> String {
    let running = std::fs::read_to_string(&server.config).expect("the running file");
    let section = |text: &str| -> String {
        let start = text.find("[rtp]").expect("an [rtp] section");
        let end = text[start..].find("\n\n").map_or(text.len(), |e| start + e);
        text[start..end].to_owned()
    };
    config.replace(&section(config), &section(&running))
}
