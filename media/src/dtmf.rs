//! RFC 4733 telephone-events: reading the payload and reporting each key press once, and
//! sending key presses of Amico's own.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

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

/// The RFC 4733 §3.2 DTMF event for a key: `0`-`9`, `*`, `#`, `A`-`D` (either case), and `!`
/// for a flash (16), as [`event_digit`] names them.
pub(crate) fn digit_event(digit: char) -> Option<u8> {
    Some(match digit {
        '0'..='9' => digit as u8 - b'0',
        '*' => 10,
        '#' => 11,
        'A'..='D' => digit as u8 - b'A' + 12,
        'a'..='d' => digit as u8 - b'a' + 12,
        '!' => 16,
        _ => return None,
    })
}

/// How long a key Amico sends is held: 100 ms in 8 kHz timestamp units, comfortably above
/// the 40 ms a DTMF receiver needs to recognize a digit (ITU-T Q.24).
const TONE_DURATION: u16 = 800;

/// The interval between the packets of an event: the audio's 20 ms packetization, as RFC 4733
/// §2.5.1.2 suggests for updates when it is known.
pub(crate) const EVENT_PACKET_INTERVAL: Duration = Duration::from_millis(20);

/// The duration each update adds: 20 ms at 8 kHz.
const UPDATE_UNITS: u16 = 160;

/// Packets carrying the tone's growing duration (160, 320, ... 800), the last of them the
/// first end packet.
const TONE_PACKETS: u16 = TONE_DURATION.div_ceil(UPDATE_UNITS);

/// Every packet of an event: the final packet is sent three times in all (RFC 4733 §2.5.1.4).
const EVENT_PACKETS: u16 = TONE_PACKETS + 2;

/// The volume field: the power of the tone in -dBm0 (RFC 4733 §2.3.4). -10 dBm0 is a usual
/// DTMF level, well inside what receivers accept.
const VOLUME: u8 = 10;

/// Keys waiting to be sent on one leg before more are refused: a long dial string, not an
/// unbounded queue for a call flow gone wrong.
const MAX_QUEUED: usize = 32;

/// One packet of a telephone-event Amico sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventPacket {
    /// The event's start, the same in all of its packets (RFC 4733 §2.5.1.2).
    pub(crate) timestamp: u32,
    /// On the first packet of the event only (RFC 4733 §2.5.1.2).
    pub(crate) marker: bool,
    /// The duration so far in timestamp units (RFC 4733 §2.3.5).
    pub(crate) duration: u16,
    /// The 4-byte payload of RFC 4733 §2.3.
    pub(crate) payload: [u8; 4],
}

/// The event being sent.
#[derive(Debug)]
struct SendingEvent {
    event: u8,
    timestamp: u32,
    packets_sent: u16,
}

/// The key presses Amico sends on one leg (RFC 4733 §2.5.1), one after the other, paced by
/// the session's clock: an event's packets every 20 ms, its end packet three times, and the
/// next key starting 20 ms after the previous one's last packet, which leaves a pause of
/// 60 ms between tones.
#[derive(Debug, Default)]
pub(crate) struct DtmfSender {
    queue: VecDeque<u8>,
    current: Option<SendingEvent>,
    /// When the next packet may go; kept after an event ends, so the next one waits for it.
    next_due: Option<Instant>,
}

impl DtmfSender {
    /// Queues `event`; `false` when too many are already waiting.
    pub(crate) fn push(&mut self, now: Instant, event: u8) -> bool {
        if self.queue.len() >= MAX_QUEUED {
            return false;
        }
        if self.current.is_none() && self.queue.is_empty() {
            self.next_due = Some(self.next_due.map_or(now, |due| due.max(now)));
        }
        self.queue.push_back(event);
        true
    }

