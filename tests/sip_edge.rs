//! The SIP edge against raw messages over UDP: OPTIONS, malformed input, methods it does
//! not support, trunk admission, digest registration. Each test starts the real server.

#[path = "support/server.rs"]
mod server;

use std::net::UdpSocket;
use std::time::Duration;

use server::Server;

struct Probe {
    socket: UdpSocket,
    server: std::net::SocketAddr,
}

impl Probe {
    fn new(server: &Server) -> Probe {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Probe {
            socket,
            server: server.sip,
        }
    }

    fn port(&self) -> u16 {
        self.socket.local_addr().unwrap().port()
    }

    fn send(&self, message: &str) {
        self.socket
            .send_to(message.as_bytes(), self.server)
            .unwrap();
    }

    /// The next response, skipping provisional ones; fails after 5 s.
    fn final_response(&self) -> String {
        let mut buf = [0u8; 8192];
        loop {
            let (len, _) = self
                .socket
                .recv_from(&mut buf)
                .expect("a response within 5 s");
            let text = String::from_utf8_lossy(&buf[..len]).into_owned();
            if !text.starts_with("SIP/2.0 1") {
                return text;
            }
        }
    }

    fn request(&self, method: &str, uri: &str, call_id: &str, extra: &str, body: &str) -> String {
        format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call_id};rport\r\nMax-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p1\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 {method}\r\nContact: <sip:probe@127.0.0.1:{port}>\r\n{extra}Content-Length: {len}\r\n\r\n{body}",
            port = self.port(),
            to = format_args!("<{uri}>"),
            len = body.len(),
        )
    }
}

fn header<'a>(response: &'a str, name: &str) -> Vec<&'a str> {
    response
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

#[test]
fn options_malformed_and_unsupported_requests_get_their_answers() {
    let server = Server::start(&server::config(1, ""));
    let probe = Probe::new(&server);
    let uri = format!("sip:amico@{}", server.sip);

    probe.send(&probe.request("OPTIONS", &uri, "o1", "", ""));
    let response = probe.final_response();
    assert!(response.starts_with("SIP/2.0 200 OK"), "{response}");
    assert!(
        header(&response, "Allow")[0].contains("INVITE"),
        "{response}"
    );

    // Garbage gets nothing (it cannot be answered) and disturbs nothing.
    probe
        .socket
        .send_to(b"\x16\x03\x01 not sip at all \xff", server.sip)
        .unwrap();

    // A truncated INVITE: Content-Length promises more than arrived.
    let invite = probe.request(
        "INVITE",
        &format!("sip:100@{}", server.sip),
        "t1",
        "Content-Type: application/sdp\r\n",
        SDP,
    );
    let truncated = &invite[..invite.len() - 40];
    probe.send(truncated);
    let response = probe.final_response();
    assert!(
        response.starts_with("SIP/2.0 400 Bad Request (Content-Length"),
        "{response}"
    );
    assert_eq!(header(&response, "Call-ID"), ["t1"]);

    // Headers cut off in the middle.
    let cut = &invite[..invite.find("CSeq").unwrap()];
    probe.send(cut);
    let response = probe.final_response();
    assert!(
        response.starts_with("SIP/2.0 400 Bad Request (truncated"),
        "{response}"
    );

    // A method nobody knows: 501 with Allow (RFC 3261 §21.5.2).
    let foo = probe.request("FOO", &uri, "f1", "", "");
    probe.send(&foo);
    let response = probe.final_response();
    assert!(response.starts_with("SIP/2.0 501"), "{response}");
    assert!(!header(&response, "Allow").is_empty());

    // A method we know but do not support: 405 with Allow (RFC 3261 §8.2.1).
    probe.send(&probe.request("SUBSCRIBE", &uri, "s1", "Event: presence\r\n", ""));
    let response = probe.final_response();
    assert!(response.starts_with("SIP/2.0 405"), "{response}");

    // The server goes on.
    probe.send(&probe.request("OPTIONS", &uri, "o2", "", ""));
    assert!(probe.final_response().starts_with("SIP/2.0 200 OK"));
    assert_eq!(server.metric("amico_sip_malformed_total"), 4.0);
    assert_eq!(server.metric("amico_sip_malformed_answered_total"), 3.0);
    assert!(server.metric("amico_sip_requests_received_total{method=\"OPTIONS\"}") >= 2.0);
}

