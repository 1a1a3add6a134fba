//! An `Authorization` header value, as a phone or an attacker sends it: parsed, then
//! judged by the digest authenticator.
//!
//! `$NONCE` in the input stands for a nonce the authenticator really issued for this
//! request, and `response="$RESPONSE"` for the right response computed with the user's
//! password (RFC 7616 §3.4.1), so that the fuzzer reaches the paths behind a valid nonce
//! and a right answer: nonce counts, replays, algorithms.
//!
//! Checked besides "no panic":
//! - nothing is accepted without the right response, for a user that does not exist, or
//!   from another socket than the nonce was issued to;
//! - the same credentials are never accepted twice (RFC 7616 §3.4: replays);
//! - parsing is stable: the credentials written back as a header parse to themselves.

#![no_main]

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use amico_sip::digest::{Account, Algorithm, Credentials, DigestAuth, Scope, Verdict};
use libfuzzer_sys::fuzz_target;
use md5::Md5;
use sha2::{Digest, Sha256};

const PASSWORD: &str = "correct horse battery staple";
const NOW: u64 = 1_800_000_000;

fn hash(algorithm: Algorithm, data: &str) -> String {
    match algorithm {
        Algorithm::Md5 => hex::encode(Md5::digest(data.as_bytes())),
        Algorithm::Sha256 => hex::encode(Sha256::digest(data.as_bytes())),
    }
}

/// The right response for these credentials (RFC 7616 §3.4.1), if they name an algorithm
/// we implement and, with qop, carry nc and cnonce.
fn right_response(c: &Credentials, method: &str) -> Option<String> {
    let algorithm = match c.algorithm.as_deref() {
        None => Algorithm::Md5,
        Some(name) => Algorithm::parse(name)?,
    };
    let ha1 = hash(algorithm, &format!("{}:{}:{PASSWORD}", c.username, c.realm));
    let ha2 = hash(algorithm, &format!("{method}:{}", c.uri));
    let data = match &c.qop {
        Some(qop) => format!(
            "{ha1}:{}:{}:{}:{qop}:{ha2}",
            c.nonce,
            c.nc.as_deref()?,
            c.cnonce.as_deref()?
        ),
        None => format!("{ha1}:{}:{ha2}", c.nonce),
    };
    Some(hash(algorithm, &data))
}

/// The credentials written back as a header, every value quoted.
fn render(c: &Credentials) -> String {
    let quote = |value: &str| value.replace('\\', "\\\\").replace('"', "\\\"");
    let mut header = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\"",
        quote(&c.username),
        quote(&c.realm),
        quote(&c.nonce),
        quote(&c.uri),
        quote(&c.response)
    );
    for (name, value) in [
        ("algorithm", &c.algorithm),
        ("cnonce", &c.cnonce),
        ("nc", &c.nc),
        ("qop", &c.qop),
    ] {
        if let Some(value) = value {
            let _ = write!(header, ", {name}=\"{}\"", quote(value));
        }
    }
    header
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Algorithm::parse(text);
    let auth = DigestAuth::new("amico", Duration::from_secs(300));
    let source: SocketAddr = "192.0.2.7:5060".parse().expect("an address");
    let scope = Scope {
        source,
        method: "REGISTER",
        user: "anna",
    };
    let header = text.replace("$NONCE", &auth.nonce(NOW, &scope));
    let Some(mut credentials) = Credentials::parse(&header) else {
        return;
    };
    assert_eq!(
        Credentials::parse(&render(&credentials)).as_ref(),
        Some(&credentials),
        "written back, the credentials parse differently"
    );
    let computed = credentials.response == "$RESPONSE";
    if computed && let Some(response) = right_response(&credentials, "REGISTER") {
        credentials.response = response;
    }
    let account = Account {
        password: PASSWORD.into(),
        algorithms: None,
    };
    let algorithms = [Algorithm::Sha256, Algorithm::Md5];
    let stranger = auth.check(Some(&credentials), &scope, None, &algorithms, NOW);
    assert_ne!(stranger, Verdict::Accepted, "a user that does not exist");
    let elsewhere = Scope {
        source: "192.0.2.8:5060".parse().expect("an address"),
        ..scope
    };
    let moved = auth.check(
        Some(&credentials),
        &elsewhere,
        Some(&account),
        &algorithms,
        NOW,
    );
    assert_ne!(moved, Verdict::Accepted, "a nonce used from another socket");
    let first = auth.check(Some(&credentials), &scope, Some(&account), &algorithms, NOW);
    if !computed {
        assert_ne!(first, Verdict::Accepted, "accepted without the password");
    }
    let again = auth.check(
        Some(&credentials),
        &scope,
        Some(&account),
        &algorithms,
        NOW + 1,
    );
    if first == Verdict::Accepted {
        assert_ne!(
            again,
            Verdict::Accepted,
            "the same credentials accepted twice"
        );
    }
    auth.sweep(NOW + 1);
});
