//! The SIP edge against raw messages over UDP: OPTIONS, malformed input, methods it does
//! not support, trunk admission, digest registration. Each test starts the real server.

#[path = "support/server.rs"]
mod server;

use std::io::ErrorKind;
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
    assert_eq!(
        challenges.len(),
        1,
        "MD5 alone by default, which every phone reads"
    );
    assert!(challenges[0].contains("algorithm=MD5"), "{challenge}");

    let md5 = challenges[0];
    let (realm, nonce) = (param(md5, "realm"), param(md5, "nonce"));
    let answer = |password: &str, nc: u32| {
        let ha1 = md5_hex(&format!("agent1:{realm}:{password}"));
        let ha2 = md5_hex(&format!("REGISTER:{registrar}"));
        let response = md5_hex(&format!("{ha1}:{nonce}:{nc:08x}:abcd:auth:{ha2}"));
        format!(
            "Authorization: Digest username=\"agent1\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{registrar}\", response=\"{response}\", algorithm=MD5, qop=auth, nc={nc:08x}, cnonce=\"abcd\"\r\nExpires: 120\r\n"
        )
    };
    probe.send(&register("r2", &answer("wrong", 1)));
    assert!(
        probe.final_response().starts_with("SIP/2.0 401"),
        "a wrong password is challenged again"
    );

    probe.send(&register("r3", &answer("secret-1", 1)));
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
        // The phone's next request on the same nonce counts up (RFC 7616 §3.4).
        &answer("secret-1", 2).replace("Expires: 120", "Expires: 0"),
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

/// Reads SIP messages from a socket until one satisfies `want` (5 s deadline per read).
fn recv_until(socket: &UdpSocket, want: impl Fn(&str) -> bool) -> (String, std::net::SocketAddr) {
    let mut buf = [0u8; 8192];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no matching SIP message within 10 s"
        );
        let (len, from) = socket
            .recv_from(&mut buf)
            .expect("a SIP message within 5 s");
        let text = String::from_utf8_lossy(&buf[..len]).into_owned();
        if want(&text) {
            return (text, from);
        }
    }
}

/// Sends `message` to `to` and again at T1, 2·T1, ... up to T2 apart (RFC 3261
/// §13.3.1.4, §17.1.2.2) until a message satisfying `want` arrives, for at most 10 s.
fn retransmit_until(
    socket: &UdpSocket,
    message: &str,
    to: std::net::SocketAddr,
    want: impl Fn(&str) -> bool,
) -> String {
    let mut buf = [0u8; 8192];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut interval = Duration::from_millis(500);
    let answer = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no answer to a message retransmitted for 10 s"
        );
        socket.send_to(message.as_bytes(), to).unwrap();
        socket.set_read_timeout(Some(interval)).unwrap();
        let answer = loop {
            match socket.recv_from(&mut buf) {
                Ok((len, _)) => {
                    let text = String::from_utf8_lossy(&buf[..len]).into_owned();
                    if want(&text) {
                        break Some(text);
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break None;
                }
                Err(e) => panic!("reading the socket: {e}"),
            }
        };
        if let Some(answer) = answer {
            break answer;
        }
        interval = (interval * 2).min(Duration::from_secs(4));
    };
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    answer
}

fn body(message: &str) -> &str {
    message
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default()
}

fn sdp_port(sdp: &str) -> u16 {
    sdp.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split(' ').next())
        .unwrap()
        .parse()
        .unwrap()
}

/// A 20 ms PCMU packet.
fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut packet = vec![0x80, 0x00];
    packet.extend(seq.to_be_bytes());
    packet.extend((u32::from(seq) * 160).to_be_bytes());
    packet.extend(ssrc.to_be_bytes());
    packet.extend([0x55u8; 160]);
    packet
}

/// Sends RTP from `from` to `to` until `at` receives some (relayed through Amico).
fn rtp_flows(from: &UdpSocket, to: std::net::SocketAddr, at: &UdpSocket) {
    at.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 2048];
    for seq in 0..100u16 {
        from.send_to(&rtp(seq, 0xC0FFEE), to).unwrap();
        if let Ok((len, _)) = at.recv_from(&mut buf)
            && len == 172
            && buf[0] == 0x80
        {
            return;
        }
    }
    panic!("no RTP relayed within 100 packets");
}

/// A raw agent phone registered as agent1 (digest MD5).
fn register_raw_agent(server: &Server) -> UdpSocket {
    let phone = UdpSocket::bind("127.0.0.1:0").unwrap();
    phone
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let port = phone.local_addr().unwrap().port();
    let registrar = format!("sip:{}", server.sip);
    let register = |cseq: u32, extra: &str| {
        format!(
            "REGISTER {registrar} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-reg{cseq};rport\r\nMax-Forwards: 70\r\nFrom: <sip:agent1@127.0.0.1>;tag=r\r\nTo: <sip:agent1@127.0.0.1>\r\nCall-ID: reg-{port}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:agent1@127.0.0.1:{port}>\r\nExpires: 300\r\n{extra}Content-Length: 0\r\n\r\n"
        )
    };
    phone
        .send_to(register(1, "").as_bytes(), server.sip)
        .unwrap();
    let (challenge, _) = recv_until(&phone, |m| m.starts_with("SIP/2.0 401"));
    let md5 = header(&challenge, "WWW-Authenticate")
        .into_iter()
        .find(|c| c.contains("MD5"))
        .unwrap()
        .to_owned();
    let (realm, nonce) = (
        param(&md5, "realm").to_owned(),
        param(&md5, "nonce").to_owned(),
    );
    let ha1 = md5_hex(&format!("agent1:{realm}:secret-1"));
    let ha2 = md5_hex(&format!("REGISTER:{registrar}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:{ha2}"));
    let authorization = format!(
        "Authorization: Digest username=\"agent1\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{registrar}\", response=\"{response}\"\r\n"
    );
    phone
        .send_to(register(2, &authorization).as_bytes(), server.sip)
        .unwrap();
    recv_until(&phone, |m| m.starts_with("SIP/2.0 200"));
    phone
}

/// A response to `request` with `status`, a To tag and an optional SDP body, from a phone
/// reachable at `contact`.
fn respond(request: &str, status: &str, to_tag: &str, contact: u16, sdp: Option<&str>) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for name in ["Via", "From", "Call-ID", "CSeq"] {
        for value in header(request, name) {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    let to = header(request, "To")[0];
    if to.contains(";tag=") {
        out.push_str(&format!("To: {to}\r\n"));
    } else {
        out.push_str(&format!("To: {to};tag={to_tag}\r\n"));
    }
    out.push_str(&format!("Contact: <sip:agent1@127.0.0.1:{contact}>\r\n"));
    match sdp {
        Some(sdp) => out.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )),
        None => out.push_str("Content-Length: 0\r\n\r\n"),
    }
    out
}

fn audio_sdp(port: u16, direction: &str) -> String {
    format!(
        "v=0\r\no=- 7 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na={direction}\r\n",
        version = if direction == "sendrecv" { 1 } else { 2 }
    )
}

