//! A first look at every datagram before the SIP stack parses it: is it a request we can
//! answer, and if it is broken, what exactly is wrong?
//!
//! The stack (rsipstack) drops a message it cannot parse without a word. RFC 3261 wants
//! better: a request that is malformed but can still be answered gets a 400 whose reason
//! phrase says what is wrong (§8.2, §21.4.1), a request with a method nobody here knows
//! gets 501 (§21.5.2), and only what cannot be answered at all — no Via to send the
//! response to, not SIP — is dropped, and logged. This module reads just enough of a
//! message to decide that and to build the response.

/// The methods the stack can parse. A request with any other method is answered 501.
pub const KNOWN_METHODS: [&str; 14] = [
    "ACK",
    "BYE",
    "CANCEL",
    "INFO",
    "INVITE",
    "MESSAGE",
    "NOTIFY",
    "OPTIONS",
    "PRACK",
    "PUBLISH",
    "REFER",
    "REGISTER",
    "SUBSCRIBE",
    "UPDATE",
];

/// What a first look at a datagram found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sniffed {
    /// Looks like a well-formed request or response: hand it to the stack.
    Pass,
    /// A request to answer at once with this status, reason phrase and the headers needed
    /// to route the response (RFC 3261 §8.2.6.2).
    Reject(Rejection),
    /// Cannot be answered (not SIP, a broken response, no Via): drop it.
    Drop(&'static str),
}

/// A response to build for a request the stack would drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 400, 501 or 513.
    pub status: u16,
    /// The reason phrase, naming the problem.
    pub reason: String,
    /// The request's method, for logs and counters.
    pub method: String,
    /// Via, From, To, Call-ID and CSeq as received, in order.
    pub headers: Vec<(String, String)>,
}

