//! Strict, bounded checks of a parsed request, whatever transport it came over: what the
//! stack's parser accepts but RFC 3261 does not, and what is larger than Amico takes.
//!
//! - A header that allows only one value (RFC 3261 §7.3.1: it is not a comma-separated
//!   list) present twice: 400 naming it. Two `From`s or two `CSeq`s make the dialog's
//!   identity ambiguous.
//! - An INVITE without exactly one Contact URI (§8.1.1.8): 400 naming Contact.
//! - More headers, a longer header value or a larger body than [`Limits`]: 400 or 513
//!   (§21.5.14) saying which limit and what was seen.
//!
//! Datagrams too large to read at all are answered by the UDP guard (`513`), and bytes
//! that do not parse by [`crate::sniff`].

use rsipstack::sip::{Header, Method, Request};

/// Bounds on what one request may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Header fields.
    pub max_headers: usize,
    /// Bytes of one header field's value.
    pub max_header_length: usize,
    /// Bytes of body.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_headers: 100,
            max_header_length: 4096,
            max_body: 16 * 1024,
        }
    }
}

/// A request refused: the status and a reason phrase that names the problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// 400 or 513.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
}

impl Refusal {
    fn bad(reason: String) -> Refusal {
        Refusal {
            status: 400,
            // Whatever it copies from the request has passed through `quoted`.
            reason: format!("Bad Request ({reason})"),
        }
    }
}

/// What a reason phrase may quote of a request: at most 64 characters, none of them a
/// control character (RFC 3261 §25.1: a Reason-Phrase holds no CR or LF).
fn quoted(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().nth(64).is_some() {
        out.push('…');
    }
    out
}

/// Headers that carry a single value (RFC 3261 §7.3.1 and the grammar of §25.1: none of
/// them is a comma-separated list).
const SINGLE: [&str; 10] = [
    "Call-ID",
    "CSeq",
    "From",
    "To",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
    "Expires",
    "Min-Expires",
    "Date",
];

