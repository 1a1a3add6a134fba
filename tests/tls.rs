//! SIP over TLS (RFC 3261 §26, issue 9) end to end: the real server with `[sip.tls]`,
//! PJSIP phones (`tests/peers/ua.py --transport tls`) as agents and as the trunk, and a
//! plain TLS client (`tests/peers/tls_probe.py`) for the certificate the server presents.
//!
//! Certificates are made at run time with the `openssl` command line: a test CA and
//! leaves it signs for 127.0.0.1 (ECDSA P-256 with PKCS#8 keys; one RSA leaf with a
//! PKCS#1 key). No key is committed. PJSIP verifies the chain against the test CA and
//! the name against the leaf's subjectAltName. The wheel's PJSIP links OpenSSL 1.0.2k:
//! the server must offer TLS 1.2 (ECDHE with AES-GCM) besides 1.3.

#[path = "support/peers.rs"]
mod peers;
#[path = "support/server.rs"]
mod server;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use peers::{Ua, event};
use serde_json::Value;
use server::Server;

const CALLER_HZ: f64 = 1000.0;
const AGENT_HZ: f64 = 440.0;
const STEP: Duration = Duration::from_secs(15);
const SUPERVISOR: &str = "supervisor-token-0123456789";

fn ok<T>(result: Result<T, String>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

// ---------------------------------------------------------------------------------------
// Certificates

/// Runs `openssl ARGS` in `dir`, failing the test with its output.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("the openssl command line makes the test certificates: {e} (apt-get install openssl)")
        });
    assert!(
        output.status.success(),
        "openssl {}: {}\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The kind of key a leaf certificate has.
#[derive(Clone, Copy)]
enum KeyKind {
    /// ECDSA P-256, the key in PKCS#8 (`BEGIN PRIVATE KEY`).
    EcdsaPkcs8,
    /// RSA 2048, the key in PKCS#1 (`BEGIN RSA PRIVATE KEY`).
    RsaPkcs1,
}

/// A server certificate: the chain (leaf first, then the CA) and its key.
struct Leaf {
    chain: PathBuf,
    key: PathBuf,
}

/// A test certificate authority in a scratch folder, and the files the server reads.
struct Pki {
    dir: PathBuf,
    /// The CA's certificate: what clients trust.
    ca: PathBuf,
    /// The certificate file named in `[sip.tls]`.
    certificate: PathBuf,
    /// The key file named in `[sip.tls]`.
    private_key: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = peers::scratch_dir(name);
        openssl(
            &dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                "ca.key",
            ],
        );
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                "ca.key",
                "-subj",
                "/CN=Amico test CA",
                "-days",
                "2",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-out",
                "ca.pem",
            ],
        );
        Pki {
            ca: dir.join("ca.pem"),
            certificate: dir.join("server-cert.pem"),
            private_key: dir.join("server-key.pem"),
            dir,
        }
    }

    /// A new leaf for 127.0.0.1 and localhost, signed by the CA, named `CN=name`.
    fn leaf(&self, name: &str, kind: KeyKind) -> Leaf {
        let key = format!("{name}.key");
        let (usage, marker) = match kind {
            KeyKind::EcdsaPkcs8 => {
                openssl(
                    &self.dir,
                    &[
                        "genpkey",
                        "-algorithm",
                        "EC",
                        "-pkeyopt",
                        "ec_paramgen_curve:P-256",
                        "-out",
                        &key,
                    ],
                );
                ("digitalSignature", "-----BEGIN PRIVATE KEY-----")
            }
            KeyKind::RsaPkcs1 => {
                openssl(&self.dir, &["genrsa", "-traditional", "-out", &key, "2048"]);
                (
                    "digitalSignature,keyEncipherment",
                    "-----BEGIN RSA PRIVATE KEY-----",
                )
            }
        };
        let key = self.dir.join(key);
        let pem = std::fs::read_to_string(&key).expect("read the new key");
        assert!(pem.starts_with(marker), "{}: not {marker}", key.display());
        let extensions = format!("{name}.ext");
        std::fs::write(
            self.dir.join(&extensions),
            format!(
                "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
                 keyUsage=critical,{usage}\nextendedKeyUsage=serverAuth,clientAuth\n"
            ),
        )
        .expect("write the extensions");
        let csr = format!("{name}.csr");
        let cert = format!("{name}.pem");
        let subject = format!("/CN={name}");
        let key_arg = key.to_string_lossy();
        openssl(
            &self.dir,
            &[
                "req", "-new", "-key", &key_arg, "-subj", &subject, "-out", &csr,
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAserial",
                "ca.srl",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &extensions,
                "-out",
                &cert,
            ],
        );
        let chain = self.dir.join(format!("{name}-chain.pem"));
        let text = std::fs::read_to_string(self.dir.join(&cert)).expect("read leaf")
            + &std::fs::read_to_string(&self.ca).expect("read CA");
        std::fs::write(&chain, text).expect("write chain");
        Leaf { chain, key }
    }

    /// Puts `leaf` in the files `[sip.tls]` names, each replaced whole (a rename), so
    /// that the server never reads half a file.
    fn install(&self, leaf: &Leaf) {
        replace_file(
            &self.certificate,
            &std::fs::read(&leaf.chain).expect("chain"),
        );
        replace_file(&self.private_key, &std::fs::read(&leaf.key).expect("key"));
    }

    /// The `[sip.tls]` table naming the installed files.
    fn section(&self) -> String {
        format!(
            "\n[sip.tls]\nlisten = \"127.0.0.1:0\"\ncertificate = {}\nprivate_key = {}\n",
            toml_path(&self.certificate),
            toml_path(&self.private_key)
        )
    }
}