    /// When the next packet is due, if an event is being sent or waits.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.current.is_some() || !self.queue.is_empty() {
            self.next_due
        } else {
            None
        }
    }

    /// Drops everything queued and the event being sent: the leg can no longer carry them.
    pub(crate) fn clear(&mut self) {
        self.queue.clear();
        self.current = None;
    }

    /// The packet due at `now`, if any. `timestamp_now` is the stream's timestamp for media
    /// starting now, which a new event takes as its start.
    pub(crate) fn next_packet(&mut self, now: Instant, timestamp_now: u32) -> Option<EventPacket> {
        let due = self.poll_timeout().filter(|&due| due <= now)?;
        let event = match self.current.as_mut() {
            Some(event) => event,
            None => self.current.insert(SendingEvent {
                event: self.queue.pop_front()?,
                timestamp: timestamp_now,
                packets_sent: 0,
            }),
        };
        event.packets_sent += 1;
        let sent = event.packets_sent;
        let end = sent >= TONE_PACKETS;
        let duration = sent.min(TONE_PACKETS) * UPDATE_UNITS;
        let [high, low] = duration.to_be_bytes();
        let packet = EventPacket {
            timestamp: event.timestamp,
            marker: sent == 1,
            duration,
            payload: [event.event, if end { 0x80 } else { 0 } | VOLUME, high, low],
        };
        if sent == EVENT_PACKETS {
            self.current = None;
        }
        // As the audio pacer does: a late wake-up sends one packet and skips the updates whose
        // time has passed rather than bursting them; the durations still grow by packet.
        let mut next_due = due + EVENT_PACKET_INTERVAL;
        while next_due <= now {
            next_due += EVENT_PACKET_INTERVAL;
        }
        self.next_due = Some(next_due);
        Some(packet)
    }
}

/// How far behind the last ended event of its stream an end packet's timestamp may be and
/// still be taken for a late copy of it: 5 s at 8 kHz. An event further back is a new one
/// on a stream whose timestamps jumped back (a sender that reset its clock).
const LATE_WINDOW: u32 = 40_000;

/// Streams (SSRCs) whose last ended event is remembered.
const STREAMS_REMEMBERED: usize = 4;

/// Tells, for the packets of one incoming leg, when a key press has just ended.
///
/// An event's packets share one RTP timestamp (its start, §2.5.1.2) and its end packet is
/// sent three times (§2.5.1.4), so remembering the start of the last ended event of each
/// stream is enough to report each press once, even for the same key pressed twice in a
/// row. An end packet at that start or shortly before it is a repeat, or a copy delayed
/// past the next event by the network (UDP may reorder), never a new press.
#[derive(Debug, Default)]
pub(crate) struct DtmfDetector {
    /// (SSRC, start timestamp of its last ended event), the most recent stream last.
    last_ended: VecDeque<(u32, u32)>,
}