/// Checks a request before anything acts on it.
pub fn check(request: &Request, limits: &Limits) -> Result<(), Refusal> {
    let headers = &request.headers;
    if headers.len() > limits.max_headers {
        return Err(Refusal::bad(format!(
            "{} header fields, at most {}",
            headers.len(),
            limits.max_headers
        )));
    }
    for header in headers.iter() {
        let value = header.value();
        if value.len() > limits.max_header_length {
            return Err(Refusal::bad(format!(
                "{} is {} bytes long, at most {}",
                quoted(header.name()),
                value.len(),
                limits.max_header_length
            )));
        }
        // RFC 3261 §25.1: CR and LF only end lines (folding aside, which the parser has
        // undone). One left inside a value would split the line wherever it is copied
        // back (Via, From, To, Call-ID in every response), and NUL ends C strings.
        if value.contains(['\r', '\n', '\0']) {
            return Err(Refusal::bad(format!(
                "{} holds a CR, LF or NUL",
                quoted(header.name())
            )));
        }
    }
    for name in SINGLE {
        let count = headers
            .iter()
            .filter(|h| h.name().eq_ignore_ascii_case(name))
            .count();
        if count > 1 {
            return Err(Refusal::bad(format!(
                "{count} {name} headers, only one allowed"
            )));
        }
    }
    if request.body.len() > limits.max_body {
        return Err(Refusal {
            status: 513,
            reason: format!(
                "Message Too Large (a body of {} bytes, at most {})",
                request.body.len(),
                limits.max_body
            ),
        });
    }
    if request.method == Method::Invite {
        // RFC 3261 §8.1.1.8: a request that can establish a dialog carries exactly one
        // SIP or SIPS URI in its Contact.
        let contacts: Vec<String> = headers
            .iter()
            .filter_map(|h| match h {
                Header::Contact(contact) => Some(contact.value()),
                _ => None,
            })
            .flat_map(crate::registrar::split_contacts)
            .map(|contact| contact.uri)
            .collect();
        match contacts.as_slice() {
            [] => return Err(Refusal::bad("missing Contact".into())),
            [uri] if uri.starts_with("sip:") || uri.starts_with("sips:") => {}
            [uri] => {
                return Err(Refusal::bad(format!(
                    "Contact '{}' is not a SIP or SIPS URI",
                    quoted(uri)
                )));
            }
            more => {
                return Err(Refusal::bad(format!(
                    "{} Contact URIs, an INVITE has one",
                    more.len()
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:100@127.0.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:caller@127.0.0.1>;tag=a\r\n\
        To: <sip:100@127.0.0.1>\r\n\
        Call-ID: c1@127.0.0.1\r\n\
        CSeq: 1 INVITE\r\n\
        Contact: <sip:caller@127.0.0.1:5070>\r\n\
        Content-Length: 0\r\n\r\n";

    fn parse(text: &str) -> Request {
        match rsipstack::sip::SipMessage::try_from(text).expect("parses") {
            rsipstack::sip::SipMessage::Request(request) => request,
            other => panic!("not a request: {other:?}"),
        }
    }

    fn refusal(text: &str) -> Refusal {
        check(&parse(text), &Limits::default()).expect_err("refused")
    }

    #[test]
    fn a_plain_invite_passes() {
        assert_eq!(check(&parse(INVITE), &Limits::default()), Ok(()));
        let compact = INVITE.replace("Contact:", "m:").replace("From:", "f:");
        assert_eq!(check(&parse(&compact), &Limits::default()), Ok(()));
    }

    #[test]
    fn a_second_single_valued_header_is_named() {
        for (header, line) in [
            ("CSeq", "CSeq: 2 INVITE\r\n"),
            ("Call-ID", "Call-ID: other@127.0.0.1\r\n"),
            ("From", "From: <sip:mallory@127.0.0.1>;tag=b\r\n"),
            ("From", "f: <sip:mallory@127.0.0.1>;tag=b\r\n"),
            ("To", "To: <sip:101@127.0.0.1>\r\n"),
        ] {
            let twice = INVITE.replace("Content-Length", &format!("{line}Content-Length"));
            assert_eq!(
                refusal(&twice),
                Refusal {
                    status: 400,
                    reason: format!("Bad Request (2 {header} headers, only one allowed)")
                }
            );
        }
        // Headers that are lists may repeat.
        let vias = INVITE.replace(
            "Max-Forwards",
            "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-2\r\nMax-Forwards",
        );
        assert_eq!(check(&parse(&vias), &Limits::default()), Ok(()));
    }

    #[test]
    fn an_invite_needs_one_contact() {
        let without = INVITE.replace("Contact: <sip:caller@127.0.0.1:5070>\r\n", "");
        assert_eq!(refusal(&without).reason, "Bad Request (missing Contact)");
        let two = INVITE.replace(
            "Contact: <sip:caller@127.0.0.1:5070>",
            "Contact: <sip:a@127.0.0.1>, <sip:b@127.0.0.1>",
        );
        assert_eq!(
            refusal(&two).reason,
            "Bad Request (2 Contact URIs, an INVITE has one)"
        );
        // Other methods may go without.
        let options = without
            .replace("INVITE sip", "OPTIONS sip")
            .replace("1 INVITE", "1 OPTIONS");
        assert_eq!(check(&parse(&options), &Limits::default()), Ok(()));
    }

    #[test]
    fn nothing_the_request_holds_can_split_a_response_line() {
        // Found by the fuzz target sip_message: a Contact holding NULs was quoted whole
        // into the reason phrase.
        let nul = INVITE.replace(
            "Contact: <sip:caller@127.0.0.1:5070>",
            &format!("Contact: <tel:{}>", "\0".repeat(100)),
        );
        let refusal = refusal(&nul);
        assert!(
            !refusal.reason.contains(['\r', '\n', '\0']) && refusal.reason.len() < 120,
            "{:?}",
            refusal.reason
        );
        let mut request = parse(INVITE);
        request
            .headers
            .push(Header::Other("X-Evil".into(), "a\rSIP/2.0 200 OK".into()));
        assert_eq!(
            check(&request, &Limits::default()),
            Err(Refusal {
                status: 400,
                reason: "Bad Request (X-Evil holds a CR, LF or NUL)".into()
            })
        );
    }

    #[test]
    fn limits_are_named() {
        let many: String = (0..101).map(|i| format!("X-H{i}: v\r\n")).collect();
        let crowded = INVITE.replace("Content-Length", &format!("{many}Content-Length"));
        assert_eq!(
            refusal(&crowded).reason,
            "Bad Request (109 header fields, at most 100)"
        );
        let long = INVITE.replace(
            "Content-Length",
            &format!("Subject: {}\r\nContent-Length", "x".repeat(5000)),
        );
        assert_eq!(
            refusal(&long).reason,
            "Bad Request (Subject is 5000 bytes long, at most 4096)"
        );
        let body = "v".repeat(20_000);
        let big = INVITE.replace(
            "Content-Length: 0\r\n\r\n",
            &format!("Content-Length: {}\r\n\r\n{body}", body.len()),
        );
        assert_eq!(
            refusal(&big),
            Refusal {
                status: 513,
                reason: "Message Too Large (a body of 20000 bytes, at most 16384)".into()
            }
        );
    }

    #[test]
    fn a_reason_naming_the_request_stays_one_line() {
        // Found by the fuzz target sip_message (minimised): the Contact named in the reason
        // phrase carried a NUL into the status line. Now the NUL itself is refused, and
        // the reason names the header without copying it.
        let request = match rsipstack::sip::SipMessage::try_from(
            &b"INVITE 3 SIP/2\nContact:\0\r\n\r\n"[..],
        ) {
            Ok(rsipstack::sip::SipMessage::Request(request)) => request,
            other => panic!("not a request: {other:?}"),
        };
        let refusal = check(&request, &Limits::default()).expect_err("refused");
        assert_eq!(
            (refusal.status, refusal.reason.as_str()),
            (400, "Bad Request (Contact holds a CR, LF or NUL)")
        );
    }
}
