//! An SDP body from a trunk's INVITE or an agent phone's answer: parsed, answered and
//! accepted as the call flow does.
//!
//! Checked besides "no panic", whenever we answer an offer:
//! - our answer is well-formed text (RFC 4566 §5, §9: CRLF line ends, no NUL, CR or LF
//!   inside a line), so nothing reflected from the offer can add lines;
//! - it parses, keeps one `m=` line per offered line (RFC 3264 §6), and read back as an
//!   answer it says what we chose: the codec and its payload type, the telephone-event
//!   payload type, our address, the mirrored direction.

#![no_main]

use std::net::SocketAddr;

use amico_media::sdp::{self, SdpSession};
use amico_media::{Codec, RemoteMedia};
use libfuzzer_sys::fuzz_target;

fn assert_well_formed(body: &str) {
    let lines = body
        .strip_suffix("\r\n")
        .unwrap_or_else(|| panic!("SDP not ending in CRLF: {body:?}"));
    for line in lines.split("\r\n") {
        assert!(
            !line.contains(['\r', '\n', '\0']),
            "NUL, CR or LF inside an SDP line: {line:?}"
        );
        assert!(
            line.as_bytes().get(1) == Some(&b'='),
            "not a <type>=<value> line: {line:?}"
        );
    }
}

fn check_answer(offer: &sdp::SessionDescription, local: SocketAddr, supported: &[Codec]) {
    let session = SdpSession::new(7);
    let Ok((body, remote)) = sdp::answer(offer, local, supported, &session) else {
        return;
    };
    let remote: RemoteMedia = remote;
    assert!(supported.contains(&remote.format.codec));
    assert_well_formed(&body);
    let parsed = sdp::parse(&body).unwrap_or_else(|e| panic!("our answer {body:?}: {e}"));
    assert_eq!(parsed.media().len(), offer.media().len(), "{body:?}");
    let back = sdp::accept_answer(&parsed, &[remote.format.codec])
        .unwrap_or_else(|e| panic!("our answer {body:?} read back: {e}"));
    assert_eq!(back.format, remote.format, "{body:?}");
    assert_eq!(back.addr, local, "{body:?}");
    assert_eq!(back.direction, remote.direction.mirrored(), "{body:?}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(description) = sdp::parse(text) else {
        return;
    };
    // Everything the call flow reads.
    let _ = (
        description.connection_address(),
        description.audio_port(),
        description
            .payload_formats()
            .iter()
            .map(|f| (f.codec(), f.is_telephone_event()))
            .count(),
        description.direction(),
        description.is_rtp_avp(),
        description.origin_session_id(),
        description.origin_version(),
        description.audio().addr(),
    );
    let v4: SocketAddr = "203.0.113.7:30000".parse().expect("an address");
    let v6: SocketAddr = "[2001:db8::7]:30002".parse().expect("an address");
    for (local, supported) in [
        (v4, &[Codec::Pcmu, Codec::Pcma][..]),
        (v6, &[Codec::Pcma][..]),
    ] {
        check_answer(&description, local, supported);
    }
    // Read as a phone's answer to our offer.
    for offered in [&[][..], &[Codec::Pcmu][..]] {
        if let Ok(remote) = sdp::accept_answer(&description, offered) {
            let offered = if offered.is_empty() {
                &[Codec::Pcmu, Codec::Pcma][..]
            } else {
                offered
            };
            assert!(offered.contains(&remote.format.codec));
        }
    }
});
