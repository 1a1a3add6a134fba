//! Just enough SIP text for a load generator: parse a datagram into a start line, header
//! fields and a body, read the few fields a user agent needs, and print responses.
//!
//! It is lenient where a peer may differ (compact header names, folded lines, header
//! names in any case, RFC 3261 §7.3) and never panics on bad input: what it cannot read
//! is `None`, and the caller drops the datagram.

use std::net::SocketAddr;

use tokio::time::Instant;

/// The start line of a SIP message (RFC 3261 §7.1, §7.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum First {
    /// A request: its method and Request-URI.
    Request { method: String, uri: String },
    /// A response: its status code.
    Response { code: u16 },
}

/// One SIP message as received.
#[derive(Clone, Debug)]
pub(crate) struct Message {
    /// The start line.
    pub(crate) first: First,
    /// The header fields in order, names as written.
    headers: Vec<(String, String)>,
    /// The body (an SDP, or empty).
    pub(crate) body: String,
    /// Where it came from.
    pub(crate) source: SocketAddr,
    /// When the socket's reader took it: what latencies are measured to, so that they
    /// hold no task's wait for its turn.
    pub(crate) received: Instant,
}

/// The full name of a compact header name (RFC 3261 §7.3.3), lower case.
fn full_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "i" => "call-id".into(),
        "f" => "from".into(),
        "t" => "to".into(),
        "v" => "via".into(),
        "m" => "contact".into(),
        "l" => "content-length".into(),
        "c" => "content-type".into(),
        "k" => "supported".into(),
        _ => lower,
    }
}

impl Message {
    /// Parses one datagram; `None` when it is not a SIP message.
    pub(crate) fn parse(bytes: &[u8], source: SocketAddr) -> Option<Message> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (head, rest) = text.split_once("\r\n\r\n")?;
        let mut lines = head.split("\r\n");
        let start = lines.next()?;
        let first = if let Some(rest) = start.strip_prefix("SIP/2.0 ") {
            let code = rest.get(..3)?.parse().ok()?;
            First::Response { code }
        } else {
            let mut parts = start.split(' ');
            let (method, uri, version) = (parts.next()?, parts.next()?, parts.next()?);
            if version != "SIP/2.0" || method.is_empty() {
                return None;
            }
            First::Request {
                method: method.to_owned(),
                uri: uri.to_owned(),
            }
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                // RFC 3261 §7.3.1: a folded line continues the previous value.
                let (_, value) = headers.last_mut()?;
                value.push(' ');
                value.push_str(line.trim());
                continue;
            }
            let (name, value) = line.split_once(':')?;
            headers.push((full_name(name.trim()), value.trim().to_owned()));
        }
        // RFC 3261 §18.3: over UDP, the body ends at Content-Length (the rest is dropped).
        let length = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .and_then(|(_, value)| value.parse::<usize>().ok())
            .unwrap_or(rest.len());
        let body = rest.get(..length.min(rest.len()))?.to_owned();
        Some(Message {
            first,
            headers,
            body,
            source,
            received: Instant::now(),
        })
    }

    /// The first value of a header (any case, compact or full name).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let name = full_name(name);
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, in order.
    pub(crate) fn headers<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let name = full_name(name);
        self.headers
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The Call-ID.
    pub(crate) fn call_id(&self) -> Option<&str> {
        self.header("call-id")
    }

    /// The CSeq number and method.
    pub(crate) fn cseq(&self) -> Option<(u32, &str)> {
        let (number, method) = self.header("cseq")?.split_once(' ')?;
        Some((number.trim().parse().ok()?, method.trim()))
    }

    /// The method of a request.
    pub(crate) fn method(&self) -> Option<&str> {
        match &self.first {
            First::Request { method, .. } => Some(method),
            First::Response { .. } => None,
        }
    }

    /// The status code of a response.
    pub(crate) fn code(&self) -> Option<u16> {
        match self.first {
            First::Response { code } => Some(code),
            First::Request { .. } => None,
        }
    }

    /// Whether this is a response to our request `method` with CSeq `number`.
    pub(crate) fn answers(&self, number: u32, method: &str) -> bool {
        self.code().is_some() && self.cseq() == Some((number, method))
    }

    /// A response to this request (RFC 3261 §8.2.6.2): Via, From, Call-ID and CSeq
    /// copied, To copied with `to_tag` added when it has none, then `extra` header lines
    /// (each ending in CRLF) and the body.
    pub(crate) fn response(
        &self,
        code: u16,
        reason: &str,
        to_tag: Option<&str>,
        extra: &str,
        body: &str,
    ) -> String {
        let mut text = format!("SIP/2.0 {code} {reason}\r\n");
        for via in self.headers("via") {
            text.push_str(&format!("Via: {via}\r\n"));
        }
        let to = self.header("to").unwrap_or_default();
        let to = match to_tag {
            Some(tag) if tag_of(to).is_none() => format!("{to};tag={tag}"),
            _ => to.to_owned(),
        };
        for (name, value) in [
            ("From", self.header("from").unwrap_or_default()),
            ("To", to.as_str()),
            ("Call-ID", self.call_id().unwrap_or_default()),
            ("CSeq", self.header("cseq").unwrap_or_default()),
        ] {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str(extra);
        if !body.is_empty() {
            text.push_str("Content-Type: application/sdp\r\n");
        }
        text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        text
    }
}