impl Rejection {
    /// The response, ready to send (RFC 3261 §8.2.6.2: Via, From, To, Call-ID and CSeq
    /// copied; a To tag added; no body).
    pub fn to_bytes(&self, to_tag: &str) -> Vec<u8> {
        let mut out = format!("SIP/2.0 {} {}\r\n", self.status, one_line(&self.reason));
        for (name, value) in &self.headers {
            let value = one_line(value);
            if name.eq_ignore_ascii_case("to") && !value.to_ascii_lowercase().contains(";tag=") {
                out.push_str(&format!("To: {value};tag={to_tag}\r\n"));
            } else {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        if self.status == 501 || self.status == 405 {
            out.push_str(&format!("Allow: {}\r\n", crate::ALLOWED_METHODS.join(", ")));
        }
        out.push_str("Content-Length: 0\r\n\r\n");
        out.into_bytes()
    }
}

/// Text copied from a request into a response line, with CR, LF and NUL made spaces: a
/// request can carry a bare CR inside a line, and copied back it would end or split the
/// line at the peer (RFC 3261 §7.3.1, §25.1: CR and LF only end lines).
pub(crate) fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains(['\r', '\n', '\0']) {
        text.replace(['\r', '\n', '\0'], " ").into()
    } else {
        text.into()
    }
}

/// The full names of the compact header forms (RFC 3261 §7.3.3) that matter here.
fn full_name(name: &str) -> &str {
    match name {
        "v" | "V" => "Via",
        "f" | "F" => "From",
        "t" | "T" => "To",
        "i" | "I" => "Call-ID",
        "l" | "L" => "Content-Length",
        _ => name,
    }
}

/// Takes a first look at a datagram.
pub fn sniff(datagram: &[u8]) -> Sniffed {
    let Ok(text) = std::str::from_utf8(datagram) else {
        return match datagram.windows(7).position(|w| w == b"SIP/2.0") {
            Some(_) => sniff_lossy(datagram),
            None => Sniffed::Drop("not SIP: not UTF-8 and no SIP/2.0"),
        };
    };
    sniff_text(text)
}

fn sniff_lossy(datagram: &[u8]) -> Sniffed {
    let text = String::from_utf8_lossy(datagram);
    match sniff_text(&text) {
        Sniffed::Pass => Sniffed::Drop("invalid UTF-8 in a message"),
        other => other,
    }
}

fn sniff_text(text: &str) -> Sniffed {
    let text = text.trim_start_matches(['\r', '\n']);
    let (head, body_len, complete_head) = match text.find("\r\n\r\n") {
        Some(end) => (&text[..end], text.len() - end - 4, true),
        None => match text.find("\n\n") {
            Some(end) => (&text[..end], text.len() - end - 2, true),
            None => (text, 0, false),
        },
    };
    let mut lines = head.split('\n').map(|line| line.trim_end_matches('\r'));
    let start = lines.next().unwrap_or_default();
    let parts: Vec<&str> = start.splitn(3, ' ').collect();
    if start.starts_with("SIP/") {
        // A response we cannot take is dropped: responses are never answered.
        return if complete_head {
            Sniffed::Pass
        } else {
            Sniffed::Drop("truncated response")
        };
    }
    if parts.len() != 3 || parts[2] != "SIP/2.0" || !is_token(parts[0]) {
        return Sniffed::Drop("not SIP: no request line");
    }
    let method = parts[0].to_owned();

    // Headers, with folded continuation lines joined (RFC 3261 §7.3.1).
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut bare_cr = false;
    for line in lines {
        if line.is_empty() {
            continue;
        }
        // RFC 3261 §25.1: CR only ends a line. A bare one (or a NUL) inside a header would
        // split the line wherever the stack copies it back, even in the 481 it sends to a
        // stray CANCEL before Amico sees the request: refused below, once the headers
        // that route the answer are read.
        bare_cr |= line.contains(['\r', '\0']);
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        match line.split_once(':') {
            Some((name, value)) => {
                headers.push((full_name(name.trim()).to_owned(), value.trim().to_owned()))
            }
            None => {
                let routing = routing_headers(&headers);
                return reject_or_drop(
                    400,
                    format!("Bad Request (malformed header line: {line})"),
                    method,
                    routing,
                );
            }
        }
    }
    let routing = routing_headers(&headers);
    if bare_cr {
        return reject_or_drop(
            400,
            "Bad Request (a CR or NUL inside a header line)".into(),
            method,
            routing,
        );
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };

    if !KNOWN_METHODS.contains(&method.as_str()) {
        return reject_or_drop(501, "Not Implemented".into(), method, routing);
    }
    if method == "ACK" {
        // An ACK is never answered (RFC 3261 §17.2.1); let the stack judge it.
        return if complete_head {
            Sniffed::Pass
        } else {
            Sniffed::Drop("truncated ACK")
        };
    }
    if !complete_head {
        return reject_or_drop(
            400,
            "Bad Request (truncated: headers not terminated)".into(),
            method,
            routing,
        );
    }
    for mandatory in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if find(mandatory).is_none_or(str::is_empty) {
            return reject_or_drop(
                400,
                format!("Bad Request (missing {mandatory})"),
                method,
                routing,
            );
        }
    }
    let cseq = find("CSeq").unwrap_or_default();
    let mut cseq_parts = cseq.split_whitespace();
    let number_ok = cseq_parts.next().is_some_and(|n| n.parse::<u32>().is_ok());
    if !number_ok || cseq_parts.next() != Some(method.as_str()) {
        return reject_or_drop(
            400,
            format!("Bad Request (CSeq '{cseq}' does not match the request)"),
            method,
            routing,
        );
    }
    if let Some(length) = find("Content-Length") {
        match length.parse::<usize>() {
            // RFC 3261 §18.3: over UDP a body shorter than Content-Length is an error.
            Ok(length) if length > body_len => {
                return reject_or_drop(
                    400,
                    format!("Bad Request (Content-Length {length} but {body_len} bytes of body)"),
                    method,
                    routing,
                );
            }
            Ok(_) => {}
            Err(_) => {
                return reject_or_drop(
                    400,
                    format!("Bad Request (Content-Length '{length}')"),
                    method,
                    routing,
                );
            }
        }
    }
    Sniffed::Pass
}

