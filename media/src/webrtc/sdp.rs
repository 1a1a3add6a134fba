//! Touches to the SDP str0m writes, so that every browser and SIP hop reads it as intended.

use std::fmt::Write as _;
use std::net::SocketAddr;

/// Removes from every media section the `a=rtpmap`, `a=fmtp` and `a=rtcp-fb` lines of payload
/// types that its `m=` line does not list. An answer lists only the formats it accepts
/// (RFC 3264 §6.1) and its attributes describe those (RFC 8866 §6.6, §6.15); Chrome refuses
/// to apply an answer that still maps a payload type the `m=` line dropped.
/// `a=rtcp-fb:*` applies to all formats and is kept.
pub(crate) fn strip_unlisted_payload_types(sdp: &str) -> String {
    let mut listed: Vec<&str> = Vec::new();
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.lines() {
        if let Some(media) = line.strip_prefix("m=") {
            // m=<media> <port> <proto> <fmt> ... (RFC 8866 §5.14)
            listed = media.split(' ').skip(3).collect();
        } else if let Some(payload_type) = payload_type_of(line)
            && !listed.contains(&payload_type)
        {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

/// The payload type a format attribute is about, `None` for other lines and for
/// `a=rtcp-fb:*`.
fn payload_type_of(line: &str) -> Option<&str> {
    let rest = ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"]
        .iter()
        .find_map(|prefix| line.strip_prefix(prefix))?;
    let payload_type = rest.split(' ').next()?;
    (payload_type != "*").then_some(payload_type)
}

/// Puts the host candidate in the `c=` and `m=` lines where str0m leaves JSEP's placeholder
/// (`c=IN IP4 0.0.0.0`, port 9; RFC 8829 §5.2.1). RFC 8839 §4.2.1.1 wants the default
/// candidate there, and a SIP proxy or SBC that anchors media reads only those lines.
pub(crate) fn with_default_destination(sdp: &str, candidate: SocketAddr) -> String {
    let family = if candidate.is_ipv4() { "IP4" } else { "IP6" };
    let mut out = String::with_capacity(sdp.len() + 32);
    let mut in_media = false;
    for line in sdp.lines() {
        if let Some(media) = line.strip_prefix("m=") {
            in_media = true;
            let mut fields = media.splitn(3, ' ');
            if let (Some(kind), Some("9"), Some(rest)) =
                (fields.next(), fields.next(), fields.next())
            {
                let _ = write!(out, "m={kind} {} {rest}\r\n", candidate.port());
                continue;
            }
        } else if in_media && (line == "c=IN IP4 0.0.0.0" || line == "c=IN IP6 ::") {
            let _ = write!(out, "c=IN {family} {}\r\n", candidate.ip());
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

/// Replaces the `o=` username str0m writes (its name and version) with `-`, which RFC 8866
/// §5.2 gives hosts without user IDs: a stranger learns nothing of what Amico is built on.
pub(crate) fn anonymous_origin(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.lines() {
        match line
            .strip_prefix("o=")
            .and_then(|origin| origin.split_once(' '))
        {
            Some((_username, rest)) => {
                out.push_str("o=- ");
                out.push_str(rest);
            }
            None => out.push_str(line),
        }
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_of_dropped_payload_types_go() {
        let answer = "v=0\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 0 126\r\n\
            a=rtpmap:111 opus/48000/2\r\n\
            a=rtcp-fb:111 transport-cc\r\n\
            a=fmtp:111 minptime=10;useinbandfec=1\r\n\
            a=rtpmap:0 PCMU/8000\r\n\
            a=rtcp-fb:* nack\r\n\
            a=rtpmap:126 telephone-event/8000\r\n\
            a=fmtp:126 0-16\r\n\
            a=rtpmap:110 telephone-event/48000\r\n\
            m=video 0 UDP/TLS/RTP/SAVPF 96\r\n\
            a=rtpmap:96 VP8/90000\r\n";
        assert_eq!(
            strip_unlisted_payload_types(answer),
            "v=0\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 0 126\r\n\
            a=rtpmap:0 PCMU/8000\r\n\
            a=rtcp-fb:* nack\r\n\
            a=rtpmap:126 telephone-event/8000\r\n\
            a=fmtp:126 0-16\r\n\
            m=video 0 UDP/TLS/RTP/SAVPF 96\r\n\
            a=rtpmap:96 VP8/90000\r\n"
        );
    }

    #[test]
    fn the_origin_names_no_software() {
        assert_eq!(
            anonymous_origin("v=0\r\no=str0m-0.24.1 455 2 IN IP4 0.0.0.0\r\ns=-\r\n"),
            "v=0\r\no=- 455 2 IN IP4 0.0.0.0\r\ns=-\r\n"
        );
    }

    #[test]
    fn the_host_candidate_becomes_the_default_destination() {
        let offer = "v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0 8\r\n\
            c=IN IP4 0.0.0.0\r\na=mid:0\r\n";
        assert_eq!(
            with_default_destination(offer, "192.0.2.7:40000".parse().unwrap()),
            "v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 40000 UDP/TLS/RTP/SAVPF 0 8\r\n\
            c=IN IP4 192.0.2.7\r\na=mid:0\r\n"
        );
        let offer = "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\n";
        assert_eq!(
            with_default_destination(offer, "[2001:db8::7]:40000".parse().unwrap()),
            "m=audio 40000 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP6 2001:db8::7\r\n"
        );
    }
}
