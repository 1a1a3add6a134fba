//! The RTP stream Amico sends on one leg, whatever feeds it.

use rtp_rs::{RtpPacketBuilder, Seq};
use std::hash::{BuildHasher, Hasher};
use std::time::Instant;

/// The header fields of the next packet to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) sequence: u16,
    pub(crate) timestamp: u32,
    pub(crate) marker: bool,
}

/// Where relayed packets land in our sequence and timestamp spaces.
#[derive(Debug, Clone, Copy)]
struct RelayMapping {
    input_ssrc: u32,
    sequence_offset: u16,
    timestamp_offset: u32,
}

/// One outgoing RTP stream: one SSRC, and sequence numbers and timestamps that stay
/// continuous however often its feed switches between generated audio and a relayed leg.
///
/// RFC 3550 §5.1 asks for random initial values and a sequence number growing by one per
/// packet; RFC 3551 §4.1 for the marker bit on the first packet after a silence, which is what
/// a switch of feed looks like to the receiver. After a switch the timestamp continues from
/// the last one sent plus the media elapsed since, so the receiver's jitter buffer sees a
/// gap, never a jump back, and keeps the same SSRC.
#[derive(Debug)]
pub(crate) struct OutgoingStream {
    ssrc: u32,
    last_sequence: u16,
    /// Timestamp of the newest packet sent, and when it was sent.
    last_timestamp: u32,
    last_sent_at: Option<Instant>,
    /// Timestamp just after the newest media sent (start plus duration).
    media_end: u32,
    marker_pending: bool,
    /// The next generated packet continues from the elapsed time rather than from the previous
    /// generated packet: the feed changed between generated and relayed audio, or resumed.
    rebase_pending: bool,
    relay: Option<RelayMapping>,
}

/// Samples per millisecond at the G.711 clock.
const SAMPLES_PER_MS: u64 = 8;