/// A 400 with `reason` for a request that passed [`sniff`] but that the stack cannot parse;
/// a drop if it cannot be answered.
pub fn reject_with(datagram: &[u8], reason: String) -> Sniffed {
    reject_with_status(datagram, 400, reason)
}

/// A `status` with `reason` for a request that will not be taken as it is (400: the stack
/// cannot parse it; 513: it is too large); a drop if it cannot be answered (a response,
/// an ACK, no Via).
pub fn reject_with_status(datagram: &[u8], status: u16, reason: String) -> Sniffed {
    let text = String::from_utf8_lossy(datagram);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.lines();
    let start = lines.next().unwrap_or_default();
    if start.starts_with("SIP/") {
        return Sniffed::Drop("a response the stack cannot parse");
    }
    let method = start.split(' ').next().unwrap_or_default().to_owned();
    if method == "ACK" {
        return Sniffed::Drop("an ACK the stack cannot parse");
    }
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (full_name(name.trim()).to_owned(), value.trim().to_owned()))
        .collect();
    reject_or_drop(status, reason, method, routing_headers(&headers))
}

fn is_token(word: &str) -> bool {
    !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

fn routing_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| {
            ["Via", "From", "To", "Call-ID", "CSeq"]
                .iter()
                .any(|h| h.eq_ignore_ascii_case(name))
        })
        .cloned()
        .collect()
}

