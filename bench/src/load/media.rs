//! RTP for one side of the load (RFC 3550): one socket whose port is in every SDP of that
//! side, a reader that counts what arrives, and, with `--rtp`, a sender that sends every
//! connected call a real G.711 frame (a tone) every 20 ms (RFC 3551 §4.5.14: 160 samples
//! at 8 kHz).
//!
//! A caller presses a key (the survey's vote) as an RFC 4733 telephone-event on its call's
//! stream, which ends its voice.
//!
//! A call's stream starts when its agent answers and stops when it ends, so that what
//! the caller sends is what the ACD should relay to the agent: the agents' count of
//! packets received against the callers' count sent is the relay's delivery. (Callers
//! also receive music before an agent answers, so the other direction is counted only.)

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amico_media::g711;
use hdrhistogram::Histogram;
use tokio::net::UdpSocket;
use tokio::time::{Instant, MissedTickBehavior};

/// Samples a frame (20 ms at 8 kHz).
const FRAME: usize = 160;

/// One call's outgoing stream.
struct Stream {
    remote: SocketAddr,
    payload_type: u8,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
}

/// One side's RTP socket and its streams.
pub(crate) struct Media {
    socket: UdpSocket,
    /// The socket's port, in this side's SDPs.
    pub(crate) port: u16,
    streams: Mutex<HashMap<u64, Stream>>,
    /// One second of the side's tone, μ-law and A-law.
    tone: [Vec<u8>; 2],
    /// Packets sent and received.
    pub(crate) sent: AtomicU64,
    pub(crate) received: AtomicU64,
    /// The interarrival jitter (RFC 3550 §6.4.1) of the received streams, in
    /// microseconds, recorded at each packet after a stream's first.
    pub(crate) jitter: Mutex<Histogram<u64>>,
}

/// What the jitter estimate of one received stream keeps (RFC 3550 §6.4.1, A.8).
struct Arrival {
    ssrc: u32,
    timestamp: u32,
    at: Instant,
    /// J, in microseconds.
    jitter: f64,
}

impl Arrival {
    /// The next packet, with RTP `timestamp`, arrived `at`.
    fn step(&mut self, timestamp: u32, at: Instant) {
        // RFC 3550 §6.4.1: D = (Rj − Ri) − (Sj − Si), here in µs (8 kHz: 125 µs a tick);
        // J += (|D| − J) / 16.
        let arrival = at.duration_since(self.at).as_micros() as f64;
        let sent = f64::from(timestamp.wrapping_sub(self.timestamp) as i32) * 125.0;
        self.jitter += ((arrival - sent).abs() - self.jitter) / 16.0;
        self.timestamp = timestamp;
        self.at = at;
    }
}

