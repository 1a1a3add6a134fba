//! RFC 4733 telephone-events: reading the payload and reporting each key press once.

use std::time::Duration;

/// The payload of one telephone-event packet (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TelephoneEvent {
    pub(crate) event: u8,
    pub(crate) end: bool,
    /// In RTP timestamp units (8 kHz for the events Amico negotiates, RFC 4733 §2.5.1.5).
    pub(crate) duration: u16,
}

impl TelephoneEvent {
    /// `None` when the payload is shorter than the 4 bytes of §2.3; any trailing bytes are
    /// further events of a redundant packet (§2.5.1.5) and the first one is what counts.
    pub(crate) fn parse(payload: &[u8]) -> Option<Self> {
        let [event, flags, high, low, ..] = *payload else {
            return None;
        };
        Some(Self {
            event,
            end: flags & 0x80 != 0,
            duration: u16::from_be_bytes([high, low]),
        })
    }
}

/// The character for an RFC 4733 §3.2 DTMF event, `!` standing for flash (16).
pub(crate) fn event_digit(event: u8) -> Option<char> {
    Some(match event {
        0..=9 => char::from(b'0' + event),
        10 => '*',
        11 => '#',
        12..=15 => char::from(b'A' + event - 12),
        16 => '!',
        _ => return None,
    })
}

/// Tells, for the packets of one incoming stream, when a key press has just ended.
///
/// An event's packets share one RTP timestamp (its start, §2.5.1.2) and its end packet is
/// sent three times (§2.5.1.4), so the (SSRC, timestamp) of the last reported event is enough
/// to report each press once, even for the same key pressed twice in a row.
#[derive(Debug, Default)]
pub(crate) struct DtmfDetector {
    last_reported: Option<(u32, u32)>,
}

impl DtmfDetector {
    /// The digit and how long it was held, on the first end packet of a DTMF event.
    pub(crate) fn handle(
        &mut self,
        ssrc: u32,
        timestamp: u32,
        event: TelephoneEvent,
    ) -> Option<(char, Duration)> {
        if !event.end || self.last_reported == Some((ssrc, timestamp)) {
            return None;
        }
        self.last_reported = Some((ssrc, timestamp));
        let digit = event_digit(event.event)?;
        Some((
            digit,
            Duration::from_micros(u64::from(event.duration) * 125),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(event: u8, end: bool, duration: u16) -> TelephoneEvent {
        let [high, low] = duration.to_be_bytes();
        TelephoneEvent::parse(&[event, if end { 0x80 | 10 } else { 10 }, high, low]).unwrap()
    }

    #[test]
    fn payload_fields_are_read_per_rfc_4733_section_2_3() {
        let event = TelephoneEvent::parse(&[11, 0x8A, 0x03, 0x20]).unwrap();
        assert_eq!(
            event,
            TelephoneEvent {
                event: 11,
                end: true,
                duration: 800
            }
        );
        assert_eq!(TelephoneEvent::parse(&[1, 2, 3]), None);
    }

    #[test]
    fn digits_follow_the_rfc_4733_table() {
        let digits: String = (0..=16).map(|event| event_digit(event).unwrap()).collect();
        assert_eq!(digits, "0123456789*#ABCD!");
        assert_eq!(event_digit(32), None);
    }

    #[test]
    fn one_report_per_event_despite_three_end_packets() {
        let mut detector = DtmfDetector::default();
        assert_eq!(detector.handle(7, 1000, packet(5, false, 160)), None);
        assert_eq!(detector.handle(7, 1000, packet(5, false, 320)), None);
        assert_eq!(
            detector.handle(7, 1000, packet(5, true, 800)),
            Some(('5', Duration::from_millis(100)))
        );
        assert_eq!(detector.handle(7, 1000, packet(5, true, 800)), None);
        assert_eq!(detector.handle(7, 1000, packet(5, true, 800)), None);
        // The same key again is a new event with a new start timestamp.
        assert_eq!(
            detector.handle(7, 3000, packet(5, true, 480)),
            Some(('5', Duration::from_millis(60)))
        );
        // Non-DTMF events end silently.
        assert_eq!(detector.handle(7, 5000, packet(36, true, 480)), None);
    }
}
