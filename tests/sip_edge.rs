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
    phone
        .send_to(
            respond(&ring, "200 OK", "a1", phone_port, Some(&agent_answer)).as_bytes(),
            from,
        )
        .unwrap();
    recv_until(&phone, |m| m.starts_with("ACK "));

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
}

#[test]
fn legs_that_fall_silent_are_ended_and_the_acd_is_told() {
    let config = server::config(1, "ring_timeout = 15").replace("timeout = 20", "timeout = 1.5");
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