fn replace_file(path: &Path, bytes: &[u8]) {
    let next = path.with_extension("new");
    std::fs::write(&next, bytes).unwrap_or_else(|e| panic!("write {}: {e}", next.display()));
    std::fs::rename(&next, path).unwrap_or_else(|e| panic!("rename to {}: {e}", path.display()));
}

/// A path as a TOML basic string (scratch paths hold no quote or backslash).
fn toml_path(path: &Path) -> String {
    let text = path.to_string_lossy();
    assert!(!text.contains(['"', '\\']), "{text}");
    format!("\"{text}\"")
}

/// Runs `tests/peers/tls_probe.py ARGS`; its JSON line.
fn tls_probe(args: &[&str]) -> Value {
    let python = ok(peers::python());
    let output = Command::new(python)
        .arg(peers::peers_dir().join("tls_probe.py"))
        .args(args)
        .output()
        .expect("tls_probe.py runs");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "tls_probe.py {}: not JSON ({e}): {}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The SHA-256 fingerprint of the first certificate in `file`.
fn fingerprint(file: &Path) -> String {
    let value = tls_probe(&["fingerprint", &file.to_string_lossy()]);
    value["sha256"].as_str().expect("sha256").to_owned()
}

/// One new TLS connection to `address`, verified against `ca` when given.
fn handshake(address: SocketAddr, ca: Option<&Path>) -> Value {
    let address = address.to_string();
    let ca = ca.map(|ca| ca.to_string_lossy().into_owned());
    let mut args = vec!["connect", &address, "--timeout", "5"];
    if let Some(ca) = &ca {
        args.extend(["--ca-file", ca]);
    }
    tls_probe(&args)
}

/// Makes new TLS connections until one presents the certificate `want` (a
/// fingerprint), failing after `within` with the last answer and the server's log.
fn wait_presented(server: &Server, tls: SocketAddr, ca: &Path, want: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let answer = handshake(tls, Some(ca));
        if answer["ok"] == true && answer["sha256"] == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "new TLS connections to {tls} should get the certificate {want}, got {answer}\n\
             log tail:\n{}",
            server.log_tail(40)
        );
        // Polling with a deadline: a reload by SIGHUP has no completion to wait on;
        // each try is a new connection, which is what must see the new certificate.
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------
// The server and the phones

/// Starts the server on `config` (which has a `[sip.tls]` table); it and its TLS address.
fn start_tls(config: &str) -> (Server, SocketAddr) {
    let server = Server::try_start(config).unwrap_or_else(|e| {
        panic!(
            "the server did not start with [sip.tls] (issue 9, SIP over TLS: until it lands \
             the configuration refuses the unknown `tls` table):\n{e}"
        )
    });
    let tls = server.sip_tls.unwrap_or_else(|| {
        panic!(
            "the server started with [sip.tls] but its listening line has no \"sip_tls\" \
             address (issue 9)\nlog tail:\n{}",
            server.log_tail(20)
        )
    });
    (server, tls)
}

/// The test configuration (`agents` agents, a supervisor token) with `tls` appended.
fn config(agents: usize, tls: &str) -> String {
    format!(
        "{}\n[[api.tokens]]\nname = \"boss\"\ntoken = \"{SUPERVISOR}\"\nscope = \"supervisor\"\n{tls}",
        server::without_welcome(&server::config(agents, "ring_timeout = 15"))
    )
}

/// Starts `ua.py` as `agent{user}` (password `secret-{user}`) registering with
/// `registrar`, and waits for the answer: failing with its events unless registered.
fn agent(label: &str, registrar: &str, user: usize, extra: &[&str]) -> (Ua, Value) {
    let name = format!("agent{user}");
    let password = format!("secret-{user}");
    let mut args = vec![
        "--role",
        "agent",
        "--registrar",
        registrar,
        "--user",
        &name,
        "--password",
        &password,
        "--timeout",
        "90",
    ];
    args.extend_from_slice(extra);
    let mut ua = ok(Ua::spawn(label, &args));
    let answer = ok(ua.wait_for(
        |e| e["event"] == "registered" || e["event"] == "registration_failed",
        STEP,
    ));
    if answer["event"] != "registered" {
        panic!(
            "{}",
            ua.failure(&format!("{name} could not register with {registrar}"))
        );
    }
    (ua, answer)
}

/// Starts `ua.py` as the trunk calling `to` (DID 100) from `+39055123`.
fn caller(label: &str, to: &str, extra: &[&str]) -> Ua {
    let mut args = vec![
        "--role",
        "caller",
        "--to",
        to,
        "--from-user",
        "%2B39055123",
        "--from-display",
        "Rossi",
        "--timeout",
        "90",
    ];
    args.extend_from_slice(extra);
    ok(Ua::spawn(label, &args))
}

/// Tone files and a recording folder for one two-way call.
struct Tones {
    caller: String,
    agent: String,
    record: String,
}

impl Tones {
    fn new(name: &str) -> Tones {
        let dir = peers::scratch_dir(name);
        let tone = |hz: f64| {
            ok(peers::tone_wav(
                &dir.join(format!("tone-{hz}.wav")),
                hz,
                30.0,
            ))
            .to_string_lossy()
            .into_owned()
        };
        Tones {
            caller: tone(CALLER_HZ),
            agent: tone(AGENT_HZ),
            record: dir.to_string_lossy().into_owned(),
        }
    }

    /// The agent's flags: answer one call, play 440 Hz, listen for 1 kHz.
    fn agent(&self) -> [&str; 10] {
        [
            "--answer",
            "auto",
            "--calls",
            "1",
            "--play",
            &self.agent,
            "--tone-hz",
            "1000",
            "--record-dir",
            &self.record,
        ]
    }

    /// The caller's flags: one call hung up after 5 s, play 1 kHz, listen for 440 Hz.
    fn caller(&self) -> [&str; 10] {
        [
            "--hangup-after",
            "5",
            "--calls",
            "1",
            "--play",
            &self.caller,
            "--tone-hz",
            "440",
            "--record-dir",
            &self.record,
        ]
    }
}

/// What the phones saw of one call.
struct Call {
    /// The agent's `incoming` event.
    incoming: Value,
    /// The agent's `confirmed` event.
    agent_confirmed: Value,
    /// The caller's `confirmed` event.
    caller_confirmed: Value,
}

/// Follows the call from `caller` (with [`Tones::caller`]) to `agent` (with
/// [`Tones::agent`]) to its end: each side hears the other's tone, the caller hangs up
/// with a BYE that is answered, both phones end cleanly, and the server counts one
/// answered call and none left.
fn two_way_call(server: &Server, caller: &mut Ua, agent: &mut Ua) -> Call {
    let incoming = ok(agent.wait_for(event("incoming"), STEP));
    assert_eq!(incoming["from_user"], "+39055123", "{incoming}");
    let agent_confirmed = ok(agent.wait_for(event("confirmed"), STEP));
    let caller_confirmed = ok(caller.wait_for(event("confirmed"), STEP));

    let caller_audio = ok(caller.wait_for(event("audio"), STEP));
    let agent_audio = ok(agent.wait_for(event("audio"), STEP));
    assert_eq!(
        caller_audio["verdict"], "present",
        "the caller hears the agent's 440 Hz: {caller_audio}"
    );
    assert_eq!(
        agent_audio["verdict"], "present",
        "the agent hears the caller's 1 kHz: {agent_audio}"
    );

    let hung_up = ok(caller.wait_for(event("disconnected"), STEP));
    assert_eq!(
        (&hung_up["by"], &hung_up["code"], &hung_up["confirmed"]),
        (&Value::from("local"), &Value::from(200), &Value::from(true)),
        "the caller's BYE is answered 200: {hung_up}"
    );
    let ended = ok(agent.wait_for(event("disconnected"), STEP));
    assert_eq!(
        (&ended["by"], &ended["confirmed"]),
        (&Value::from("remote"), &Value::from(true)),
        "the agent's call ends by the caller's BYE: {ended}"
    );
    for ua in [caller, agent] {
        let done = ok(ua.wait_for(event("done"), STEP));
        assert_eq!(done["code"], 0, "{} ends cleanly: {done}", ua.label());
    }

    server.wait_metric(
        "amico_queue_answered_total{queue=\"comune\"}",
        |v| v == 1.0,
        STEP,
    );
    server.wait_metric("amico_calls_active", |v| v == 0.0, STEP);
    Call {
        incoming,
        agent_confirmed,
        caller_confirmed,
    }
}

/// Whether a Contact (as PJSIP reports it) routes requests over TLS: a sips: URI or
/// `;transport=tls`.
fn contact_is_tls(contact: &Value) -> bool {
    let contact = contact.as_str().unwrap_or_default().to_ascii_lowercase();
    let uri = contact
        .split_once('<')
        .map_or(contact.as_str(), |(_, uri)| uri);
    uri.starts_with("sips:") || contact.contains(";transport=tls")
}

/// Whether a Contact (as PJSIP reports it) is a sips: URI.
fn contact_is_sips(contact: &Value) -> bool {
    let contact = contact.as_str().unwrap_or_default().to_ascii_lowercase();
    let uri = contact
        .split_once('<')
        .map_or(contact.as_str(), |(_, uri)| uri);
    uri.starts_with("sips:")
}

// ---------------------------------------------------------------------------------------
// The tests

/// The harness alone, without a server: PJSIP calls PJSIP over TLS (the agent's own
/// listener has the test certificate), verifying it, with audio both ways; and a caller
/// trusting another CA is refused. When the tests below fail, this one says whether
/// the client side works.
#[test]
fn the_harness_calls_over_tls_and_verifies_the_certificate_without_a_server() {
    let pki = Pki::new("tls-harness");
    let leaf = pki.leaf("amico-test-1", KeyKind::EcdsaPkcs8);
    let stranger = Pki::new("tls-harness-stranger");
    let tones = Tones::new("tls-harness-audio");
    let (ca, chain, key) = (
        pki.ca.to_string_lossy().into_owned(),
        leaf.chain.to_string_lossy().into_owned(),
        leaf.key.to_string_lossy().into_owned(),
    );
    let mut args = vec![
        "--role",
        "agent",
        "--user",
        "agent1",
        "--transport",
        "tls",
        "--ca-file",
        &ca,
        "--tls-cert",
        &chain,
        "--tls-key",
        &key,
        "--timeout",
        "60",
    ];
    args.extend(tones.agent());
    let mut agent = ok(Ua::spawn("harness-agent", &args));
    let port = ok(agent.ready_port(STEP));
    let to = format!("sip:100@127.0.0.1:{port}");

    let other_ca = stranger.ca.to_string_lossy().into_owned();
    let mut refused = caller(
        "harness-stranger",
        &to,
        &["--transport", "tls", "--ca-file", &other_ca],
    );
    let ended = ok(refused.wait_for(event("disconnected"), STEP));
    assert_eq!(
        (&ended["code"], &ended["confirmed"]),
        (&Value::from(503), &Value::from(false)),
        "a caller that trusts another CA refuses the certificate: {ended}"
    );
    assert!(
        ended["reason"]
            .as_str()
            .is_some_and(|r| r.contains("PJSIP_TLS_ECERTVERIF")),
        "{ended}"
    );

    let mut extra = vec!["--transport", "tls", "--ca-file", &ca];
    extra.extend(tones.caller());
    let mut trusting = caller("harness-caller", &to, &extra);
    let incoming = ok(agent.wait_for(event("incoming"), STEP));
    assert_eq!(incoming["via_transport"], "TLS", "{incoming}");
    for ua in [&mut trusting, &mut agent] {
        let audio = ok(ua.wait_for(event("audio"), STEP));
        assert_eq!(audio["verdict"], "present", "{}: {audio}", ua.label());
        let done = ok(ua.wait_for(event("done"), STEP));
        assert_eq!(done["code"], 0, "{}: {done}", ua.label());
    }
}

#[test]
fn an_agent_registered_over_tls_is_called_back_on_its_connection_with_two_way_audio() {
    let pki = Pki::new("tls-agent");
    pki.install(&pki.leaf("amico-test-1", KeyKind::EcdsaPkcs8));
    let (server, tls) = start_tls(&config(1, &pki.section()));
    let tones = Tones::new("tls-agent-audio");
    let ca = pki.ca.to_string_lossy().into_owned();
    let registrar = tls.to_string();
    let mut extra = vec!["--transport", "tls", "--ca-file", &ca];
    extra.extend(tones.agent());
    let (mut agent, registered) = agent("agent-tls", &registrar, 1, &extra);
    assert_eq!(
        registered["via_transport"], "TLS",
        "the REGISTER went over TLS: {registered}"
    );
    server.wait_logged_in(1);

    let to = format!("sip:100@{}", server.sip);
    let mut caller = caller("caller-udp", &to, &tones.caller());
    let call = two_way_call(&server, &mut caller, &mut agent);

    // Called back over the connection the agent opened (RFC 3261 §18.2.1 with
    // RFC 5923's alias, RFC 5626's spirit): the INVITE comes from the server's TLS
    // listener, not from a connection of its own to the agent's (certificate-less)
    // listener.
    assert_eq!(
        call.incoming["source"],
        tls.to_string(),
        "the INVITE to the agent comes over the agent's own TLS connection: {}",
        call.incoming
    );
    assert_eq!(
        call.incoming["via_transport"], "TLS",
        "the server's Via says TLS: {}",
        call.incoming
    );
    assert!(
        contact_is_tls(&call.agent_confirmed["remote_contact"]),
        "the server's Contact towards a TLS agent keeps in-dialog requests on TLS \
         (sips: or ;transport=tls): {}",
        call.agent_confirmed
    );
    assert!(
        !contact_is_tls(&call.caller_confirmed["remote_contact"]),
        "the UDP trunk leg stays plain: {}",
        call.caller_confirmed
    );
}

#[test]
fn a_trunk_over_tls_reaches_an_agent_on_udp_with_two_way_audio() {
    let pki = Pki::new("tls-trunk");
    pki.install(&pki.leaf("amico-test-1", KeyKind::EcdsaPkcs8));
    let (server, tls) = start_tls(&config(1, &pki.section()));
    let tones = Tones::new("tls-trunk-audio");
    let registrar = server.sip.to_string();
    let (mut agent, _) = agent("agent-udp", &registrar, 1, &tones.agent());
    server.wait_logged_in(1);

    // The trunk is trusted by its source address (127.0.0.1), over TLS as over UDP.
    let ca = pki.ca.to_string_lossy().into_owned();
    let to = format!("sip:100@{tls}");
    let mut extra = vec!["--transport", "tls", "--ca-file", &ca];
    extra.extend(tones.caller());
    let mut caller = caller("trunk-tls", &to, &extra);
    let call = two_way_call(&server, &mut caller, &mut agent);

    assert_eq!(call.incoming["via_transport"], "UDP", "{}", call.incoming);
    assert!(
        contact_is_tls(&call.caller_confirmed["remote_contact"]),
        "the server's Contact in its 200 to a TLS INVITE keeps the caller's BYE on TLS \
         (sips: or ;transport=tls): {}",
        call.caller_confirmed
    );
}

#[test]
fn an_agent_registered_with_a_sips_uri_is_called_at_it() {
    let pki = Pki::new("tls-sips-agent");
    pki.install(&pki.leaf("amico-test-1", KeyKind::EcdsaPkcs8));
    let (server, tls) = start_tls(&config(1, &pki.section()));
    let tones = Tones::new("tls-sips-agent-audio");
    let ca = pki.ca.to_string_lossy().into_owned();
    // REGISTER sips:127.0.0.1:PORT with a sips: AOR and a sips: Contact.
    let registrar = format!("sips:{tls}");
    let mut extra = vec!["--transport", "tls", "--sips", "--ca-file", &ca];
    extra.extend(tones.agent());
    let (mut agent, registered) = agent("agent-sips", &registrar, 1, &extra);
    assert_eq!(registered["via_transport"], "TLS", "{registered}");
    server.wait_logged_in(1);

    let to = format!("sip:100@{}", server.sip);
    let mut caller = caller("caller-to-sips", &to, &tones.caller());
    if let Err(e) = agent.wait_for(event("incoming"), STEP) {
        panic!(
            "agent1, registered with a sips: Contact, was never offered the call. PJSIP \
             answers a sips: INVITE whose Contact (or Record-Route) is not sips: with 480 \
             and Warning 381 \"SIPS Required\" before the application sees it: the \
             server's Contact on a sips: dialog must be a sips: URI (RFC 3261 §12.1.1, \
             §8.1.1.8).\n{e}"
        )
    }
    let call = two_way_call(&server, &mut caller, &mut agent);
    let request_uri = call.incoming["request_uri"].as_str().unwrap_or_default();
    assert!(
        request_uri.starts_with("sips:"),
        "an agent registered with a sips: Contact is called at a sips: URI: {}",
        call.incoming
    );
    assert_eq!(
        call.incoming["source"],
        tls.to_string(),
        "over the agent's own connection: {}",
        call.incoming
    );
    assert!(
        contact_is_sips(&call.agent_confirmed["remote_contact"]),
        "the server's Contact on a sips: dialog is a sips: URI: {}",
        call.agent_confirmed
    );
}

#[test]
fn a_trunk_calling_a_sips_uri_reaches_an_agent() {
    let pki = Pki::new("tls-sips-trunk");
    pki.install(&pki.leaf("amico-test-1", KeyKind::EcdsaPkcs8));
    let (server, tls) = start_tls(&config(1, &pki.section()));
    let tones = Tones::new("tls-sips-trunk-audio");
    let registrar = server.sip.to_string();
    let (mut agent, _) = agent("agent-udp-for-sips", &registrar, 1, &tones.agent());
    server.wait_logged_in(1);

    // INVITE sips:100@127.0.0.1:PORT from a sips: From and Contact.
    let ca = pki.ca.to_string_lossy().into_owned();
    let to = format!("sips:100@{tls}");
    let mut extra = vec!["--transport", "tls", "--sips", "--ca-file", &ca];
    extra.extend(tones.caller());
    let mut caller = caller("trunk-sips", &to, &extra);
    let first = ok(caller.wait_for(
        |e| e["event"] == "confirmed" || e["event"] == "disconnected",
        STEP,
    ));
    if first["event"] == "disconnected" {
        panic!(
            "{}",
            caller.failure(
                "the trunk's sips: call ended before it was confirmed. PJSIP ends a sips: \
                 dialog whose 200 has a Contact (or Record-Route) that is not sips: \
                 (\"Secure dialog requires SIPS scheme\", then BYE): the server's Contact \
                 must be a sips: URI (RFC 3261 §12.1.1)"
            )
        );
    }
    assert!(
        contact_is_sips(&first["remote_contact"]),
        "the server's Contact in its 200 to a sips: INVITE is a sips: URI: {first}"
    );
    two_way_call(&server, &mut caller, &mut agent);
}

#[test]
fn a_reload_gives_new_connections_the_new_certificate_and_keeps_registered_agents() {
    let pki = Pki::new("tls-reload");
    let first = pki.leaf("amico-test-1", KeyKind::EcdsaPkcs8);
    let second = pki.leaf("amico-test-2", KeyKind::EcdsaPkcs8);
    let (first_print, second_print) = (fingerprint(&first.chain), fingerprint(&second.chain));
    assert_ne!(first_print, second_print);
    pki.install(&first);
    let (server, tls) = start_tls(&config(2, &pki.section()));

    let presented = handshake(tls, Some(&pki.ca));
    assert_eq!(
        presented["ok"], true,
        "a verifying TLS client connects: {presented}"
    );
    assert_eq!(presented["sha256"], first_print.as_str(), "{presented}");
    let ca = pki.ca.to_string_lossy().into_owned();
    let registrar = tls.to_string();
    let tls_flags = ["--transport", "tls", "--ca-file", &ca];
    let mut extra = tls_flags.to_vec();
    extra.extend(["--answer", "auto", "--hangup-after", "1"]);
    let (mut kept, _) = agent("agent-before-reload", &registrar, 1, &extra);
    server.wait_logged_in(1);

    // A renewed certificate from the same CA, then SIGHUP.
    pki.install(&second);
    server.signal("HUP");
    wait_presented(&server, tls, &pki.ca, &second_print, STEP);

    // The agent registered before the reload is still registered, on its old
    // connection: it is called there, and it answers.
    let health: Value = serde_json::from_str(&server.get("/health")).expect("health JSON");
    assert_eq!(health["agents_logged_in"], 1, "{health}");
    let to = format!("sip:100@{}", server.sip);
    let mut caller = caller("caller-after-reload", &to, &["--calls", "1"]);
    let incoming = ok(kept.wait_for(event("incoming"), STEP));
    assert_eq!(
        incoming["source"],
        tls.to_string(),
        "called over the connection it opened before the reload: {incoming}"
    );
    ok(kept.wait_for(event("confirmed"), STEP));
    let hung_up = ok(caller.wait_for(event("disconnected"), STEP));
    assert_eq!(hung_up["confirmed"], true, "{hung_up}");
    let lost = kept.count(|e| e["event"] == "registration_failed" || e["event"] == "unregistered");
    assert_eq!(lost, 0, "{}", kept.failure("the registration was lost"));

    // A phone that verifies the server registers after the reload too.
    let (_new, registered) = agent("agent-after-reload", &registrar, 2, &tls_flags);
    assert_eq!(registered["via_transport"], "TLS", "{registered}");
    server.wait_logged_in(2);

    // A key file holding no key is refused whole: the running certificate stays.
    pki.install(&pki.leaf("amico-test-3", KeyKind::EcdsaPkcs8));
    replace_file(&pki.private_key, b"this is not a private key\n");
    let (status, refused) = server.api("POST", "/api/config/reload", Some(SUPERVISOR), None);
    assert_eq!(
        status, 400,
        "a reload whose key file holds no key is refused: {refused}"
    );
    assert!(
        refused.to_string().to_ascii_lowercase().contains("key"),
        "the refusal names the key: {refused}"
    );
    let presented = handshake(tls, Some(&pki.ca));
    assert_eq!(
        presented["sha256"],
        second_print.as_str(),
        "after a refused reload new connections still get the running certificate: {presented}"
    );
}

#[test]
fn a_self_signed_development_certificate_lets_a_non_verifying_phone_register() {
    let section = "\n[sip.tls]\nlisten = \"127.0.0.1:0\"\nself_signed = true\n";
    let (server, tls) = start_tls(&config(1, section));

    let first = handshake(tls, None);
    assert_eq!(
        first["ok"], true,
        "a TLS handshake without verification: {first}"
    );
    let again = handshake(tls, None);
    assert_eq!(
        first["sha256"], again["sha256"],
        "the throwaway certificate is made once, at start: {first} / {again}"
    );

    let registrar = tls.to_string();
    let (_agent, registered) = agent(
        "agent-self-signed",
        &registrar,
        1,
        &["--transport", "tls", "--no-verify"],
    );
    assert_eq!(registered["via_transport"], "TLS", "{registered}");
    server.wait_logged_in(1);
}

#[test]
fn an_rsa_certificate_with_a_pkcs1_key_is_served() {
    let pki = Pki::new("tls-rsa");
    let leaf = pki.leaf("amico-test-rsa", KeyKind::RsaPkcs1);
    pki.install(&leaf);
    let (server, tls) = start_tls(&config(1, &pki.section()));
    let presented = handshake(tls, Some(&pki.ca));
    assert_eq!(presented["ok"], true, "{presented}");
    assert_eq!(presented["sha256"], fingerprint(&leaf.chain).as_str());
    let ca = pki.ca.to_string_lossy().into_owned();
    let registrar = tls.to_string();
    let (_agent, registered) = agent(
        "agent-rsa",
        &registrar,
        1,
        &["--transport", "tls", "--ca-file", &ca],
    );
    assert_eq!(registered["via_transport"], "TLS", "{registered}");
    server.wait_logged_in(1);
}

#[test]
fn a_stranger_at_its_connection_cap_gets_no_tls_handshake_until_one_closes() {
    let pki = Pki::new("tls-cap");
    pki.install(&pki.leaf("amico-test-cap", KeyKind::EcdsaPkcs8));
    // 127.0.0.1 a stranger (the trunk trusted elsewhere), allowed one connection.
    let config = config(1, &pki.section())
        .replace("sources = [\"127.0.0.1\"]", "sources = [\"10.0.0.0/8\"]")
        .replace(
            "[[trunks]]",
            "[sip.limits]\nconnections_per_source = 1\n\n[[trunks]]",
        );
    let (server, tls) = start_tls(&config);
    // A connection that never starts its handshake holds the one place.
    let idle = std::net::TcpStream::connect(tls).unwrap();
    server.wait_metric(
        "amico_sip_connections",
        |v| v == 1.0,
        Duration::from_secs(5),
    );
    let refused = handshake(tls, Some(&pki.ca));
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(
        server.metric("amico_sip_refused_total{reason=\"connections\"}"),
        1.0
    );
    // It closes: its handshake fails, the place is free, and the next handshake is served.
    drop(idle);
    server.wait_metric(
        "amico_sip_connections",
        |v| v == 0.0,
        Duration::from_secs(5),
    );
    let served = handshake(tls, Some(&pki.ca));
    assert_eq!(served["ok"], true, "{served}");
}

#[test]
fn a_missing_certificate_file_stops_the_start_with_its_name() {
    let dir = peers::scratch_dir("tls-missing");
    let missing = dir.join("nowhere.pem");
    let key = dir.join("key.pem");
    let section = format!(
        "\n[sip.tls]\nlisten = \"127.0.0.1:0\"\ncertificate = {}\nprivate_key = {}\n",
        toml_path(&missing),
        toml_path(&key)
    );
    match Server::try_start(&config(1, &section)) {
        Ok(server) => panic!(
            "the server started without its certificate file {}\nlog tail:\n{}",
            missing.display(),
            server.log_tail(20)
        ),
        Err(failure) => assert!(
            failure.contains(&*missing.to_string_lossy()),
            "the refusal names the missing certificate file {}:\n{failure}",
            missing.display()
        ),
    }
}

#[test]
fn a_queued_callback_goes_out_to_a_tls_gateway_whose_certificate_is_verified() {
    let pki = Pki::new("tls-gateway");
    pki.install(&pki.leaf("amico-test-1", KeyKind::EcdsaPkcs8));
    let gateway_leaf = pki.leaf("pbx-gateway", KeyKind::EcdsaPkcs8);
    let (ca, chain, key) = (
        pki.ca.to_string_lossy().into_owned(),
        gateway_leaf.chain.to_string_lossy().into_owned(),
        gateway_leaf.key.to_string_lossy().into_owned(),
    );
    // The PBX's gateway: a PJSIP phone on TLS with its own certificate, answering
    // whatever number Amico calls out to.
    let mut gateway = ok(Ua::spawn(
        "tls-gateway",
        &[
            "--role",
            "agent",
            "--user",
            "pbx",
            "--transport",
            "tls",
            "--ca-file",
            &ca,
            "--tls-cert",
            &chain,
            "--tls-key",
            &key,
            "--answer",
            "auto",
            "--calls",
            "1",
            "--timeout",
            "90",
        ],
    ));
    let gateway_port = ok(gateway.ready_port(STEP));
    let config = format!(
        "{}\n[experience.comune]\nlanguage = \"it\"\nwelcome = false\nannounce_position = \"no\"\n\
         announce_holdtime = \"no\"\nperiodic_announce_frequency = 0\nmenu = true\n{}\
         ca_certificates = {}\n",
        server::config(1, "ring_timeout = 15").replace(
            "dids = {",
            &format!(
                "gateway = \"127.0.0.1:{gateway_port}\"\ngateway_transport = \"tls\"\ndids = {{"
            ),
        ),
        pki.section(),
        toml_path(&pki.ca),
    );
    let (server, _) = start_tls(&config);

    // No agent is logged in: the caller asks to be called back on another number.
    let to = format!("sip:100@{}", server.sip);
    let mut caller = caller(
        "callback-caller",
        &to,
        &["--dtmf", "10521999#", "--dtmf-delay", "8"],
    );
    let ended = ok(caller.wait_for(event("disconnected"), STEP));
    assert_eq!(
        ended["by"], "remote",
        "Amico confirms and hangs up: {ended}"
    );
    server.wait_metric(
        "amico_queue_callbacks_requested_total{queue=\"comune\"}",
        |v| v == 1.0,
        STEP,
    );

    // An agent logs in: it is rung first, then the number is called through the gateway
    // over TLS, the gateway's certificate checked against sip.tls.ca_certificates.
    let registrar = server.sip.to_string();
    let (mut agent, _) = agent(
        "callback-agent",
        &registrar,
        1,
        &["--answer", "auto", "--hangup-after", "4", "--calls", "1"],
    );
    ok(agent.wait_for(event("confirmed"), STEP));
    let called_back = ok(gateway.wait_for(event("incoming"), STEP));
    assert_eq!(called_back["via_transport"], "TLS", "{called_back}");
    assert!(
        called_back["request_uri"]
            .as_str()
            .is_some_and(|uri| uri.starts_with("sip:0521999@")),
        "the keyed-in number is called back: {called_back}"
    );
    ok(gateway.wait_for(event("confirmed"), STEP));
    ok(gateway.wait_for(event("disconnected"), STEP));
    server.wait_metric(
        "amico_queue_answered_total{queue=\"comune\"}",
        |v| v == 1.0,
        STEP,
    );
    assert_eq!(
        server.metric("amico_queue_callbacks_unanswered_total{queue=\"comune\"}"),
        0.0
    );
}

/// An HTTPS client of the server's HTTP listener, trusting `ca`.
async fn https_stream(
    server: &Server,
    ca: &Path,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca).expect("the CA file") {
        roots.add(certificate.expect("a CA certificate")).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server.http).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    connector
        .connect(name, tcp)
        .await
        .expect("the HTTPS listener's certificate is the one [sip.tls] names")
}

