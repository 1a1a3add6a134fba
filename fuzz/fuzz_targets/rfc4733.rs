//! RFC 4733 telephone-events: a sequence of received packets (SSRC, RTP timestamp,
//! payload) through the stateful detector, and key presses through the sender that paces
//! Amico's own.
//!
//! Checked besides "no panic":
//! - a press is reported on the first end packet of an event, as a key of §3.2, with the
//!   duration the packet carries, and once: never again for the repeated end packets
//!   (§2.5.1.4), nor for one that comes late, after the next event, nor when another
//!   stream's events come in between; packets are read from up to four SSRCs, with
//!   timestamps going forward and back;
//! - each key sent is five packets of growing duration then the end packet twice more
//!   (§2.5.1.4), one timestamp and one marker per event (§2.5.1.2), 20 ms apart, and no
//!   more than 32 keys wait.

#![no_main]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use amico_media::fuzzing::{Detector, Sender, telephone_event};
use libfuzzer_sys::fuzz_target;

const DIGITS: &str = "0123456789*#ABCD!";

/// How far behind the last ended event of its stream an end packet counts as a late copy
/// of it (the detector's window: 5 s at 8 kHz).
const LATE_WINDOW: u32 = 40_000;

fn detect(data: &[u8]) {
    let mut detector = Detector::default();
    // Each packet: SSRC (1), timestamp step in 20 ms units, signed so that packets can
    // come late (1), payload length (1), payload.
    let mut rest = data;
    let mut timestamp = 0u32;
    // The model: the start of the last ended event of each stream.
    let mut last_ended: HashMap<u32, u32> = HashMap::new();
    while let [ssrc, step, length, tail @ ..] = rest {
        let length = usize::from(*length % 8).min(tail.len());
        let (payload, tail) = tail.split_at(length);
        rest = tail;
        let ssrc = u32::from(*ssrc & 3);
        timestamp = timestamp.wrapping_add_signed(i32::from(*step as i8) * 160);
        let parsed = telephone_event(payload);
        let reported = detector.handle(ssrc, timestamp, payload);
        let Some((event, end, units)) = parsed else {
            assert_eq!(
                reported, None,
                "reported from a payload that does not parse"
            );
            continue;
        };
        let new = end
            && last_ended
                .get(&ssrc)
                .is_none_or(|&last| last.wrapping_sub(timestamp) >= LATE_WINDOW);
        if new {
            last_ended.insert(ssrc, timestamp);
        }
        let digit = DIGITS.chars().nth(usize::from(event));
        let expected = digit
            .filter(|_| new)
            .map(|digit| (digit, Duration::from_micros(u64::from(units) * 125)));
        assert_eq!(
            reported, expected,
            "SSRC {ssrc}, timestamp {timestamp}, event {event}, end {end}"
        );
    }
}

fn send(data: &[u8]) {
    let origin = Instant::now();
    let mut sender = Sender::default();
    let mut now = origin;
    let mut queued = 0usize;
    let mut current: Option<(u32, Vec<u16>)> = None;
    let mut timestamp_now = 1000u32;
    let mut last_at: Option<Instant> = None;
    for &byte in data {
        // A key to press, or time to pass.
        if byte & 0x80 == 0 {
            let digit = char::from(byte);
            let accepted = sender.push(now, digit);
            if accepted {
                queued += 1;
            }
            assert!(queued <= 32 + 1, "more than 32 keys wait");
            continue;
        }
        now += Duration::from_millis(u64::from(byte & 0x7f) * 5);
        timestamp_now = timestamp_now.wrapping_add(u32::from(byte & 0x7f) * 40);
        while let Some(due) = sender.poll_timeout().filter(|&due| due <= now) {
            let packet = sender
                .next_packet(now, timestamp_now)
                .expect("a packet when due");
            if let Some(last) = last_at {
                assert!(
                    due >= last + Duration::from_millis(20),
                    "packets closer than 20 ms"
                );
            }
            last_at = Some(due);
            let [event, flags, high, low] = packet.payload;
            assert!(usize::from(event) < DIGITS.len());
            let duration = u16::from_be_bytes([high, low]);
            let (start, durations) = current.get_or_insert_with(|| {
                assert!(packet.marker, "an event's first packet has the marker");
                (packet.timestamp, Vec::new())
            });
            assert_eq!(*start, packet.timestamp, "one timestamp per event");
            assert_eq!(packet.marker, durations.is_empty());
            durations.push(duration);
            assert_eq!(flags & 0x80 != 0, durations.len() >= 5, "the end bit");
            if durations.len() == 7 {
                assert_eq!(durations, &[160, 320, 480, 640, 800, 800, 800]);
                current = None;
                queued -= 1;
            }
            // Time moves on inside the loop only through `due`; guard against a spin.
            assert!(sender.poll_timeout().is_none_or(|next| next > due));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (first, rest) = data.split_first().unwrap_or((&0, &[]));
    if first & 1 == 0 {
        detect(rest);
    } else {
        send(rest);
    }
});