#[test]
fn trunk_admission_refuses_untrusted_sources_and_unknown_numbers() {
    let server = Server::start(&server::config(1, ""));
    let probe = Probe::new(&server);
    probe.send(&probe.request(
        "INVITE",
        &format!("sip:999@{}", server.sip),
        "u1",
        "Content-Type: application/sdp\r\n",
        SDP,
    ));
    let response = probe.final_response();
    assert!(response.starts_with("SIP/2.0 404"), "{response}");

    let untrusted =
        server::config(1, "").replace("sources = [\"127.0.0.1\"]", "sources = [\"10.0.0.0/8\"]");
    let server = Server::start(&untrusted);
    let probe = Probe::new(&server);
    probe.send(&probe.request(
        "INVITE",
        &format!("sip:100@{}", server.sip),
        "u2",
        "Content-Type: application/sdp\r\n",
        SDP,
    ));
    let response = probe.final_response();
    assert!(response.starts_with("SIP/2.0 403"), "{response}");
    assert!(
        !response.contains("WWW-Authenticate"),
        "an untrusted source learns nothing else"
    );
}

fn md5_hex(text: &str) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(text.as_bytes()))
}

fn param<'a>(challenge: &'a str, name: &str) -> &'a str {
    let start = challenge.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
    &challenge[start..start + challenge[start..].find('"').unwrap()]
}

#[test]
fn agents_register_with_digest_credentials() {
    let server = Server::start(&server::config(2, ""));
    let probe = Probe::new(&server);
    let registrar = format!("sip:{}", server.sip);
    let register = |call_id: &str, extra: &str| {
        probe
            .request("REGISTER", &registrar, call_id, extra, "")
            .replace(&format!("To: <{registrar}>"), "To: <sip:agent1@127.0.0.1>")
            .replace(
                "From: <sip:probe@127.0.0.1>",
                "From: <sip:agent1@127.0.0.1>",
            )
    };
    probe.send(&register("r1", ""));
    let challenge = probe.final_response();
    assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
    let challenges = header(&challenge, "WWW-Authenticate");
    assert_eq!(challenges.len(), 2, "SHA-256 then MD5 (RFC 8760)");
    assert!(challenges[0].contains("algorithm=SHA-256") && challenges[1].contains("algorithm=MD5"));

    let md5 = challenges[1];
    let (realm, nonce) = (param(md5, "realm"), param(md5, "nonce"));
    let answer = |password: &str| {
        let ha1 = md5_hex(&format!("agent1:{realm}:{password}"));
        let ha2 = md5_hex(&format!("REGISTER:{registrar}"));
        let response = md5_hex(&format!("{ha1}:{nonce}:00000001:abcd:auth:{ha2}"));
        format!(
            "Authorization: Digest username=\"agent1\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{registrar}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"abcd\"\r\nExpires: 120\r\n"
        )
    };
    probe.send(&register("r2", &answer("wrong")));
    assert!(
        probe.final_response().starts_with("SIP/2.0 401"),
        "a wrong password is challenged again"
    );

    probe.send(&register("r3", &answer("secret-1")));
    let ok = probe.final_response();
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert!(header(&ok, "Contact")[0].contains("expires=120"), "{ok}");
    let health = |server: &Server| -> serde_json::Value {
        serde_json::from_str(&server.get("/health")).unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while health(&server)["agents_logged_in"] != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "agent1 never logged in"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    probe.send(&register(
        "r4",
        &answer("secret-1").replace("Expires: 120", "Expires: 0"),
    ));
    assert!(probe.final_response().starts_with("SIP/2.0 200"));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while health(&server)["agents_logged_in"] != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "agent1 never logged out"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_bad_config_stops_the_server_before_any_port_is_bound() {
    let port = {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let config = server::config(1, "")
        .replace(
            "listen = \"127.0.0.1:0\"\n\n[http]",
            &format!("listen = \"127.0.0.1:{port}\"\n\n[http]"),
        )
        .replace("\"100\" = \"comune\"", "\"100\" = \"comun\"");
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("bad-{}.toml", std::process::id()));
    std::fs::write(&path, config).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_amico"))
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("trunks[pbx].dids.100: queue 'comun' does not exist"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "nothing was listening");
    std::net::UdpSocket::bind(("127.0.0.1", port)).expect("the SIP port was never taken");

    let check = std::process::Command::new(env!("CARGO_BIN_EXE_amico"))
        .args(["check-config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!check.status.success());
    assert!(String::from_utf8_lossy(&check.stderr).contains("trunks[pbx].dids.100"));
}
