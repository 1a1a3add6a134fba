//! Just enough STUN to route a connectivity check to its leg before any leg has read it.

/// RFC 5389 §6: the fixed value in every STUN header since RFC 5389.
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];

/// RFC 5389 §15.3.
const USERNAME: u16 = 0x0006;

const HEADER_LEN: usize = 20;

/// Whether a datagram on a WebRTC port is STUN: RFC 7983 §7 demultiplexes by the first byte
/// (0-3 STUN, 20-63 DTLS, 128-191 RTP and RTCP), and RFC 5389 §6 gives STUN its cookie.
pub(crate) fn is_stun(datagram: &[u8]) -> bool {
    datagram.len() >= HEADER_LEN && datagram[0] < 4 && datagram[4..8] == MAGIC_COOKIE
}

/// The receiver's ufrag of a connectivity check: the part of USERNAME before the colon,
/// which RFC 8445 §7.2.2 makes "the receiver's ufrag:the sender's ufrag". `None` for anything
/// that is not STUN or has no readable USERNAME. Nothing is verified here: the leg's ICE
/// agent checks MESSAGE-INTEGRITY with the password before answering.
pub(crate) fn receiver_ufrag(datagram: &[u8]) -> Option<&str> {
    if !is_stun(datagram) {
        return None;
    }
    let declared = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let end = HEADER_LEN.checked_add(declared)?.min(datagram.len());
    let mut at = HEADER_LEN;
    while at + 4 <= end {
        let kind = u16::from_be_bytes([datagram[at], datagram[at + 1]]);
        let len = usize::from(u16::from_be_bytes([datagram[at + 2], datagram[at + 3]]));
        let value = datagram.get(at + 4..at + 4 + len)?;
        if kind == USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next().filter(|ufrag| !ufrag.is_empty());
        }
        // Values are padded to a multiple of 4 bytes (RFC 5389 §15).
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(attributes: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, value) in attributes {
            body.extend_from_slice(&kind.to_be_bytes());
            body.extend_from_slice(&(value.len() as u16).to_be_bytes());
            body.extend_from_slice(value);
            body.resize(body.len().div_ceil(4) * 4, 0);
        }
        let mut message = vec![0x00, 0x01];
        message.extend_from_slice(&(body.len() as u16).to_be_bytes());
        message.extend_from_slice(&MAGIC_COOKIE);
        message.extend_from_slice(&[7; 12]);
        message.extend(body);
        message
    }

    #[test]
    fn the_receivers_ufrag_is_read_after_other_attributes() {
        // PRIORITY (0x0024) first, as browsers send it, then USERNAME with padding.
        let request = binding_request(&[(0x0024, &[0, 0, 0, 1]), (USERNAME, b"amico1:br0wser")]);
        assert!(is_stun(&request));
        assert_eq!(receiver_ufrag(&request), Some("amico1"));
    }

    #[test]
    fn anything_else_has_no_ufrag() {
        assert_eq!(receiver_ufrag(&binding_request(&[(0x0024, &[0; 4])])), None);
        assert_eq!(receiver_ufrag(&binding_request(&[(USERNAME, b":x")])), None);
        // Cut inside the USERNAME value.
        let request = binding_request(&[(USERNAME, b"amico1:br0wser")]);
        assert_eq!(receiver_ufrag(&request[..request.len() - 8]), None);
        // RTP (first byte 0x80) and DTLS (22) are not STUN.
        let mut rtp = request.clone();
        rtp[0] = 0x80;
        assert!(!is_stun(&rtp) && receiver_ufrag(&rtp).is_none());
        assert!(!is_stun(&[22; 40]));
        assert!(!is_stun(&request[..19]));
    }
}