/// Whether `a` is later than `b` in wrapping 32-bit timestamp arithmetic (RFC 3550 §5.1).
fn timestamp_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl OutgoingStream {
    /// A stream with random SSRC, initial sequence number and timestamp (RFC 3550 §5.1).
    pub(crate) fn new() -> Self {
        let seed = random_u64();
        Self::with_initial((seed >> 32) as u32, seed as u16, random_u64() as u32)
    }

    pub(crate) fn with_initial(ssrc: u32, sequence: u16, timestamp: u32) -> Self {
        Self {
            ssrc,
            last_sequence: sequence.wrapping_sub(1),
            last_timestamp: timestamp,
            last_sent_at: None,
            media_end: timestamp,
            marker_pending: true,
            rebase_pending: true,
            relay: None,
        }
    }

    pub(crate) fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The feed changes (comfort → relay, relay → comfort, a leg resumed after hold): the
    /// next packet starts a new talkspurt.
    pub(crate) fn switch(&mut self) {
        self.relay = None;
        self.marker_pending = true;
        self.rebase_pending = true;
    }

    /// The generated audio moves to another piece (comfort noise → prompt, prompt → music)
    /// on the same clock: the next packet carries the marker, as the start of new audio (RFC
    /// 3551 §4.1), but its timestamp still follows the previous frame's by the frame's
    /// duration, so the receiver sees no gap at all.
    pub(crate) fn mark(&mut self) {
        self.marker_pending = true;
    }

    /// Where media starting now sits in this stream's timestamps: past everything sent and
    /// past the wall-clock time elapsed since the newest packet. For a paced stream this is
    /// the timestamp of the next frame.
    pub(crate) fn timestamp_now(&self, now: Instant) -> u32 {
        self.timestamp_after_gap(now)
    }

    /// The header of a packet inserted between the stream's audio packets, an RFC 4733
    /// telephone-event Amico sends itself: it takes the next sequence number (one per RTP
    /// packet sent on the SSRC, RFC 3550 §5.1, whatever its payload type) and the timestamp
    /// the event was given, and leaves the audio's timestamps alone. A relayed stream's sequence offset moves
    /// by one so that the next relayed packet does not reuse the number.
    pub(crate) fn next_inserted(&mut self, timestamp: u32, marker: bool, duration: u32) -> Header {
        self.last_sequence = self.last_sequence.wrapping_add(1);
        if let Some(relay) = self.relay.as_mut() {
            relay.sequence_offset = relay.sequence_offset.wrapping_add(1);
        }
        let end = timestamp.wrapping_add(duration);
        if timestamp_after(end, self.media_end) {
            self.media_end = end;
        }
        Header {
            sequence: self.last_sequence,
            timestamp,
            marker,
        }
    }

    /// The timestamp of the first packet after a switch: past everything sent, and past the
    /// wall-clock time elapsed since the last packet.
    fn timestamp_after_gap(&self, now: Instant) -> u32 {
        let Some(sent_at) = self.last_sent_at else {
            return self.media_end;
        };
        let elapsed_ms = now
            .saturating_duration_since(sent_at)
            .as_millis()
            .min(u128::from(u32::MAX / 16)) as u64;
        let by_clock = self
            .last_timestamp
            .wrapping_add((elapsed_ms * SAMPLES_PER_MS) as u32);
        if timestamp_after(by_clock, self.media_end) {
            by_clock
        } else {
            self.media_end
        }
    }

    fn record(&mut self, now: Instant, header: Header, duration: u32) {
        if self.last_sent_at.is_none()
            || (header.sequence.wrapping_sub(self.last_sequence) as i16) > 0
        {
            self.last_sequence = header.sequence;
        }
        if self.last_sent_at.is_none() || !timestamp_after(self.last_timestamp, header.timestamp) {
            self.last_timestamp = header.timestamp;
            self.last_sent_at = Some(now);
        }
        let end = header.timestamp.wrapping_add(duration);
        if timestamp_after(end, self.media_end) {
            self.media_end = end;
        }
        self.marker_pending = false;
        self.rebase_pending = false;
    }

    /// The header of the next generated packet. `advance` is the media time since the
    /// previous generated packet (160 per 20 ms frame, more after frames were skipped); it is
    /// ignored for the first packet after a switch, which continues from the elapsed time.
    pub(crate) fn next_generated(&mut self, now: Instant, advance: u32, duration: u32) -> Header {
        let timestamp = if self.rebase_pending {
            self.timestamp_after_gap(now)
        } else {
            self.last_timestamp.wrapping_add(advance)
        };
        let header = Header {
            sequence: self.last_sequence.wrapping_add(1),
            timestamp,
            marker: self.marker_pending,
        };
        self.record(now, header, duration);
        header
    }

    /// The header for a packet relayed from another leg. The input's sequence and timestamp
    /// deltas are kept (so the receiver still sees losses and one timestamp for all packets of
    /// a telephone-event); the offsets are set on the first packet after a switch and again
    /// when the input's SSRC changes, which is a new stream (RFC 3550 §8.2).
    pub(crate) fn next_relayed(
        &mut self,
        now: Instant,
        input_ssrc: u32,
        input_sequence: u16,
        input_timestamp: u32,
        input_marker: bool,
        duration: u32,
    ) -> Header {
        let mapping = match self.relay {
            Some(mapping) if mapping.input_ssrc == input_ssrc => mapping,
            previous => {
                if previous.is_some() {
                    self.marker_pending = true;
                }
                let mapping = RelayMapping {
                    input_ssrc,
                    sequence_offset: self
                        .last_sequence
                        .wrapping_add(1)
                        .wrapping_sub(input_sequence),
                    timestamp_offset: self.timestamp_after_gap(now).wrapping_sub(input_timestamp),
                };
                self.relay = Some(mapping);
                mapping
            }
        };
        let header = Header {
            sequence: input_sequence.wrapping_add(mapping.sequence_offset),
            timestamp: input_timestamp.wrapping_add(mapping.timestamp_offset),
            marker: input_marker || self.marker_pending,
        };
        self.record(now, header, duration);
        header
    }
}