impl DtmfDetector {
    /// The digit and how long it was held, on the first end packet of a DTMF event.
    pub(crate) fn handle(
        &mut self,
        ssrc: u32,
        timestamp: u32,
        event: TelephoneEvent,
    ) -> Option<(char, Duration)> {
        if !event.end {
            return None;
        }
        let last = match self.last_ended.iter().position(|&(known, _)| known == ssrc) {
            Some(index) => self.last_ended.remove(index).map(|(_, last)| last),
            None => None,
        };
        if self.last_ended.len() == STREAMS_REMEMBERED {
            self.last_ended.pop_front();
        }
        match last {
            // At or shortly before the last ended event: a repeat or a late copy.
            Some(last) if last.wrapping_sub(timestamp) < LATE_WINDOW => {
                self.last_ended.push_back((ssrc, last));
                return None;
            }
            _ => self.last_ended.push_back((ssrc, timestamp)),
        }
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

    #[test]
    fn a_late_end_packet_or_another_stream_between_does_not_report_again() {
        // Found by the fuzz target rfc4733: an end packet of another stream (here a
        // non-DTMF event) between the repeats of '#' made the detector forget it.
        let mut detector = DtmfDetector::default();
        assert!(detector.handle(1, 0, packet(11, true, 800)).is_some());
        assert_eq!(detector.handle(0, 0, packet(27, true, 800)), None);
        assert_eq!(detector.handle(1, 0, packet(11, true, 800)), None);
        // UDP reordering: the third end packet of '5' arrives after '6' ended.
        assert!(detector.handle(1, 50_000, packet(5, true, 800)).is_some());
        assert!(detector.handle(1, 51_000, packet(6, true, 800)).is_some());
        assert_eq!(detector.handle(1, 50_000, packet(5, true, 800)), None);
        // A stream whose timestamps jumped far back still reports new presses.
        assert!(
            detector
                .handle(1, 51_000 - LATE_WINDOW, packet(7, true, 800))
                .is_some()
        );
        // Timestamps wrap (RFC 3550 §5.1).
        assert!(
            detector
                .handle(2, u32::MAX - 100, packet(1, true, 800))
                .is_some()
        );
        assert!(detector.handle(2, 60, packet(2, true, 800)).is_some());
        assert_eq!(
            detector.handle(2, u32::MAX - 100, packet(1, true, 800)),
            None
        );
    }

    #[test]
    fn keys_map_to_rfc_4733_events_and_back() {
        for event in 0..=16 {
            let digit = event_digit(event).unwrap();
            assert_eq!(digit_event(digit), Some(event));
        }
        assert_eq!(digit_event('b'), Some(13));
        assert_eq!(digit_event('E'), None);
        assert_eq!(digit_event('x'), None);
    }

    #[test]
    fn an_event_is_five_growing_packets_then_two_more_end_packets() {
        let t0 = Instant::now();
        let ms = |millis: u64| t0 + Duration::from_millis(millis);
        let mut sender = DtmfSender::default();
        assert_eq!(sender.poll_timeout(), None);
        assert!(sender.push(t0, 5));
        assert!(sender.push(t0, 11));
        let mut packets = Vec::new();
        let mut now = t0;
        while let Some(due) = sender.poll_timeout() {
            assert!(due >= now);
            now = due;
            packets.push((now, sender.next_packet(now, 1000 + packets.len() as u32)));
        }
        let first: Vec<_> = packets[..7].iter().map(|(_, p)| p.unwrap()).collect();
        let durations: Vec<u16> = first.iter().map(|p| p.duration).collect();
        assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800]);
        assert!(first.iter().all(|p| p.timestamp == 1000), "one timestamp");
        let markers: Vec<bool> = first.iter().map(|p| p.marker).collect();
        assert_eq!(markers, [true, false, false, false, false, false, false]);
        let ends: Vec<bool> = first.iter().map(|p| p.payload[1] & 0x80 != 0).collect();
        assert_eq!(ends, [false, false, false, false, true, true, true]);
        assert_eq!(first[0].payload, [5, 10, 0, 160]);
        assert_eq!(first[6].payload, [5, 0x8A, 0x03, 0x20]);
        let times: Vec<Instant> = packets.iter().map(|(at, _)| *at).collect();
        assert_eq!(times[..7], (0..7).map(|n| ms(20 * n)).collect::<Vec<_>>());
        // The next key starts 20 ms after the last end packet, with its own timestamp.
        let (at, second) = packets[7];
        let second = second.unwrap();
        assert_eq!((at, second.timestamp, second.marker), (ms(140), 1007, true));
        assert_eq!(second.payload[0], 11);
        assert_eq!(packets.len(), 14);
    }

    #[test]
    fn nothing_before_due_a_late_wake_up_skips_and_the_queue_is_bounded() {
        let t0 = Instant::now();
        let ms = |millis: u64| t0 + Duration::from_millis(millis);
        let mut sender = DtmfSender::default();
        sender.push(t0, 1);
        assert!(sender.next_packet(t0, 0).is_some());
        assert_eq!(sender.next_packet(ms(19), 0), None);
        assert_eq!(sender.poll_timeout(), Some(ms(20)));
        let late = sender.next_packet(ms(75), 0).unwrap();
        assert_eq!(late.duration, 320);
        assert_eq!(sender.poll_timeout(), Some(ms(80)));
        sender.clear();
        assert_eq!(sender.poll_timeout(), None);
        for _ in 0..MAX_QUEUED {
            assert!(sender.push(ms(100), 2));
        }
        assert!(!sender.push(ms(100), 2), "the queue is bounded");
    }
}
