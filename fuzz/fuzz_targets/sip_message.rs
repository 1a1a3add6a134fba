//! A datagram on the SIP UDP port, as the edge takes it: the guard's first look
//! (`sniff`), the stack's parser, the 400/501 built for what is malformed, the strict
//! checks every parsed request passes, and a REGISTER's way through the registrar.
//!
//! Checked besides "no panic": every response we build is framed as SIP requires (CRLF
//! line ends only, no bare CR or LF or NUL inside a line: RFC 3261 §7, §25.1), so that
//! nothing reflected from the request can split or forge headers; and no REGISTER is
//! accepted without the password.

#![no_main]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use amico_sip::counters::count_start_line;
use amico_sip::digest::{Account, Algorithm, DigestAuth};
use amico_sip::registrar::{RegisterOutcome, RegisterRequest, Registrar};
use amico_sip::sniff::{Sniffed, reject_with, sniff};
use amico_sip::strict::{self, Limits};
use amico_sip::{RegistrarConfig, SipCounters, Transport};
use libfuzzer_sys::fuzz_target;
use rsipstack::sip::SipMessage;

fn registrar() -> &'static Registrar {
    static REGISTRAR: OnceLock<Registrar> = OnceLock::new();
    REGISTRAR.get_or_init(|| {
        let account = Account {
            password: "correct horse battery staple".into(),
            algorithms: None,
        };
        Registrar::new(
            HashMap::from([("anna".to_owned(), account)]),
            DigestAuth::new("amico", Duration::from_secs(300)),
            RegistrarConfig {
                algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
                ..RegistrarConfig::default()
            },
        )
    })
}

/// A response of ours: a head of CRLF-terminated lines, each free of CR, LF and NUL.
fn assert_framed(response: &[u8]) {
    let text = String::from_utf8_lossy(response);
    let head = text
        .strip_suffix("\r\n\r\n")
        .unwrap_or_else(|| panic!("response not terminated by an empty line: {text:?}"));
    for line in head.split("\r\n") {
        assert!(
            !line.contains(['\r', '\n', '\0']),
            "bare CR, LF or NUL inside a response line: {line:?}"
        );
    }
    assert!(head.starts_with("SIP/2.0 "), "not a status line: {head:?}");
}

fuzz_target!(|datagram: &[u8]| {
    let counters = SipCounters::default();
    // Keep-alives (RFC 5626 §4.4.1) go to the stack untouched, as in the guard.
    if datagram.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    // TCP and TLS bytes reach the parser without the guard: parse whatever comes.
    let parsed = SipMessage::try_from(datagram);
    let verdict = match sniff(datagram) {
        Sniffed::Pass => match &parsed {
            Ok(_) => Sniffed::Pass,
            Err(error) => reject_with(datagram, format!("Bad Request ({error})")),
        },
        other => other,
    };
    match verdict {
        Sniffed::Reject(rejection) => {
            assert!(matches!(rejection.status, 400 | 501 | 513));
            assert_framed(&rejection.to_bytes("5eed"));
        }
        Sniffed::Pass => count_start_line(&counters, datagram, false),
        Sniffed::Drop(_) => {}
    }

    let Ok(SipMessage::Request(request)) = parsed else {
        return;
    };
    for limits in [
        Limits::default(),
        Limits {
            max_headers: 4,
            max_header_length: 16,
            max_body: 8,
        },
    ] {
        if let Err(refusal) = strict::check(&request, &limits) {
            assert!(matches!(refusal.status, 400 | 513));
            let line = format!("SIP/2.0 {} {}\r\n\r\n", refusal.status, refusal.reason);
            assert_framed(line.as_bytes());
        }
    }
    // What the edge reads of a REGISTER, read the same way, then judged by the registrar.
    let Some(register) = RegisterRequest::from_request(&request) else {
        return;
    };
    let source: SocketAddr = "192.0.2.7:5060".parse().expect("an address");
    let outcome = registrar().register(
        &register,
        source,
        Transport::Udp,
        Instant::now().into(),
        1_800_000_000,
    );
    assert!(
        matches!(
            outcome,
            RegisterOutcome::Challenge { .. }
                | RegisterOutcome::Forbidden(_)
                | RegisterOutcome::BadRequest(_)
        ),
        "a REGISTER passed without the password: {outcome:?}"
    );
});