#[test]
fn https_and_wss_share_the_sip_certificate_and_a_browser_registers_over_wss() {
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let pki = Pki::new("tls-https");
    pki.install(&pki.leaf("amico-test-1", KeyKind::EcdsaPkcs8));
    let config = config(1, &pki.section()).replacen(
        "[http]\nlisten = \"127.0.0.1:0\"",
        "[http]\nlisten = \"127.0.0.1:0\"\ntls = true",
        1,
    );
    let (server, _) = start_tls(&config);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // https://…/health over the certificate of [sip.tls].
        let mut https = https_stream(&server, &pki.ca).await;
        https
            .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        https.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains("\"agents_logged_in\""), "{response}");

        // wss://…/sip: a browser's SIP over the same listener.
        let tls = https_stream(&server, &pki.ca).await;
        let mut request = format!("wss://127.0.0.1:{}/sip", server.http.port())
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
        let (mut socket, _) = tokio_tungstenite::client_async(request, tls)
            .await
            .expect("a WebSocket over TLS with the sip subprotocol");
        let register = "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/WSS x1.invalid;branch=z9hG4bK-wss1\r\nMax-Forwards: 70\r\nFrom: <sip:agent1@127.0.0.1>;tag=w\r\nTo: <sip:agent1@127.0.0.1>\r\nCall-ID: wss-1\r\nCSeq: 1 REGISTER\r\nContact: <sip:a1@x1.invalid;transport=ws>\r\nExpires: 300\r\nContent-Length: 0\r\n\r\n";
        socket.send(Message::text(register)).await.unwrap();
        let answer = tokio::time::timeout(STEP, socket.next())
            .await
            .expect("an answer over wss within the deadline")
            .expect("the WebSocket open")
            .unwrap()
            .into_text()
            .unwrap();
        assert!(answer.starts_with("SIP/2.0 401"), "{answer}");
    });
    // Plain HTTP on the HTTPS port is not served.
    let mut plain = std::net::TcpStream::connect(server.http).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    std::io::Write::write_all(&mut plain, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 64];
    let read = std::io::Read::read(&mut plain, &mut buf).unwrap_or(0);
    assert!(
        !String::from_utf8_lossy(&buf[..read]).starts_with("HTTP/1.1 200"),
        "plain HTTP answered on the HTTPS listener"
    );
}