#[test]
fn an_offer_with_no_common_codec_gets_488() {
    let server = Server::start(&server::config(1, ""));
    let probe = Probe::new(&server);
    let g729 = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
    probe.send(&probe.request(
        "INVITE",
        &format!("sip:100@{}", server.sip),
        "g1",
        "Content-Type: application/sdp\r\n",
        g729,
    ));
    let response = probe.final_response();
    assert!(response.starts_with("SIP/2.0 488"), "{response}");
    server.wait_metric("amico_calls_active", |v| v == 0.0, Duration::from_secs(5));
    assert_eq!(
        server.metric("amico_queue_offered_total{queue=\"comune\"}"),
        0.0
    );
}

#[test]
fn a_cancel_before_the_answer_ends_the_call_cleanly() {
    let server = Server::start(&server::config(1, ""));
    let probe = Probe::new(&server);
    let invite = probe.request(
        "INVITE",
        &format!("sip:100@{}", server.sip),
        "c1",
        "Content-Type: application/sdp\r\n",
        SDP,
    );
    let cancel = invite
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .replacen("INVITE sip", "CANCEL sip", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL")
        .replace("Content-Type: application/sdp\r\n", "")
        .replace(
            &format!("Content-Length: {}", SDP.len()),
            "Content-Length: 0",
        )
        + "\r\n\r\n";
    probe.send(&invite);
    probe.send(&cancel);
    // The INVITE ends 487 if the CANCEL was first (RFC 3261 §9.2), or 200 if our answer
    // was; then the caller hangs up with BYE as a phone would.
    let (final_invite, _) = recv_until(&probe.socket, |m| {
        m.starts_with("SIP/2.0") && m.contains("INVITE\r\n") && !m.starts_with("SIP/2.0 1")
    });
    if final_invite.starts_with("SIP/2.0 200") {
        let to = header(&final_invite, "To")[0].to_owned();
        let ack_bye = |method: &str, cseq: u32| {
            invite
                .split("\r\n\r\n")
                .next()
                .unwrap()
                .replacen("INVITE sip", &format!("{method} sip"), 1)
                .replace("CSeq: 1 INVITE", &format!("CSeq: {cseq} {method}"))
                .replace(
                    &format!("To: <sip:100@{}>", server.sip),
                    &format!("To: {to}"),
                )
                .replace("branch=z9hG4bK-c1", &format!("branch=z9hG4bK-c1{method}"))
                .replace("Content-Type: application/sdp\r\n", "")
                .replace(
                    &format!("Content-Length: {}", SDP.len()),
                    "Content-Length: 0",
                )
                + "\r\n\r\n"
        };
        probe.send(&ack_bye("ACK", 1));
        probe.send(&ack_bye("BYE", 2));
        recv_until(&probe.socket, |m| {
            m.starts_with("SIP/2.0 200") && m.contains("BYE")
        });
    } else {
        assert!(final_invite.starts_with("SIP/2.0 487"), "{final_invite}");
    }
    server.wait_metric("amico_calls_active", |v| v == 0.0, Duration::from_secs(5));
    // The ACD's figures are published a moment after the call task ends: wait for them to
    // agree (every queued caller abandoned, none left waiting).
    server.wait_metrics(
        &[
            "amico_queue_offered_total{queue=\"comune\"}",
            "amico_queue_abandoned_total{queue=\"comune\"}",
            "amico_queue_waiting_callers{queue=\"comune\"}",
        ],
        |v| v[0] == v[1] && v[2] == 0.0,
        Duration::from_secs(5),
    );
}

#[test]
fn caller_identity_is_relayed_as_received_and_reinvites_keep_the_bridge() {
    let server = Server::start(&server::config(1, "ring_timeout = 15"));
    let phone = register_raw_agent(&server);
    let health = || -> serde_json::Value { serde_json::from_str(&server.get("/health")).unwrap() };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while health()["agents_logged_in"] != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "agent1 never logged in"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let trunk = Probe::new(&server);
    let trunk_rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let agent_rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let offer = audio_sdp(trunk_rtp.local_addr().unwrap().port(), "sendrecv");
    let invite = trunk
        .request(
            "INVITE",
            &format!("sip:%2B390521000@{}", server.sip),
            "id1",
            "Content-Type: application/sdp\r\n",
            &offer,
        )
        .replace(
            "From: <sip:probe@127.0.0.1>;tag=p1",
            "From: \"Rossi, M\" <sip:%2B39055123@pbx.example;user=phone>;tag=p1",
        );
    trunk.send(&invite);
    let answer = trunk.final_response();
    assert!(answer.starts_with("SIP/2.0 200"), "{answer}");
    assert!(
        header(&answer, "To")[0].starts_with(&format!("<sip:%2B390521000@{}>;tag=", server.sip)),
        "{answer}"
    );
    let amico_caller_port = sdp_port(body(&answer));
    let to = header(&answer, "To")[0].to_owned();
    let in_dialog = |method: &str, cseq: u32, sdp: &str| {
        let content = if sdp.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".to_owned()
        };
        trunk
            .request(
                method,
                &format!("sip:amico@{}", server.sip),
                "id1",
                &content,
                sdp,
            )
            .replace(
                "From: <sip:probe@127.0.0.1>;tag=p1",
                "From: \"Rossi, M\" <sip:%2B39055123@pbx.example;user=phone>;tag=p1",
            )
            .replace(
                &format!("To: <sip:amico@{}>", server.sip),
                &format!("To: {to}"),
            )
            .replace(
                &format!("CSeq: 1 {method}"),
                &format!("CSeq: {cseq} {method}"),
            )
            .replace(
                "branch=z9hG4bK-id1",
                &format!("branch=z9hG4bK-id1-{cseq}{method}"),
            )
    };
    trunk.send(&in_dialog("ACK", 1, ""));

    // The agent's phone rings with the caller's identity exactly as the trunk wrote it.
    let (ring, from) = recv_until(&phone, |m| m.starts_with("INVITE "));
    assert_eq!(
        header(&ring, "From")[0].split(";tag=").next().unwrap(),
        "\"Rossi, M\" <sip:%2B39055123@pbx.example;user=phone>",
        "{ring}"
    );
    assert!(!ring.contains("%252B"), "{ring}");
    let amico_agent_port = sdp_port(body(&ring));
    let phone_port = phone.local_addr().unwrap().port();
    phone
        .send_to(
            respond(&ring, "180 Ringing", "a1", phone_port, None).as_bytes(),
            from,
        )
        .unwrap();
    let agent_answer = audio_sdp(agent_rtp.local_addr().unwrap().port(), "sendrecv");
    let agent_ok = respond(&ring, "200 OK", "a1", phone_port, Some(&agent_answer));
    phone.send_to(agent_ok.as_bytes(), from).unwrap();
    let ack = recv_until(&phone, |m| m.starts_with("ACK ")).0;
    // A 2xx that the phone retransmits (its ACK lost, as far as it knows) is ACKed again
    // (RFC 3261 §13.2.2.4). The phone retransmits as RFC 3261 §13.3.1.4 has it, at T1,
    // 2·T1, ... until an ACK: a copy that crosses Amico's ending of the INVITE's
    // transaction (see below) is not answered, as a lost datagram would not be, and the
    // next one is.
    let again = retransmit_until(&phone, &agent_ok, from, |m| m.starts_with("ACK "));
    assert_eq!(branch(&again), branch(&ack), "the same ACK: {again}");

    let amico = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    rtp_flows(&trunk_rtp, amico(amico_caller_port), &agent_rtp);
    rtp_flows(&agent_rtp, amico(amico_agent_port), &trunk_rtp);

    // Hold and unhold from the trunk side (RFC 3264 §8.4): answered, the bridge stays.
    trunk.send(&in_dialog(
        "INVITE",
        2,
        &audio_sdp(trunk_rtp.local_addr().unwrap().port(), "sendonly"),
    ));
    let held = trunk.final_response();
    assert!(
        held.starts_with("SIP/2.0 200") && body(&held).contains("a=recvonly"),
        "{held}"
    );
    assert_eq!(
        sdp_port(body(&held)),
        amico_caller_port,
        "same port on re-INVITE"
    );
    trunk.send(&in_dialog("ACK", 2, ""));
    trunk.send(&in_dialog(
        "INVITE",
        3,
        &audio_sdp(trunk_rtp.local_addr().unwrap().port(), "sendrecv"),
    ));
    let resumed = trunk.final_response();
    assert!(
        resumed.starts_with("SIP/2.0 200") && body(&resumed).contains("a=sendrecv"),
        "{resumed}"
    );
    trunk.send(&in_dialog("ACK", 3, ""));
    rtp_flows(&trunk_rtp, amico(amico_caller_port), &agent_rtp);
    rtp_flows(&agent_rtp, amico(amico_agent_port), &trunk_rtp);

    // The caller hangs up: the agent's phone gets a BYE, the call completes.
    trunk.send(&in_dialog("BYE", 4, ""));
    recv_until(&trunk.socket, |m| {
        m.starts_with("SIP/2.0 200") && m.contains("BYE")
    });
    let (bye, from) = recv_until(&phone, |m| m.starts_with("BYE "));
    phone
        .send_to(
            respond(&bye, "200 OK", "a1", phone_port, None).as_bytes(),
            from,
        )
        .unwrap();
    server.wait_metric(
        "amico_queue_answered_total{queue=\"comune\"}",
        |v| v == 1.0,
        Duration::from_secs(5),
    );
    server.wait_metric("amico_calls_active", |v| v == 0.0, Duration::from_secs(5));
    // The call is over and its dialog gone, but the 2xx is still ACKed within 64 × T1 of
    // it (RFC 6026 §7.2): the INVITE's transaction left its ACK behind.
    phone.send_to(agent_ok.as_bytes(), from).unwrap();
    let late = recv_until(&phone, |m| m.starts_with("ACK ")).0;
    assert_eq!(branch(&late), branch(&ack), "the same ACK: {late}");
}