/// Writes one RTP packet into `packet` (resized, capacity kept) and returns its length.
pub(crate) fn build_packet(
    packet: &mut Vec<u8>,
    ssrc: u32,
    payload_type: u8,
    header: Header,
    payload: &[u8],
) -> Option<usize> {
    let builder = RtpPacketBuilder::new()
        .payload_type(payload_type)
        .marked(header.marker)
        .sequence(Seq::from(header.sequence))
        .ssrc(ssrc)
        .timestamp(header.timestamp)
        .payload(payload);
    packet.resize(builder.target_length(), 0);
    builder.build_into(packet).ok()
}

/// A random number from the standard library's per-process random hash keys, which is all the
/// unpredictability RFC 3550 §5.1 asks of initial values, without another dependency.
pub(crate) fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0x5EED);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(base: Instant, millis: u64) -> Instant {
        base + Duration::from_millis(millis)
    }

    #[test]
    fn generated_packets_count_up_by_one_and_160() {
        let t0 = Instant::now();
        let mut stream = OutgoingStream::with_initial(1, 65534, u32::MAX - 100);
        let first = stream.next_generated(t0, 160, 160);
        assert_eq!(
            first,
            Header {
                sequence: 65534,
                timestamp: u32::MAX - 100,
                marker: true
            }
        );
        let second = stream.next_generated(ms(t0, 20), 160, 160);
        assert_eq!(
            second,
            Header {
                sequence: 65535,
                timestamp: 59,
                marker: false
            }
        );
        let third = stream.next_generated(ms(t0, 40), 160, 160);
        assert_eq!(
            third,
            Header {
                sequence: 0,
                timestamp: 219,
                marker: false
            }
        );
        // After skipped frames the timestamp covers them; the sequence does not.
        let fourth = stream.next_generated(ms(t0, 100), 480, 160);
        assert_eq!(
            fourth,
            Header {
                sequence: 1,
                timestamp: 699,
                marker: false
            }
        );
    }

    #[test]
    fn switches_keep_sequence_and_timestamp_continuous() {
        let t0 = Instant::now();
        let mut stream = OutgoingStream::with_initial(7, 100, 10_000);
        stream.next_generated(t0, 160, 160);
        stream.next_generated(ms(t0, 20), 160, 160); // seq 101, ts 10160

        // Bridged 5 ms later: the first relayed packet continues from the comfort stream.
        stream.switch();
        let relayed = stream.next_relayed(ms(t0, 25), 0xABCD, 5000, 777_000, false, 160);
        assert_eq!(
            relayed,
            Header {
                sequence: 102,
                timestamp: 10_320,
                marker: true
            }
        );
        let next = stream.next_relayed(ms(t0, 45), 0xABCD, 5001, 777_160, false, 160);
        assert_eq!(
            next,
            Header {
                sequence: 103,
                timestamp: 10_480,
                marker: false
            }
        );
        // A lost input packet stays visible as a gap.
        let after_loss = stream.next_relayed(ms(t0, 85), 0xABCD, 5003, 777_480, false, 160);
        assert_eq!(
            after_loss,
            Header {
                sequence: 105,
                timestamp: 10_800,
                marker: false
            }
        );

        // Back to comfort 300 ms later: timestamp moves by the elapsed 2400 samples.
        stream.switch();
        let comfort = stream.next_generated(ms(t0, 385), 160, 160);
        assert_eq!(
            comfort,
            Header {
                sequence: 106,
                timestamp: 13_200,
                marker: true
            }
        );
        assert_eq!(stream.ssrc(), 7);
    }

    #[test]
    fn a_new_input_ssrc_rebases_with_a_marker() {
        let t0 = Instant::now();
        let mut stream = OutgoingStream::with_initial(7, 0, 0);
        stream.next_relayed(t0, 1, 10, 1000, false, 160);
        stream.next_relayed(ms(t0, 20), 1, 11, 1160, false, 160);
        let rebased = stream.next_relayed(ms(t0, 40), 2, 60_000, 4_000_000_000, false, 160);
        assert_eq!(
            rebased,
            Header {
                sequence: 2,
                timestamp: 320,
                marker: true
            }
        );
    }

    #[test]
    fn telephone_event_packets_keep_one_timestamp() {
        let t0 = Instant::now();
        let mut stream = OutgoingStream::with_initial(7, 0, 0);
        stream.next_relayed(t0, 1, 10, 1000, false, 160);
        let start = stream.next_relayed(ms(t0, 20), 1, 11, 1160, true, 160);
        let middle = stream.next_relayed(ms(t0, 40), 1, 12, 1160, false, 320);
        let end = stream.next_relayed(ms(t0, 60), 1, 13, 1160, false, 480);
        assert_eq!(
            (start.timestamp, middle.timestamp, end.timestamp),
            (160, 160, 160)
        );
        assert!(start.marker && !middle.marker);
        // Audio after the event resumes past the event's end.
        stream.switch();
        let comfort = stream.next_generated(ms(t0, 60), 160, 160);
        assert_eq!(comfort.timestamp, 640);
    }

    #[test]
    fn a_mark_starts_new_audio_without_moving_the_timestamp() {
        let t0 = Instant::now();
        let mut stream = OutgoingStream::with_initial(7, 10, 1000);
        stream.next_generated(t0, 160, 160);
        stream.next_generated(ms(t0, 20), 160, 160);
        // The next prompt starts on the same clock, even if the task woke 7 ms late.
        stream.mark();
        let marked = stream.next_generated(ms(t0, 47), 160, 160);
        assert_eq!(
            marked,
            Header {
                sequence: 12,
                timestamp: 1320,
                marker: true
            }
        );
        assert!(!stream.next_generated(ms(t0, 60), 160, 160).marker);
    }

    #[test]
    fn inserted_events_take_a_sequence_number_but_not_the_audio_timestamps() {
        let t0 = Instant::now();
        let mut stream = OutgoingStream::with_initial(7, 100, 5000);
        stream.next_generated(t0, 160, 160); // seq 100, ts 5000
        let start = stream.timestamp_now(ms(t0, 5));
        assert_eq!(start, 5160, "the next frame's timestamp");
        let event = stream.next_inserted(start, true, 160);
        assert_eq!(
            event,
            Header {
                sequence: 101,
                timestamp: 5160,
                marker: true
            }
        );
        let audio = stream.next_generated(ms(t0, 20), 160, 160);
        assert_eq!(
            (audio.sequence, audio.timestamp, audio.marker),
            (102, 5160, false)
        );
        assert_eq!(stream.next_inserted(start, false, 320).sequence, 103);

        // In a relay, the inserted packet shifts the mapping by one.
        let mut relay = OutgoingStream::with_initial(7, 0, 0);
        relay.next_relayed(t0, 1, 500, 0, false, 160); // seq 0
        relay.next_inserted(160, true, 160); // seq 1
        let next = relay.next_relayed(ms(t0, 20), 1, 501, 160, false, 160);
        assert_eq!(next.sequence, 2);
        assert_eq!(next.timestamp, 160);
    }

    #[test]
    fn packets_are_built_as_rtp_version_2() {
        let mut packet = Vec::new();
        let header = Header {
            sequence: 0x1234,
            timestamp: 0xDEAD_BEEF,
            marker: true,
        };
        let len = build_packet(&mut packet, 0xCAFE_F00D, 8, header, &[0xD5; 160]).unwrap();
        let reader = rtp_rs::RtpReader::new(&packet[..len]).unwrap();
        assert_eq!(reader.version(), 2);
        assert_eq!(reader.payload_type(), 8);
        assert!(reader.mark());
        assert_eq!(u16::from(reader.sequence_number()), 0x1234);
        assert_eq!(reader.timestamp(), 0xDEAD_BEEF);
        assert_eq!(reader.ssrc(), 0xCAFE_F00D);
        assert_eq!(reader.payload().len(), 160);
    }

    #[test]
    fn streams_get_different_random_ssrcs() {
        let ssrcs: std::collections::HashSet<u32> =
            (0..20).map(|_| OutgoingStream::new().ssrc()).collect();
        assert!(ssrcs.len() > 15);
    }
}