impl Media {
    /// Binds a socket on `ip`; `hz` is the tone this side sends.
    pub(crate) async fn bind(ip: IpAddr, hz: f64) -> std::io::Result<Arc<Media>> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let port = socket.local_addr()?.port();
        let samples: Vec<i16> = (0..8000)
            .map(|n| {
                let phase = 2.0 * std::f64::consts::PI * hz * f64::from(n) / 8000.0;
                (8000.0 * phase.sin()) as i16
            })
            .collect();
        let ulaw = samples.iter().map(|&s| g711::ulaw_encode(s)).collect();
        let alaw = samples.iter().map(|&s| g711::alaw_encode(s)).collect();
        Ok(Arc::new(Media {
            socket,
            port,
            streams: Mutex::new(HashMap::new()),
            tone: [ulaw, alaw],
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            jitter: Mutex::new(
                Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"),
            ),
        }))
    }

    /// Reads and counts RTP until aborted, estimating each stream's jitter.
    pub(crate) async fn receive(self: Arc<Self>) {
        let mut buffer = vec![0u8; 2048];
        let mut streams: HashMap<SocketAddr, Arrival> = HashMap::new();
        loop {
            let Ok((length, source)) = self.socket.recv_from(&mut buffer).await else {
                continue;
            };
            // RFC 3550 §5.1: version 2 in the first two bits, a 12-byte fixed header.
            if length < 12 || buffer[0] >> 6 != 2 {
                continue;
            }
            let at = Instant::now();
            self.received.fetch_add(1, Ordering::Relaxed);
            let timestamp = u32::from_be_bytes([buffer[4], buffer[5], buffer[6], buffer[7]]);
            let ssrc = u32::from_be_bytes([buffer[8], buffer[9], buffer[10], buffer[11]]);
            match streams.get_mut(&source) {
                // The same stream, still flowing: a port the ACD reuses for a later call
                // starts a new one.
                Some(last)
                    if last.ssrc == ssrc && at.duration_since(last.at) < Duration::from_secs(1) =>
                {
                    last.step(timestamp, at);
                    let micros = last.jitter.round() as u64;
                    if let Ok(mut jitter) = self.jitter.lock() {
                        jitter.saturating_record(micros.max(1));
                    }
                }
                _ => {
                    streams.insert(
                        source,
                        Arrival {
                            ssrc,
                            timestamp,
                            at,
                            jitter: 0.0,
                        },
                    );
                }
            }
        }
    }

    /// Sends a frame to every stream every 20 ms until aborted.
    pub(crate) async fn send(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(Duration::from_millis(20));
        // A late tick sends one frame, not a burst: the receiver's jitter is its own.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut packets: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        loop {
            ticks.tick().await;
            {
                let mut streams = self.streams.lock().expect("streams");
                for stream in streams.values_mut() {
                    packets.push((stream.remote, self.packet(stream)));
                }
            }
            for (remote, packet) in packets.drain(..) {
                if self.socket.send_to(&packet, remote).await.is_ok() {
                    self.sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// The next packet of `stream` (RFC 3550 §5.1: V=2, no padding, extension or CSRC).
    fn packet(&self, stream: &mut Stream) -> Vec<u8> {
        let mut packet = Vec::with_capacity(12 + FRAME);
        packet.push(0x80);
        packet.push(stream.payload_type & 0x7f);
        packet.extend_from_slice(&stream.sequence.to_be_bytes());
        packet.extend_from_slice(&stream.timestamp.to_be_bytes());
        packet.extend_from_slice(&stream.ssrc.to_be_bytes());
        let tone = &self.tone[usize::from(stream.payload_type == 8)];
        let start = (stream.timestamp as usize) % (tone.len() - FRAME);
        packet.extend_from_slice(&tone[start..start + FRAME]);
        stream.sequence = stream.sequence.wrapping_add(1);
        stream.timestamp = stream.timestamp.wrapping_add(FRAME as u32);
        packet
    }

    /// Starts sending call `id`'s stream to the SDP's address, in its first G.711 format;
    /// an SDP without one is left silent.
    pub(crate) fn start(&self, id: u64, sdp: &str) {
        let Some((remote, payload_type)) = audio_target(sdp) else {
            return;
        };
        let stream = self.new_stream(id, remote, payload_type);
        self.streams.lock().expect("streams").insert(id, stream);
    }

    /// Call `id`'s stream, before its first packet.
    fn new_stream(&self, id: u64, remote: SocketAddr, payload_type: u8) -> Stream {
        Stream {
            remote,
            payload_type,
            ssrc: (id as u32).wrapping_mul(2_654_435_761) ^ u32::from(self.port),
            sequence: (id as u16).wrapping_mul(7919),
            timestamp: (id as u32).wrapping_mul(160),
        }
    }

    /// Presses `key` on call `id`'s stream: an RFC 4733 telephone-event to the SDP's
    /// address in the payload type it maps to `telephone-event/8000`, one packet every
    /// 20 ms. The call's voice, if it was sending, stops there and the event goes on with
    /// its SSRC, sequence numbers and clock (§2.5.1.1). `false`, and nothing sent, when
    /// the SDP has no telephone-event or `key` is no DTMF key.
    pub(crate) async fn press(&self, id: u64, key: char, sdp: &str) -> bool {
        let (Some(event), Some((remote, _)), Some(payload_type)) =
            (key_event(key), audio_target(sdp), telephone_event_type(sdp))
        else {
            return false;
        };
        let voice = self.streams.lock().expect("streams").remove(&id);
        let stream = voice.unwrap_or_else(|| self.new_stream(id, remote, payload_type));
        let packets = event_packets(&stream, payload_type, event);
        for (i, packet) in packets.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if self.socket.send_to(packet, remote).await.is_ok() {
                self.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        true
    }

    /// Stops call `id`'s stream.
    pub(crate) fn stop(&self, id: u64) {
        self.streams.lock().expect("streams").remove(&id);
    }
}

/// The RFC 4733 §3.2 event of a DTMF key: `0`-`9`, `*` (10), `#` (11), `A`-`D` (12-15).
pub(crate) fn key_event(key: char) -> Option<u8> {
    match key {
        '0'..='9' => Some(key as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(key as u8 - b'A' + 12),
        _ => None,
    }
}

/// The payload type an SDP maps to `telephone-event/8000` (RFC 4733 §7.1.1).
fn telephone_event_type(sdp: &str) -> Option<u8> {
    sdp.lines().map(str::trim).find_map(|line| {
        let (payload_type, encoding) = line.strip_prefix("a=rtpmap:")?.split_once(' ')?;
        encoding
            .eq_ignore_ascii_case("telephone-event/8000")
            .then(|| payload_type.parse().ok())?
    })
}

/// The packets of one key press after `stream`'s last (RFC 4733 §2.5.1): the event starts
/// at the stream's clock and lasts 100 ms (800 units at 8 kHz), reported every 20 ms; the
/// first packet has the marker bit (§2.5.1.2), the fifth the end bit, and the end packet is
/// sent three times in all (§2.5.1.4). Volume -10 dBm0 (§2.3.4).
fn event_packets(stream: &Stream, payload_type: u8, event: u8) -> Vec<Vec<u8>> {
    (0..7u16)
        .map(|i| {
            let end = i >= 4;
            let duration = FRAME as u16 * (i + 1).min(5);
            let marker = if i == 0 { 0x80 } else { 0 };
            let mut packet = Vec::with_capacity(16);
            packet.push(0x80);
            packet.push(marker | (payload_type & 0x7f));
            packet.extend_from_slice(&stream.sequence.wrapping_add(i).to_be_bytes());
            packet.extend_from_slice(&stream.timestamp.to_be_bytes());
            packet.extend_from_slice(&stream.ssrc.to_be_bytes());
            packet.push(event);
            packet.push(if end { 0x80 } else { 0 } | 10);
            packet.extend_from_slice(&duration.to_be_bytes());
            packet
        })
        .collect()
}

/// Where an SDP wants its audio (RFC 4566 §5.7, §5.14) and its first G.711 payload type.
pub(crate) fn audio_target(sdp: &str) -> Option<(SocketAddr, u8)> {
    let mut address: Option<IpAddr> = None;
    let mut media: Option<(u16, u8)> = None;
    for line in sdp.lines().map(str::trim) {
        if let Some(connection) = line
            .strip_prefix("c=IN IP4 ")
            .or_else(|| line.strip_prefix("c=IN IP6 "))
        {
            // The session's c=, or the audio section's own, which comes after it.
            address = connection.split('/').next()?.parse().ok();
        } else if line.starts_with("m=") && media.is_some() {
            break;
        } else if let Some(rest) = line.strip_prefix("m=audio ") {
            let mut fields = rest.split(' ');
            let port: u16 = fields.next()?.parse().ok()?;
            let _protocol = fields.next()?;
            let payload_type = fields.find_map(|f| match f {
                "0" => Some(0),
                "8" => Some(8),
                _ => None,
            })?;
            media = Some((port, payload_type));
        }
    }
    let (port, payload_type) = media?;
    let address = address?;
    (port != 0).then(|| (SocketAddr::new(address, port), payload_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_address_port_and_codec() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 40002 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\n";
        assert_eq!(
            audio_target(sdp),
            Some(("127.0.0.1:40002".parse().unwrap(), 8))
        );
        assert_eq!(
            audio_target("v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 0 RTP/AVP 0\r\n"),
            None
        );
        assert_eq!(
            audio_target("v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 18\r\n"),
            None
        );
    }

    #[test]
    fn a_key_press_is_one_rfc_4733_event_ending_three_times() {
        let sdp = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 0 96\r\n\
                   a=rtpmap:0 PCMU/8000\r\na=rtpmap:96 telephone-event/8000\r\n";
        assert_eq!(telephone_event_type(sdp), Some(96));
        assert_eq!(
            telephone_event_type("v=0\r\nm=audio 4000 RTP/AVP 0\r\n"),
            None
        );
        assert_eq!(key_event('2'), Some(2));
        assert_eq!(key_event('#'), Some(11));
        assert_eq!(key_event('x'), None);
        let stream = Stream {
            remote: "127.0.0.1:9".parse().unwrap(),
            payload_type: 0,
            ssrc: 7,
            sequence: 65_534,
            timestamp: 16_000,
        };
        let packets = event_packets(&stream, 96, 2);
        assert_eq!(packets.len(), 7);
        for (i, packet) in packets.iter().enumerate() {
            assert_eq!(packet.len(), 16);
            // The marker on the first packet alone; the payload type throughout.
            assert_eq!(packet[1], if i == 0 { 0x80 | 96 } else { 96 });
            let sequence = u16::from_be_bytes([packet[2], packet[3]]);
            assert_eq!(sequence, 65_534u16.wrapping_add(i as u16));
            // One event: the same timestamp and SSRC in every packet.
            assert_eq!(
                u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
                16_000
            );
            assert_eq!(
                u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
                7
            );
            assert_eq!(packet[12], 2);
            assert_eq!(
                packet[13] & 0x80 != 0,
                i >= 4,
                "the end bit on the last three"
            );
            assert_eq!(packet[13] & 0x3f, 10);
            let duration = u16::from_be_bytes([packet[14], packet[15]]);
            assert_eq!(duration, 160 * (i as u16 + 1).min(5));
        }
    }

    #[test]
    fn estimates_jitter_as_rfc_3550_does() {
        let start = Instant::now();
        let mut stream = Arrival {
            ssrc: 1,
            timestamp: u32::MAX - 159,
            at: start,
            jitter: 0.0,
        };
        // On time, across the timestamp's wrap: no jitter.
        stream.step(0, start + Duration::from_millis(20));
        assert_eq!(stream.jitter, 0.0);
        // 10 ms late: J = 10,000 / 16 µs.
        stream.step(160, start + Duration::from_millis(50));
        assert!((stream.jitter - 625.0).abs() < 1e-6, "{}", stream.jitter);
    }

    #[tokio::test]
    async fn sends_g711_frames_with_rising_sequence_numbers() {
        let media = Media::bind("127.0.0.1".parse().unwrap(), 440.0)
            .await
            .unwrap();
        let mut stream = Stream {
            remote: "127.0.0.1:9".parse().unwrap(),
            payload_type: 0,
            ssrc: 1,
            sequence: 65_535,
            timestamp: 0,
        };
        let first = media.packet(&mut stream);
        let second = media.packet(&mut stream);
        assert_eq!(first.len(), 12 + FRAME);
        assert_eq!(first[0], 0x80);
        assert_eq!(u16::from_be_bytes([first[2], first[3]]), 65_535);
        assert_eq!(u16::from_be_bytes([second[2], second[3]]), 0);
        assert_eq!(
            u32::from_be_bytes([second[4], second[5], second[6], second[7]]),
            160
        );
        // A tone, not silence: the decoded frame swings both ways.
        let samples: Vec<i16> = first[12..].iter().map(|&c| g711::ulaw_decode(c)).collect();
        assert!(samples.iter().any(|&s| s > 4000) && samples.iter().any(|&s| s < -4000));
    }
}