#[test]
fn legs_that_fall_silent_are_ended_and_the_acd_is_told() {
    // No welcome: the silent trunk leg would time out during it, before any agent rings.
    let config = server::without_welcome(&server::config(1, "ring_timeout = 15"))
        .replace("timeout = 20", "timeout = 1.5");
    let server = Server::start(&config);
    let phone = register_raw_agent(&server);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while serde_json::from_str::<serde_json::Value>(&server.get("/health")).unwrap()["agents_logged_in"]
        != 1
    {
        assert!(
            std::time::Instant::now() < deadline,
            "agent1 never logged in"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let trunk = Probe::new(&server);
    let offer = audio_sdp(40_000, "sendrecv");
    trunk.send(&trunk.request(
        "INVITE",
        &format!("sip:100@{}", server.sip),
        "silent",
        "Content-Type: application/sdp\r\n",
        &offer,
    ));
    let answer = trunk.final_response();
    assert!(answer.starts_with("SIP/2.0 200"), "{answer}");
    let to = header(&answer, "To")[0].to_owned();
    let ack = trunk
        .request(
            "ACK",
            &format!("sip:amico@{}", server.sip),
            "silent",
            "",
            "",
        )
        .replace(
            &format!("To: <sip:amico@{}>", server.sip),
            &format!("To: {to}"),
        )
        .replace("branch=z9hG4bK-silent", "branch=z9hG4bK-silent-ack");
    trunk.send(&ack);
    let (ring, from) = recv_until(&phone, |m| m.starts_with("INVITE "));
    let port = phone.local_addr().unwrap().port();
    phone
        .send_to(
            respond(
                &ring,
                "200 OK",
                "s1",
                port,
                Some(&audio_sdp(40_002, "sendrecv")),
            )
            .as_bytes(),
            from,
        )
        .unwrap();
    recv_until(&phone, |m| m.starts_with("ACK "));
    // Neither side sends a single RTP packet (a lost BYE, a dead phone): after the RTP
    // timeout both legs get a BYE and the call completes in the ACD.
    let (bye, from) = recv_until(&phone, |m| m.starts_with("BYE "));
    phone
        .send_to(respond(&bye, "200 OK", "s1", port, None).as_bytes(), from)
        .unwrap();
    let (bye, from) = recv_until(&trunk.socket, |m| m.starts_with("BYE "));
    let ok = respond(&bye, "200 OK", "t1", trunk.port(), None);
    trunk.socket.send_to(ok.as_bytes(), from).unwrap();
    server.wait_metric("amico_calls_active", |v| v == 0.0, Duration::from_secs(5));
    assert_eq!(
        server.metric("amico_queue_answered_total{queue=\"comune\"}"),
        1.0
    );
    let snapshot: serde_json::Value = serde_json::from_str(&server.get("/health")).unwrap();
    assert_eq!(snapshot["calls"], 0);
}

#[test]
fn a_trunk_from_elsewhere_authenticates_with_digest() {
    let config = server::config(1, "").replace(
        "sources = [\"127.0.0.1\"]",
        "sources = [\"10.0.0.0/8\"]\nusername = \"pbx\"\npassword = \"trunk-secret\"",
    );
    let server = Server::start(&config);
    let probe = Probe::new(&server);
    let uri = format!("sip:100@{}", server.sip);
    probe.send(&probe.request(
        "INVITE",
        &uri,
        "d1",
        "Content-Type: application/sdp\r\n",
        SDP,
    ));
    let challenge = probe.final_response();
    assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
    let md5 = header(&challenge, "WWW-Authenticate")
        .into_iter()
        .find(|c| c.contains("MD5"))
        .unwrap()
        .to_owned();
    let (realm, nonce) = (
        param(&md5, "realm").to_owned(),
        param(&md5, "nonce").to_owned(),
    );
    let authorized = |password: &str, call_id: &str| {
        let ha1 = md5_hex(&format!("pbx:{realm}:{password}"));
        let ha2 = md5_hex(&format!("INVITE:{uri}"));
        let response = md5_hex(&format!("{ha1}:{nonce}:{ha2}"));
        let authorization = format!(
            "Authorization: Digest username=\"pbx\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\"\r\nContent-Type: application/sdp\r\n"
        );
        probe.request("INVITE", &uri, call_id, &authorization, SDP)
    };
    probe.send(&authorized("wrong", "d2"));
    assert!(
        probe.final_response().starts_with("SIP/2.0 403"),
        "a wrong password is refused"
    );
    probe.send(&authorized("trunk-secret", "d3"));
    let answer = probe.final_response();
    assert!(answer.starts_with("SIP/2.0 200"), "{answer}");
    server.wait_metric(
        "amico_queue_waiting_callers{queue=\"comune\"}",
        |v| v == 1.0,
        Duration::from_secs(5),
    );
}

/// The test configuration with 127.0.0.1 a stranger: its trunk is trusted from elsewhere.
fn stranger_config(agents: usize) -> String {
    server::config(agents, "").replace("sources = [\"127.0.0.1\"]", "sources = [\"10.0.0.0/8\"]")
}

/// `config` with `lines` added to its `[sip]` table (sub-tables may follow them).
fn with_sip(config: &str, lines: &str) -> String {
    config.replacen(
        "[sip]\nlisten = \"127.0.0.1:0\"\n",
        &format!("[sip]\nlisten = \"127.0.0.1:0\"\n{lines}\n"),
        1,
    )
}

/// What a response tells its reader about the server: the status line and every header
/// but those that echo the request (Via, From, To, Call-ID, CSeq), nonces blanked (each
/// challenge has a new one).
fn shape(response: &str) -> Vec<String> {
    response
        .lines()
        .filter(|line| {
            !["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
                .iter()
                .any(|echo| line.starts_with(echo))
        })
        .map(|line| match line.find("nonce=\"") {
            Some(start) => {
                let end = start + 7 + line[start + 7..].find('"').unwrap();
                format!("{}nonce=\"\"{}", &line[..start], &line[end + 1..])
            }
            None => line.to_owned(),
        })
        .collect()
}

/// A REGISTER for `user` from `socket`, with `extra` headers.
fn register_from(
    socket: &UdpSocket,
    server: &Server,
    user: &str,
    call_id: &str,
    extra: &str,
) -> String {
    let port = socket.local_addr().unwrap().port();
    let ip = socket.local_addr().unwrap().ip();
    format!(
        "REGISTER sip:{registrar} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:{port};branch=z9hG4bK-{call_id};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag=r{call_id}\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 REGISTER\r\nContact: <sip:{user}@{ip}:{port}>\r\nExpires: 300\r\n{extra}Content-Length: 0\r\n\r\n",
        registrar = server.sip,
    )
}

/// An `Authorization` answering `challenge` for `user` with `password`, MD5, qop=auth and
/// nonce count `nc`.
fn digest_answer(challenge: &str, server: &Server, user: &str, password: &str, nc: u32) -> String {
    let md5 = header(challenge, "WWW-Authenticate")
        .into_iter()
        .find(|c| c.contains("MD5"))
        .unwrap_or_else(|| panic!("no MD5 challenge in {challenge}"))
        .to_owned();
    let (realm, nonce) = (param(&md5, "realm"), param(&md5, "nonce"));
    let uri = format!("sip:{}", server.sip);
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("REGISTER:{uri}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:{nc:08x}:c0ffee:auth:{ha2}"));
    format!(
        "Authorization: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc={nc:08x}, cnonce=\"c0ffee\"\r\n"
    )
}

/// Sends a REGISTER for `user` from `socket` (see [`register_from`]) and returns the final
/// response.
fn register(socket: &UdpSocket, server: &Server, user: &str, call_id: &str, extra: &str) -> String {
    exchange(
        socket,
        server,
        &register_from(socket, server, user, call_id, extra),
    )
}

/// Sends `message` from `socket` and returns the final response (5 s deadline).
fn exchange(socket: &UdpSocket, server: &Server, message: &str) -> String {
    socket.send_to(message.as_bytes(), server.sip).unwrap();
    recv_until(socket, |m| {
        m.starts_with("SIP/2.0 ") && !m.starts_with("SIP/2.0 1")
    })
    .0
}

fn socket_at(ip: &str) -> UdpSocket {
    let socket = UdpSocket::bind((ip, 0)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket
}

#[test]
fn strangers_learn_nothing_about_who_exists() {
    let config = stranger_config(1).replace(
        "sources = [\"10.0.0.0/8\"]",
        "sources = [\"10.0.0.0/8\"]\nusername = \"pbx\"\npassword = \"trunk-secret\"",
    );
    let server = Server::start(&config);
    let phone = socket_at("127.0.0.1");
    let agent = register(&phone, &server, "agent1", "e1", "");
    let nobody = register(&phone, &server, "mallory", "e2", "");
    assert!(agent.starts_with("SIP/2.0 401"), "{agent}");
    assert_eq!(shape(&agent), shape(&nobody), "{agent}\n---\n{nobody}");
    assert_eq!(header(&agent, "WWW-Authenticate").len(), 1, "{agent}");

    // A wrong password and an unknown user: the same answer.
    let wrong = digest_answer(&agent, &server, "agent1", "guess", 1);
    let wrong = register(&phone, &server, "agent1", "e3", &wrong);
    let unknown = digest_answer(&nobody, &server, "mallory", "guess", 1);
    let unknown = register(&phone, &server, "mallory", "e4", &unknown);
    assert!(wrong.starts_with("SIP/2.0 401"), "{wrong}");
    assert_eq!(shape(&wrong), shape(&unknown), "{wrong}\n---\n{unknown}");

    // Other methods, addressed to an agent or to nobody: the same answers.
    let probe = Probe::new(&server);
    for method in ["OPTIONS", "INVITE", "SUBSCRIBE", "MESSAGE"] {
        let extra = if method == "SUBSCRIBE" {
            "Event: presence\r\n"
        } else {
            ""
        };
        probe.send(&probe.request(
            method,
            &format!("sip:agent1@{}", server.sip),
            &format!("{method}-a"),
            extra,
            "",
        ));
        let agent = probe.final_response();
        probe.send(&probe.request(
            method,
            &format!("sip:mallory@{}", server.sip),
            &format!("{method}-m"),
            extra,
            "",
        ));
        let nobody = probe.final_response();
        assert_eq!(
            shape(&agent),
            shape(&nobody),
            "{method}: {agent}\n---\n{nobody}"
        );
    }
    assert_eq!(server.metric("amico_sip_auth_failures_total"), 2.0);
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(
        log.contains("SIP authentication failed source=127.0.0.1 method=REGISTER reason=wrong-password user=\"agent1\""),
        "one stable line per failure"
    );
    assert!(log.contains("SIP authentication failed source=127.0.0.1 method=REGISTER reason=unknown-user user=\"mallory\""));
}

#[test]
fn an_overheard_register_cannot_be_replayed() {
    let server = Server::start(&stranger_config(1));
    let phone = socket_at("127.0.0.1");
    let challenge = register(&phone, &server, "agent1", "p1", "");
    let authorization = digest_answer(&challenge, &server, "agent1", "secret-1", 1);
    let ok = register(&phone, &server, "agent1", "p2", &authorization);
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");

    // The same Authorization from another socket, with a new Call-ID and its own Contact;
    // then from the phone's own socket again.
    let thief = socket_at("127.0.0.1");
    let stolen = register(&thief, &server, "agent1", "p3", &authorization);
    assert!(stolen.starts_with("SIP/2.0 401"), "{stolen}");
    let again = register(&phone, &server, "agent1", "p4", &authorization);
    assert!(again.starts_with("SIP/2.0 401"), "{again}");

    // The phone's next request on its nonce counts up and is fine: the binding is still
    // the phone's.
    let query = register_from(
        &phone,
        &server,
        "agent1",
        "p5",
        &digest_answer(&challenge, &server, "agent1", "secret-1", 2),
    )
    .replace(
        &format!(
            "Contact: <sip:agent1@127.0.0.1:{}>\r\n",
            phone.local_addr().unwrap().port()
        ),
        "",
    );
    let bindings = exchange(&phone, &server, &query);
    assert!(bindings.starts_with("SIP/2.0 200"), "{bindings}");
    let contact = header(&bindings, "Contact");
    assert_eq!(contact.len(), 1, "{bindings}");
    assert!(
        contact[0].contains(&format!("127.0.0.1:{}", phone.local_addr().unwrap().port())),
        "{bindings}"
    );
    assert_eq!(
        server.metric("amico_sip_auth_failures_total"),
        1.0,
        "the replay from the phone's own address"
    );
}

#[test]
fn guessing_is_blocked_then_banned_and_the_agent_still_registers() {
    let server = Server::start(&stranger_config(1));
    let attacker = socket_at("127.0.0.1");
    let guess = |user: &str, n: usize| {
        let challenge = register(&attacker, &server, user, &format!("g{n}a"), "");
        assert!(challenge.starts_with("SIP/2.0 401"), "{n}: {challenge}");
        let wrong = digest_answer(&challenge, &server, user, &format!("guess-{n}"), 1);
        register(&attacker, &server, user, &format!("g{n}b"), &wrong)
    };
    for n in 0..5 {
        let answer = guess("agent1", n);
        assert!(answer.starts_with("SIP/2.0 401"), "{n}: {answer}");
    }
    // Five failures for agent1 from this address: agent1 is blocked from it.
    let blocked = register(&attacker, &server, "agent1", "g-blocked", "");
    assert!(blocked.starts_with("SIP/2.0 503"), "{blocked}");
    let retry: u64 = header(&blocked, "Retry-After")[0].parse().unwrap();
    assert!((1..=60).contains(&retry), "{blocked}");

    // The agent, from its own address, is not locked out.
    let phone = socket_at("127.0.0.2");
    let challenge = register(&phone, &server, "agent1", "a1", "");
    let ok = register(
        &phone,
        &server,
        "agent1",
        "a2",
        &digest_answer(&challenge, &server, "agent1", "secret-1", 1),
    );
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");

    // Spraying other names: twenty failures from one address ban it.
    for n in 5..20 {
        let answer = guess(&format!("user{n}"), n);
        assert!(answer.starts_with("SIP/2.0 401"), "{n}: {answer}");
    }
    assert_eq!(server.metric("amico_sip_auth_failures_total"), 20.0);
    assert_eq!(server.metric("amico_sip_user_blocks_total"), 1.0);
    assert_eq!(server.metric("amico_sip_bans_total"), 1.0);
    server.wait_metric(
        "amico_sip_banned_sources",
        |v| v == 1.0,
        Duration::from_secs(5),
    );

    // Whatever it sends now is dropped unanswered; the agent's address still gets answers.
    attacker
        .send_to(
            register_from(&attacker, &server, "agent1", "g-banned", "").as_bytes(),
            server.sip,
        )
        .unwrap();
    server.wait_metric(
        "amico_sip_refused_total{reason=\"banned\"}",
        |v| v >= 1.0,
        Duration::from_secs(5),
    );
    let options = exchange(
        &phone,
        &server,
        &register_from(&phone, &server, "agent1", "a3", "").replace("REGISTER", "OPTIONS"),
    );
    assert!(options.starts_with("SIP/2.0 200"), "{options}");
    attacker.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 2048];
    assert!(
        attacker.recv_from(&mut buf).is_err(),
        "a banned source gets no answer"
    );
}

#[test]
fn floods_get_503_with_retry_after_and_calls_in_progress_go_on() {
    let config = with_sip(
        &server::config(1, ""),
        "[sip.limits]\nstranger = { options = 0.5 }",
    )
    .replace(
        "[[trunks]]\nname = \"pbx\"",
        "[[trunks]]\nname = \"pbx\"\nmax_calls = 1",
    );
    let server = Server::start(&config);

    // The trunk's address (127.0.0.1) is not rate-limited by default: 100 OPTIONS pass.
    let trunk = Probe::new(&server);
    let uri = format!("sip:amico@{}", server.sip);
    for n in 0..100 {
        trunk.send(&trunk.request("OPTIONS", &uri, &format!("t{n}"), "", ""));
        let answer = trunk.final_response();
        assert!(answer.starts_with("SIP/2.0 200"), "{n}: {answer}");
    }
    // A stranger at one OPTIONS every two seconds gets its one, then 503 with Retry-After.
    let stranger = socket_at("127.0.0.3");
    let answers: Vec<String> = (0..15)
        .map(|n| {
            exchange(
                &stranger,
                &server,
                &register_from(&stranger, &server, "x", &format!("s{n}"), "")
                    .replace("REGISTER", "OPTIONS"),
            )
        })
        .collect();
    let refused: Vec<&String> = answers
        .iter()
        .filter(|a| a.starts_with("SIP/2.0 503"))
        .collect();
    assert!(answers[0].starts_with("SIP/2.0 200"), "{}", answers[0]);
    assert!(refused.len() >= 13, "{answers:?}");
    let retry: u64 = header(refused[0], "Retry-After")[0].parse().unwrap();
    assert!((1..=2).contains(&retry), "{}", refused[0]);
    assert_eq!(
        server.metric("amico_sip_refused_total{reason=\"rate\"}"),
        refused.len() as f64
    );

    // The trunk may have one call at a time: the second gets 503, the first goes on.
    let invite = |call_id: &str| trunk_invite(&trunk, &server, call_id);
    trunk.send(&invite("m1"));
    let first = trunk.final_response();
    assert!(first.starts_with("SIP/2.0 200"), "{first}");
    let to = header(&first, "To")[0].to_owned();
    let in_dialog =
        |method: &str, cseq: u32| trunk_in_dialog(&trunk, &server, "m1", &to, method, cseq);
    trunk.send(&in_dialog("ACK", 1));
    trunk.send(&invite("m2"));
    let second = trunk.final_response();
    assert!(second.starts_with("SIP/2.0 503"), "{second}");
    assert!(!header(&second, "Retry-After").is_empty(), "{second}");
    assert_eq!(
        server.metric("amico_sip_refused_total{reason=\"trunk_calls\"}"),
        1.0
    );
    trunk.send(&in_dialog("BYE", 2));
    let bye = trunk.final_response();
    assert!(
        bye.starts_with("SIP/2.0 200"),
        "the call in progress is untouched: {bye}"
    );
    server.wait_metric("amico_calls_active", |v| v == 0.0, Duration::from_secs(5));
    trunk.send(&invite("m3"));
    let third = trunk.final_response();
    assert!(
        third.starts_with("SIP/2.0 200"),
        "the place is free again: {third}"
    );
}

#[test]
fn requests_that_rfc_3261_refuses_get_400_or_513_naming_the_problem() {
    let server = Server::start(&server::config(1, ""));
    let probe = Probe::new(&server);
    let uri = format!("sip:100@{}", server.sip);
    let invite = |call_id: &str| {
        probe.request(
            "INVITE",
            &uri,
            call_id,
            "Content-Type: application/sdp\r\n",
            SDP,
        )
    };
    for (call_id, line, header_name) in [
        ("d-cseq", "CSeq: 1 INVITE\r\n", "CSeq"),
        ("d-callid", "Call-ID: another@127.0.0.1\r\n", "Call-ID"),
        ("d-from", "From: <sip:mallory@127.0.0.1>;tag=m\r\n", "From"),
    ] {
        let twice = invite(call_id).replacen("Max-Forwards", &format!("{line}Max-Forwards"), 1);
        probe.send(&twice);
        let response = probe.final_response();
        assert!(
            response.starts_with(&format!(
                "SIP/2.0 400 Bad Request (2 {header_name} headers, only one allowed)"
            )),
            "{response}"
        );
    }
    let port = probe.port();
    let without_contact =
        invite("d-contact").replace(&format!("Contact: <sip:probe@127.0.0.1:{port}>\r\n"), "");
    probe.send(&without_contact);
    let response = probe.final_response();
    assert!(
        response.starts_with("SIP/2.0 400 Bad Request (missing Contact)"),
        "{response}"
    );

    let crowd: String = (0..120).map(|i| format!("X-Filler-{i}: {i}\r\n")).collect();
    probe.send(&invite("d-many").replacen("Max-Forwards", &format!("{crowd}Max-Forwards"), 1));
    let response = probe.final_response();
    assert!(
        response.starts_with("SIP/2.0 400 Bad Request (129 header fields, at most 100)"),
        "{response}"
    );

    // 9,000 bytes over UDP: read whole, and answered 513 (RFC 3261 §18.1.1: use TCP).
    let padding = "a=x-padding:".to_owned() + &"p".repeat(60) + "\r\n";
    let big_sdp = SDP.to_owned() + &padding.repeat(8800 / padding.len());
    let big = invite("d-big").replace(SDP, &big_sdp).replace(
        &format!("Content-Length: {}", SDP.len()),
        &format!("Content-Length: {}", big_sdp.len()),
    );
    assert!(big.len() > 9000, "{}", big.len());
    probe.send(&big);
    let response = probe.final_response();
    assert!(
        response.starts_with("SIP/2.0 513 Message Too Large ("),
        "{response}"
    );
    assert_eq!(header(&response, "Call-ID"), ["d-big"]);

    // The same checks hold over TCP, where the 9,000-byte INVITE is fine.
    let mut tcp = std::net::TcpStream::connect(server.sip_tcp).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = tcp.local_addr().unwrap();
    let over_tcp = |message: &str| {
        message
            .replace(
                &format!("SIP/2.0/UDP 127.0.0.1:{port}"),
                &format!("SIP/2.0/TCP {local}"),
            )
            .replace(
                &format!("<sip:probe@127.0.0.1:{port}>"),
                &format!("<sip:probe@{local};transport=tcp>"),
            )
    };
    let read_final = |tcp: &mut std::net::TcpStream| -> String {
        use std::io::Read;
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = tcp.read(&mut buf).expect("a response over TCP within 5 s");
            assert!(n > 0, "connection closed: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            // Skip provisional responses; stop at the first final one's end of headers.
            while let Some(start) = seen.find("SIP/2.0 ") {
                let rest = &seen[start..];
                let Some(end) = rest.find("\r\n\r\n") else {
                    break;
                };
                let message = rest[..end].to_owned();
                seen = rest[end + 4..].to_owned();
                if !message.starts_with("SIP/2.0 1") {
                    return message;
                }
            }
        }
    };
    use std::io::Write;
    tcp.write_all(
        over_tcp(&invite("t-cseq").replacen("Max-Forwards", "CSeq: 1 INVITE\r\nMax-Forwards", 1))
            .as_bytes(),
    )
    .unwrap();
    let response = read_final(&mut tcp);
    assert!(
        response.starts_with("SIP/2.0 400 Bad Request (2 CSeq headers, only one allowed)"),
        "{response}"
    );
    tcp.write_all(over_tcp(&big.replace("d-big", "t-big")).as_bytes())
        .unwrap();
    let response = read_final(&mut tcp);
    assert!(response.starts_with("SIP/2.0 200"), "{response}");
}

#[test]
fn a_stranger_holds_only_so_many_connections_and_gets_a_place_back_when_one_closes() {
    let config = format!(
        "{}\n[sip.limits]\nconnections_per_source = 3\n",
        stranger_config(1)
    );
    let server = Server::start(&config);
    let connect = || tcp_to(&server);
    let mut held: Vec<_> = (0..3).map(|_| connect()).collect();
    server.wait_metric(
        "amico_sip_connections",
        |v| v == 3.0,
        Duration::from_secs(5),
    );

    // The fourth and fifth are closed as they are accepted, before anything is read.
    for n in 4..=5 {
        assert_closed_unanswered(connect(), &format!("connection {n}, over the cap"));
    }
    assert_eq!(
        server.metric("amico_sip_refused_total{reason=\"connections\"}"),
        2.0
    );
    assert_eq!(server.metric("amico_sip_connections"), 3.0);
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert_eq!(
        log.matches("SIP connection refused source=127.0.0.1 open=3")
            .count(),
        1,
        "one line while the source stays at its cap:\n{log}"
    );

    // One closes: the stack notices, and the source may connect again and be answered.
    drop(held.pop());
    server.wait_metric(
        "amico_sip_connections",
        |v| v == 2.0,
        Duration::from_secs(5),
    );
    let mut tcp = connect();
    let answer = options_over_tcp(&mut tcp, &server, "connection-cap");
    assert!(answer.starts_with("SIP/2.0 200"), "{answer}");
    assert_eq!(server.metric("amico_sip_connections"), 3.0);

    // A browser's WebSocket counts towards the same cap: refused while three are open.
    let refused = WsPhone::connect(&server)
        .err()
        .expect("a fourth connection refused");
    assert!(refused.contains("403"), "{refused}");
    drop(held.pop());
    server.wait_metric(
        "amico_sip_connections",
        |v| v == 2.0,
        Duration::from_secs(5),
    );
    let _browser = WsPhone::connect(&server).unwrap();
    server.wait_metric(
        "amico_sip_connections",
        |v| v == 3.0,
        Duration::from_secs(5),
    );
    assert_eq!(
        server.metric("amico_sip_refused_total{reason=\"connections\"}"),
        3.0
    );
}

#[test]
fn a_stranger_opening_connections_faster_than_its_rate_has_them_closed_at_once() {
    // One connection every 10 s, a bucket of one: the second in a row is over the rate.
    let config = format!(
        "{}\n[sip.limits]\nstranger = {{ connections = 0.1 }}\n",
        stranger_config(1)
    );
    let server = Server::start(&config);
    let connect = || tcp_to(&server);
    let mut first = connect();
    assert_closed_unanswered(connect(), "the second connection, over the rate");
    assert_eq!(
        server.metric("amico_sip_refused_total{reason=\"rate\"}"),
        1.0
    );
    // The first is served as before.
    let answer = options_over_tcp(&mut first, &server, "connection-rate");
    assert!(answer.starts_with("SIP/2.0 200"), "{answer}");
    assert_eq!(server.metric("amico_sip_connections"), 1.0);
}

/// A TCP connection to the server's SIP port, reads bounded to 5 s.
fn tcp_to(server: &Server) -> std::net::TcpStream {
    let tcp = std::net::TcpStream::connect(server.sip_tcp).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp
}

/// Asserts that the server closed `tcp` without a byte (`what` says which connection).
fn assert_closed_unanswered(mut tcp: std::net::TcpStream, what: &str) {
    use std::io::Read;
    let mut buf = [0u8; 64];
    match tcp.read(&mut buf) {
        Ok(0) => {}
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("{what}: {other:?}, not closed"),
    }
}

/// Sends an OPTIONS over `tcp` (RFC 3261 §11) and reads the answer's head.
fn options_over_tcp(tcp: &mut std::net::TcpStream, server: &Server, call_id: &str) -> String {
    use std::io::{Read, Write};
    let local = tcp.local_addr().unwrap();
    let port = server.sip_tcp.port();
    tcp.write_all(
        format!(
            "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n\
             Via: SIP/2.0/TCP {local};branch=z9hG4bK-{call_id}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:probe@{local}>;tag=probe\r\n\
             To: <sip:127.0.0.1:{port}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("\r\n\r\n") {
        let n = tcp.read(&mut buf).expect("an answer within 5 s");
        assert!(n > 0, "closed before an answer: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    seen
}

#[test]
fn amico_names_itself_as_configured_and_without_its_version() {
    let server = Server::start(&with_sip(&server::config(1, ""), "probe_interval = 1"));
    let probe = Probe::new(&server);
    probe.send(&probe.request(
        "OPTIONS",
        &format!("sip:amico@{}", server.sip),
        "n1",
        "",
        "",
    ));
    let response = probe.final_response();
    assert_eq!(header(&response, "Server"), ["Amico"], "{response}");
    assert!(header(&response, "User-Agent").is_empty(), "{response}");
    // Its own requests: the OPTIONS probe of a registered phone.
    let phone = register_raw_agent(&server);
    let (probe_request, _) = recv_until(&phone, |m| m.starts_with("OPTIONS "));
    assert_eq!(
        header(&probe_request, "User-Agent"),
        ["Amico"],
        "{probe_request}"
    );
    assert!(
        header(&probe_request, "Call-ID")[0].ends_with("@amico"),
        "{probe_request}"
    );

    let server = Server::start(&with_sip(
        &server::config(1, ""),
        "probe_interval = 1\nuser_agent = \"Centralino\"\ncall_id_host = \"pbx.example\"",
    ));
    let probe = Probe::new(&server);
    probe.send(&probe.request(
        "OPTIONS",
        &format!("sip:amico@{}", server.sip),
        "n2",
        "",
        "",
    ));
    assert_eq!(header(&probe.final_response(), "Server"), ["Centralino"]);
    let phone = register_raw_agent(&server);
    let (probe_request, _) = recv_until(&phone, |m| m.starts_with("OPTIONS "));
    assert_eq!(header(&probe_request, "User-Agent"), ["Centralino"]);
    assert!(
        header(&probe_request, "Call-ID")[0].ends_with("@pbx.example"),
        "{probe_request}"
    );
}

/// A raw SIP-over-WebSocket phone (RFC 7118), as a browser's SIP library speaks it.
struct WsPhone {
    socket: tokio_tungstenite::tungstenite::WebSocket<
        tokio_tungstenite::tungstenite::stream::MaybeTlsStream<std::net::TcpStream>,
    >,
}

impl WsPhone {
    fn connect(server: &Server) -> Result<WsPhone, String> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{}/sip", server.http)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
        let (socket, response) =
            tokio_tungstenite::tungstenite::connect(request).map_err(|e| e.to_string())?;
        assert_eq!(
            response.headers().get("sec-websocket-protocol").unwrap(),
            "sip"
        );
        if let tokio_tungstenite::tungstenite::stream::MaybeTlsStream::Plain(tcp) = socket.get_ref()
        {
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        }
        Ok(WsPhone { socket })
    }

    fn send(&mut self, message: &str) {
        self.socket
            .send(tokio_tungstenite::tungstenite::Message::text(message))
            .unwrap();
    }

    /// The next SIP message that satisfies `want` (5 s per read).
    fn until(&mut self, want: impl Fn(&str) -> bool) -> String {
        loop {
            let message = self.socket.read().expect("a SIP message within 5 s");
            let text = message.into_text().unwrap().to_string();
            if want(&text) {
                return text;
            }
        }
    }

    fn register(&mut self, server: &Server, call_id: &str, extra: &str) -> String {
        self.send(&format!(
            "REGISTER sip:{sip} SIP/2.0\r\nVia: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK-{call_id}\r\nMax-Forwards: 70\r\nFrom: <sip:agent1@127.0.0.1>;tag=w{call_id}\r\nTo: <sip:agent1@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 REGISTER\r\nContact: <sip:q7ah@df7jal23ls0d.invalid;transport=ws>;+sip.instance=\"<urn:uuid:1>\"\r\nExpires: 300\r\n{extra}Content-Length: 0\r\n\r\n",
            sip = server.sip
        ));
        self.until(|m| m.starts_with("SIP/2.0 ") && !m.starts_with("SIP/2.0 1"))
    }
}

#[test]
fn an_agent_over_a_websocket_is_called_on_it_and_logged_out_after_it_closes() {
    let server = Server::start(&with_sip(
        &server::without_welcome(&server::config(1, "ring_timeout = 15")),
        "websocket_grace = 1",
    ));
    // Without the sip subprotocol: refused (RFC 7118 §4.1).
    let plain = tokio_tungstenite::tungstenite::connect(format!("ws://{}/sip", server.http));
    assert!(plain.is_err(), "a WebSocket without the sip subprotocol");

    let mut phone = WsPhone::connect(&server).unwrap();
    let challenge = phone.register(&server, "ws1", "");
    assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
    let answer = digest_answer(&challenge, &server, "agent1", "secret-1", 1);
    let ok = phone.register(&server, "ws2", &answer);
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    server.wait_logged_in(1);

    // A trunk call rings the agent down its WebSocket, at its *.invalid Contact.
    let trunk = Probe::new(&server);
    trunk.send(&trunk.request(
        "INVITE",
        &format!("sip:100@{}", server.sip),
        "ws-call",
        "Content-Type: application/sdp\r\n",
        SDP,
    ));
    assert!(trunk.final_response().starts_with("SIP/2.0 200"));
    let ring = phone.until(|m| m.starts_with("INVITE "));
    assert!(
        // URI parameters compare case-insensitively (RFC 3261 §19.1.4); the stack
        // writes the transport in capitals.
        ring.to_ascii_lowercase()
            .starts_with("invite sip:q7ah@df7jal23ls0d.invalid;transport=ws sip/2.0"),
        "{ring}"
    );
    assert!(header(&ring, "Via")[0].starts_with("SIP/2.0/WS "), "{ring}");
    assert!(
        header(&ring, "Contact")[0]
            .to_ascii_lowercase()
            .contains(&format!("@{};transport=ws", server.http)),
        "our Contact is the WebSocket's listener: {ring}"
    );
    // A browser takes WebRTC media only (RFC 8827 §6.5): the offer is DTLS-SRTP over ICE.
    let offer = ring.split("\r\n\r\n").nth(1).unwrap_or_default();
    for wanted in [
        "UDP/TLS/RTP/SAVPF 0 8 101",
        "a=fingerprint:sha-256 ",
        "a=ice-lite",
        "a=rtcp-mux",
        &format!("{} typ host", server.webrtc.port()),
    ] {
        assert!(offer.contains(wanted), "{wanted:?} in the offer: {ring}");
    }
    // Busy: the call goes back to its place, as with any phone.
    let mut busy = "SIP/2.0 486 Busy Here\r\n".to_owned();
    for name in ["Via", "From", "Call-ID", "CSeq"] {
        for value in header(&ring, name) {
            busy.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    busy.push_str(&format!(
        "To: {};tag=b1\r\nContent-Length: 0\r\n\r\n",
        header(&ring, "To")[0]
    ));
    phone.send(&busy);
    phone.until(|m| m.starts_with("ACK "));
    server.wait_metric(
        "amico_queue_waiting_callers{queue=\"comune\"}",
        |v| v == 1.0,
        Duration::from_secs(10),
    );

    // The WebSocket closes: the agent stays logged in for the grace period, then not.
    drop(phone);
    server.wait_logged_in(0);
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(
        log.contains("WebSocket closed: registration ended"),
        "{}",
        server.log_tail(20)
    );
}

/// The branch of a request's top Via: a retransmission keeps it, a new request has another
/// (RFC 3261 §17.1.3).
fn branch(request: &str) -> String {
    header(request, "Via")[0]
        .split(';')
        .find_map(|param| param.strip_prefix("branch="))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_probe_answered_only_when_retransmitted_keeps_the_phone_logged_in() {
    // The default probe_timeout: RFC 3261 Timer F, so the retransmissions count.
    let server = Server::start(&with_sip(
        &server::without_welcome(&server::config(1, "")),
        "probe_interval = 1",
    ));
    let phone = register_raw_agent(&server);
    server.wait_logged_in(1);
    let port = phone.local_addr().unwrap().port();

    // The probe and its first three retransmissions (Timer E: 0.5, 1.5 and 3.5 s after it)
    // are lost; the fourth (7.5 s) is answered, well within Timer F.
    let (first, _) = recv_until(&phone, |m| m.starts_with("OPTIONS "));
    let mut again = (String::new(), server.sip);
    for _ in 0..4 {
        again = recv_until(&phone, |m| {
            m.starts_with("OPTIONS ") && branch(m) == branch(&first)
        });
    }
    let (again, from) = again;
    phone
        .send_to(respond(&again, "200 OK", "p1", port, None).as_bytes(), from)
        .unwrap();
    // The next probe is a new transaction, and the agent is still there to get it.
    let (next, from) = recv_until(&phone, |m| {
        m.starts_with("OPTIONS ") && branch(m) != branch(&first)
    });
    phone
        .send_to(respond(&next, "200 OK", "p2", port, None).as_bytes(), from)
        .unwrap();
    let health: serde_json::Value = serde_json::from_str(&server.get("/health")).unwrap();
    assert_eq!(health["agents_logged_in"], 1, "{health}");
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(
        !log.contains("phone unreachable"),
        "{}",
        server.log_tail(20)
    );
}

#[test]
fn past_the_servers_call_limit_new_calls_get_503_and_calls_in_progress_go_on() {
    let server = Server::start(&with_sip(&server::config(1, ""), "max_calls = 1"));
    let trunk = Probe::new(&server);
    let invite = |call_id: &str| trunk_invite(&trunk, &server, call_id);
    trunk.send(&invite("o1"));
    let first = trunk.final_response();
    assert!(first.starts_with("SIP/2.0 200"), "{first}");
    let to = header(&first, "To")[0].to_owned();
    let in_dialog =
        |method: &str, cseq: u32| trunk_in_dialog(&trunk, &server, "o1", &to, method, cseq);
    trunk.send(&in_dialog("ACK", 1));
    server.wait_metric("amico_calls_active", |v| v == 1.0, Duration::from_secs(5));

    // The server is full: the next call is told to come back (RFC 3261 §21.5.4).
    trunk.send(&invite("o2"));
    let second = trunk.final_response();
    assert!(second.starts_with("SIP/2.0 503"), "{second}");
    assert_eq!(header(&second, "Retry-After"), ["5"], "{second}");
    assert_eq!(
        server.metric("amico_sip_refused_total{reason=\"overload\"}"),
        1.0
    );
    trunk.send(&in_dialog("BYE", 2));
    let bye = trunk.final_response();
    assert!(
        bye.starts_with("SIP/2.0 200"),
        "the call in progress is untouched: {bye}"
    );
    server.wait_metric("amico_calls_active", |v| v == 0.0, Duration::from_secs(5));
    trunk.send(&invite("o3"));
    let third = trunk.final_response();
    assert!(third.starts_with("SIP/2.0 200"), "room again: {third}");
}

/// A trunk's INVITE to number 100, with an SDP offer.
fn trunk_invite(trunk: &Probe, server: &Server, call_id: &str) -> String {
    trunk.request(
        "INVITE",
        &format!("sip:100@{}", server.sip),
        call_id,
        "Content-Type: application/sdp\r\n",
        SDP,
    )
}

/// A request of the trunk inside the dialog `call_id` that Amico answered with To `to`:
/// sequence number `cseq`, a branch of its own.
fn trunk_in_dialog(
    trunk: &Probe,
    server: &Server,
    call_id: &str,
    to: &str,
    method: &str,
    cseq: u32,
) -> String {
    trunk
        .request(
            method,
            &format!("sip:amico@{}", server.sip),
            call_id,
            "",
            "",
        )
        .replace(
            &format!("To: <sip:amico@{}>", server.sip),
            &format!("To: {to}"),
        )
        .replace(
            &format!("CSeq: 1 {method}"),
            &format!("CSeq: {cseq} {method}"),
        )
        .replace(
            &format!("branch=z9hG4bK-{call_id}"),
            &format!("branch=z9hG4bK-{call_id}-{method}"),
        )
}