/// A response can only be routed back with a Via (RFC 3261 §18.2.2); without one, drop.
fn reject_or_drop(
    status: u16,
    reason: String,
    method: String,
    headers: Vec<(String, String)>,
) -> Sniffed {
    if headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("via"))
    {
        Sniffed::Reject(Rejection {
            status,
            reason,
            method,
            headers,
        })
    } else {
        Sniffed::Drop("malformed request without a Via: cannot be answered")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &str = "OPTIONS sip:amico@127.0.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:probe@127.0.0.1>;tag=a\r\n\
        To: <sip:amico@127.0.0.1>\r\n\
        Call-ID: c1@127.0.0.1\r\n\
        CSeq: 1 OPTIONS\r\n\
        Content-Length: 0\r\n\r\n";

    fn rejection(sniffed: Sniffed) -> Rejection {
        match sniffed {
            Sniffed::Reject(rejection) => rejection,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn a_well_formed_request_passes() {
        assert_eq!(sniff(OPTIONS.as_bytes()), Sniffed::Pass);
        // Compact forms and folding are fine.
        let compact = OPTIONS
            .replace("Via:", "v:")
            .replace("From:", "f:")
            .replace("Call-ID: c1@127.0.0.1", "i:\r\n c1@127.0.0.1");
        assert_eq!(sniff(compact.as_bytes()), Sniffed::Pass);
    }

    #[test]
    fn garbage_is_dropped() {
        assert_eq!(
            sniff(b"\xff\xfe\x00garbage"),
            Sniffed::Drop("not SIP: not UTF-8 and no SIP/2.0")
        );
        assert_eq!(
            sniff(b"\x00\x01\x02garbage"),
            Sniffed::Drop("not SIP: no request line")
        );
        assert_eq!(
            sniff(b"hello world"),
            Sniffed::Drop("not SIP: no request line")
        );
        assert_eq!(sniff(b""), Sniffed::Drop("not SIP: no request line"));
    }

    #[test]
    fn a_truncated_invite_gets_400_naming_the_problem() {
        let invite = "INVITE sip:0521@127.0.0.1 SIP/2.0\r\n\
            Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-2\r\n\
            From: <sip:+39055@127.0.0.1>;tag=b\r\n\
            To: <sip:0521@127.0.0.1>\r\n\
            Call-ID: c2@127.0.0.1\r\n\
            CSeq: 1 INVITE\r\n\
            Content-Type: application/sdp\r\n\
            Content-Length: 300\r\n\r\nv=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n";
        let r = rejection(sniff(invite.as_bytes()));
        assert_eq!(r.status, 400);
        assert_eq!(
            r.reason,
            "Bad Request (Content-Length 300 but 31 bytes of body)"
        );
        let cut = &invite[..invite.find("CSeq").unwrap()];
        let r = rejection(sniff(cut.as_bytes()));
        assert_eq!(r.reason, "Bad Request (truncated: headers not terminated)");
        let response = String::from_utf8(r.to_bytes("t1")).unwrap();
        assert!(
            response.starts_with("SIP/2.0 400 Bad Request (truncated: headers not terminated)\r\n")
        );
        assert!(response.contains("Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-2\r\n"));
        assert!(response.contains("To: <sip:0521@127.0.0.1>;tag=t1\r\n"));
        assert!(response.ends_with("Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn missing_headers_and_bad_cseq_are_named() {
        let r = rejection(sniff(
            OPTIONS.replace("Call-ID: c1@127.0.0.1\r\n", "").as_bytes(),
        ));
        assert_eq!(r.reason, "Bad Request (missing Call-ID)");
        let r = rejection(sniff(
            OPTIONS
                .replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE")
                .as_bytes(),
        ));
        assert_eq!(
            r.reason,
            "Bad Request (CSeq '1 INVITE' does not match the request)"
        );
        let r = rejection(sniff(
            OPTIONS
                .replace("Max-Forwards: 70", "Max-Forwards 70")
                .as_bytes(),
        ));
        assert_eq!(
            r.reason,
            "Bad Request (malformed header line: Max-Forwards 70)"
        );
        // Without a Via nothing can be answered.
        assert!(matches!(
            sniff(
                OPTIONS
                    .replace("Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n", "")
                    .as_bytes()
            ),
            Sniffed::Drop(_)
        ));
    }

    #[test]
    fn a_bare_cr_inside_a_header_line_is_refused_before_the_stack_copies_it() {
        let evil = OPTIONS.replace("Max-Forwards: 70", "Max-Forwards: 70\rSIP/2.0 200 OK");
        let r = rejection(sniff(evil.as_bytes()));
        assert_eq!(
            (r.status, r.reason.as_str()),
            (400, "Bad Request (a CR or NUL inside a header line)")
        );
    }

    #[test]
    fn an_unknown_method_gets_501_with_allow() {
        let foo = OPTIONS
            .replace("OPTIONS sip", "FOO sip")
            .replace("1 OPTIONS", "1 FOO");
        let r = rejection(sniff(foo.as_bytes()));
        assert_eq!(
            (r.status, r.reason.as_str(), r.method.as_str()),
            (501, "Not Implemented", "FOO")
        );
        let response = String::from_utf8(r.to_bytes("x")).unwrap();
        assert!(response.contains("\r\nAllow: "), "{response}");
    }

    #[test]
    fn nothing_copied_back_splits_a_response_line() {
        // Found by the fuzz target sip_message (minimised): a bare CR inside the Via was
        // copied into the 501, where a peer would read it as the end of the line.
        // The bare CR is now refused as such (400), and the Via copied into the refusal
        // loses it.
        let r = rejection(sniff(b"I  SIP/2.0\nV:a\rn"));
        assert_eq!((r.status, r.headers[0].1.as_str()), (400, "a\rn"));
        let response = String::from_utf8(r.to_bytes("x")).unwrap();
        assert_eq!(
            response,
            "SIP/2.0 400 Bad Request (a CR or NUL inside a header line)\r\nVia: a n\r\nContent-Length: 0\r\n\r\n"
        );
        let bad = OPTIONS.replace("Max-Forwards: 70", "Max-Forwards 70\r\0x");
        let response = String::from_utf8(rejection(sniff(bad.as_bytes())).to_bytes("x")).unwrap();
        let head = response.strip_suffix("\r\n\r\n").unwrap();
        assert!(
            head.split("\r\n")
                .all(|line| !line.contains(['\r', '\n', '\0'])),
            "{response:?}"
        );
    }
}