/// The largest message a stream may carry here: headers and body.
pub(crate) const MAX_STREAM_MESSAGE: usize = 65_536;

/// What the start of a stream's bytes holds (RFC 3261 §18.3).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A whole message of this many bytes.
    Message(usize),
    /// This many bytes of CRLF between messages: keep-alives (RFC 5626 §3.5.1), skipped.
    Blank(usize),
    /// Not a whole message yet.
    Partial,
    /// Not SIP that can be framed: the connection is of no use any more.
    Bad(&'static str),
}

/// Frames the next message of a stream: over TCP and TLS the header ends at the first
/// empty line and the body is Content-Length bytes long, a header every such message
/// must carry (RFC 3261 §18.3, §20.14).
pub(crate) fn frame(bytes: &[u8]) -> Frame {
    let blank = bytes
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if blank > 0 {
        return Frame::Blank(blank);
    }
    let Some(head_end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if bytes.len() > MAX_STREAM_MESSAGE {
            Frame::Bad("a header longer than 64 KiB")
        } else {
            Frame::Partial
        };
    };
    let Ok(head) = std::str::from_utf8(&bytes[..head_end]) else {
        return Frame::Bad("a header that is not UTF-8");
    };
    let length = head.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (full_name(name.trim()) == "content-length").then(|| value.trim().parse::<usize>())
    });
    let length = match length {
        Some(Ok(length)) => length,
        Some(Err(_)) => return Frame::Bad("a Content-Length that is not a number"),
        None => return Frame::Bad("a message without Content-Length"),
    };
    let total = head_end + 4 + length;
    if total > MAX_STREAM_MESSAGE {
        Frame::Bad("a message longer than 64 KiB")
    } else if bytes.len() < total {
        Frame::Partial
    } else {
        Frame::Message(total)
    }
}

/// The `tag` parameter of a From or To value (RFC 3261 §19.3), outside any `<…>`.
pub(crate) fn tag_of(value: &str) -> Option<&str> {
    let params = match value.rfind('>') {
        Some(end) => &value[end + 1..],
        None => value,
    };
    params.split(';').skip(1).find_map(|param| {
        let (name, tag) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("tag")
            .then_some(tag.trim())
    })
}

/// The URI of a From, To or Contact value: inside `<…>`, or up to the first `;`.
pub(crate) fn uri_of(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(start), Some(end)) if start < end => &value[start + 1..end],
        _ => value.split(';').next().unwrap_or(value).trim(),
    }
}

/// The user part of a `sip:` or `sips:` URI.
pub(crate) fn user_of(uri: &str) -> Option<&str> {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))?;
    rest.split_once('@').map(|(user, _)| user)
}

/// The `Expires` a REGISTER's 200 grants (RFC 3261 §10.2.4): the Contact's `expires`
/// parameter, else the Expires header.
pub(crate) fn granted_expires(response: &Message) -> Option<u32> {
    let from_contact = response.header("contact").and_then(|contact| {
        contact.split(';').skip(1).find_map(|param| {
            let (name, value) = param.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("expires")
                .then(|| value.trim().parse().ok())?
        })
    });
    from_contact.or_else(|| response.header("expires")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> SocketAddr {
        "127.0.0.1:5060".parse().unwrap()
    }

    const INVITE: &str = "INVITE sip:agent1@127.0.0.1:40000 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
        v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK0\r\n\
        f: \"amico-load\" <sip:load-7@127.0.0.1:5080>\r\n\
        To: <sip:agent1@127.0.0.1:40000>\r\n\
        i: abc@amico\r\n\
        CSeq: 1 INVITE\r\n\
        Subject: a folded\r\n  line\r\n\
        Content-Length: 4\r\n\r\nv=0\nextra";

    #[test]
    fn parses_a_request_with_compact_and_folded_headers() {
        let message = Message::parse(INVITE.as_bytes(), source()).unwrap();
        assert_eq!(message.method(), Some("INVITE"));
        assert_eq!(message.call_id(), Some("abc@amico"));
        assert_eq!(message.cseq(), Some((1, "INVITE")));
        assert_eq!(message.headers("VIA").count(), 2);
        assert_eq!(message.header("subject"), Some("a folded line"));
        assert_eq!(message.body, "v=0\n");
        let from = message.header("from").unwrap();
        assert_eq!(user_of(uri_of(from)), Some("load-7"));
    }

    #[test]
    fn prints_a_response_with_a_to_tag_and_every_via() {
        let message = Message::parse(INVITE.as_bytes(), source()).unwrap();
        let text = message.response(180, "Ringing", Some("t1"), "", "");
        let response = Message::parse(text.as_bytes(), source()).unwrap();
        assert_eq!(response.code(), Some(180));
        assert!(response.answers(1, "INVITE"));
        assert_eq!(tag_of(response.header("to").unwrap()), Some("t1"));
        let vias: Vec<&str> = response.headers("via").collect();
        assert_eq!(vias.len(), 2);
        assert!(vias[0].ends_with("z9hG4bK1"));
    }

    #[test]
    fn reads_a_response_status_tag_and_expires() {
        let text = "SIP/2.0 200 OK\r\nTo: <sip:a@h>;tag=xyz\r\nCSeq: 2 REGISTER\r\n\
                    Contact: <sip:a@127.0.0.1:4000>;expires=120\r\nExpires: 60\r\n\r\n";
        let message = Message::parse(text.as_bytes(), source()).unwrap();
        assert_eq!(message.code(), Some(200));
        assert!(message.answers(2, "REGISTER"));
        assert_eq!(tag_of(message.header("to").unwrap()), Some("xyz"));
        assert_eq!(granted_expires(&message), Some(120));
    }

    #[test]
    fn frames_stream_messages_by_content_length_and_skips_keep_alives() {
        let two = format!("\r\n\r\n{INVITE}SIP/2.0 200 OK\r\nl: 0\r\n\r\nINV");
        let bytes = two.as_bytes();
        assert_eq!(frame(bytes), Frame::Blank(4));
        let rest = &bytes[4..];
        let Frame::Message(first) = frame(rest) else {
            panic!("{:?}", frame(rest))
        };
        // The INVITE's body is its 4 bytes; "extra" starts the next message.
        assert!(rest[..first].ends_with(b"\r\n\r\nv=0\n"));
        assert!(rest[first..].starts_with(b"extraSIP/2.0 200 OK"));
        assert_eq!(
            frame(b"SIP/2.0 200 OK\r\nTo: <sip:a@h>\r\n\r\n"),
            Frame::Bad("a message without Content-Length")
        );
        let ok = b"SIP/2.0 200 OK\r\nl: 0\r\n\r\nINV";
        assert_eq!(frame(ok), Frame::Message(ok.len() - 3));
        assert_eq!(
            frame(b"SIP/2.0 200 OK\r\nContent-Length: 5\r\n\r\nv="),
            Frame::Partial
        );
        assert_eq!(frame(b"SIP/2.0 200 OK\r\nContent"), Frame::Partial);
        assert_eq!(
            frame(b"SIP/2.0 200 OK\r\nContent-Length: many\r\n\r\n"),
            Frame::Bad("a Content-Length that is not a number")
        );
        assert_eq!(
            frame(&vec![b'a'; MAX_STREAM_MESSAGE + 1]),
            Frame::Bad("a header longer than 64 KiB")
        );
    }

    #[test]
    fn refuses_what_is_not_sip() {
        for bad in [
            &b"hello"[..],
            b"GET / HTTP/1.1\r\n\r\n",
            b"SIP/2.0 2x0 OK\r\n\r\n",
            b"INVITE sip:a SIP/2.0\r\nno colon\r\n\r\n",
            b"\xff\xfe",
        ] {
            assert!(Message::parse(bad, source()).is_none(), "{bad:?}");
        }
    }
}
