//! A browser stand-in for tests: a full-ICE str0m peer configured the way Chrome offers audio
//! (Opus first, G.722, PCMU, PCMA, telephone-event at 48 and 8 kHz), in RTP mode so tests
//! write and read whole packets. No socket: the tests carry its datagrams.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::{Codec, FormatParams};
use str0m::media::{Direction, Frequency, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpPacket, RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc};

pub(crate) struct Browser {
    pub(crate) rtc: Rtc,
    pub(crate) addr: SocketAddr,
    pub(crate) mid: Option<Mid>,
    /// Datagrams to deliver: (destination, bytes).
    pub(crate) outbox: VecDeque<(SocketAddr, Vec<u8>)>,
    pub(crate) received: Vec<RtpPacket>,
    pub(crate) connected: bool,
    timeout: Instant,
    sequence: u64,
}

impl Browser {
    pub(crate) fn new(now: Instant, addr: SocketAddr) -> Self {
        let mut config = Rtc::builder().clear_codecs().set_rtp_mode(true);
        let codecs = config.codec_config();
        codecs.enable_opus(true, false);
        codecs.enable_g722(true, false);
        codecs.enable_pcmu(true, false);
        codecs.enable_pcma(true, false);
        for (pt, rate) in [
            (110, Frequency::FORTY_EIGHT_KHZ),
            (126, Frequency::EIGHT_KHZ),
        ] {
            codecs.add_config(
                pt.into(),
                None,
                Codec::Tele,
                rate,
                None,
                FormatParams::parse_line("0-16"),
            );
        }
        let mut rtc = config.build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        Self {
            rtc,
            addr,
            mid: None,
            outbox: VecDeque::new(),
            received: Vec::new(),
            connected: false,
            timeout: now,
            sequence: 7000,
        }
    }

    /// setRemoteDescription(offer) + createAnswer().
    pub(crate) fn answer(&mut self, now: Instant, offer: &str) -> String {
        let offer = SdpOffer::from_sdp_string(offer).expect("our offer parses");
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .expect("the browser accepts our offer");
        self.drain(now);
        answer.to_sdp_string()
    }

    /// A re-offer with the audio in `direction` (sendonly for hold).
    pub(crate) fn reoffer(
        &mut self,
        now: Instant,
        direction: Direction,
    ) -> (String, SdpPendingOffer) {
        let mid = self.mid.expect("negotiated");
        let mut api = self.rtc.sdp_api();
        api.set_direction(mid, direction);
        let (offer, pending) = api.apply().expect("a change to offer");
        self.drain(now);
        (offer.to_sdp_string(), pending)
    }

    pub(crate) fn accept_answer(&mut self, now: Instant, pending: SdpPendingOffer, answer: &str) {
        let answer = SdpAnswer::from_sdp_string(answer).expect("our answer parses");
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("the browser accepts our answer");
        self.drain(now);
    }

    pub(crate) fn receive(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]) {
        let receive = Receive::new(Protocol::Udp, source, self.addr, datagram).unwrap();
        let input = Input::Receive(now, receive);
        if self.rtc.accepts(&input) {
            self.rtc.handle_input(input).unwrap();
        }
        self.drain(now);
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if now >= self.timeout {
            self.rtc.handle_input(Input::Timeout(now)).unwrap();
            self.drain(now);
        }
    }

    pub(crate) fn poll_timeout(&self) -> Instant {
        self.timeout
    }

    /// Sends one RTP packet with the next sequence number.
    pub(crate) fn write(
        &mut self,
        now: Instant,
        payload_type: u8,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) {
        let mid = self.mid.expect("negotiated");
        self.sequence += 1;
        let mut api = self.rtc.direct_api();
        let stream = api.stream_tx_by_mid(mid, None).expect("a send stream");
        stream.write_rtp(
            RtpWrite::new(
                payload_type.into(),
                SeqNo::from(self.sequence),
                timestamp,
                now,
                payload,
            )
            .marker(marker),
        );
        self.drain(now);
    }

    fn drain(&mut self, now: Instant) {
        for _ in 0..10_000 {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(at) => {
                    self.timeout = at.max(now + std::time::Duration::from_millis(1));
                    return;
                }
                Output::Transmit(transmit) => self
                    .outbox
                    .push_back((transmit.destination, transmit.contents.to_vec())),
                Output::Event(Event::RtpPacket(packet)) => self.received.push(packet),
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::MediaAdded(added)) if added.kind == MediaKind::Audio => {
                    self.mid = Some(added.mid);
                }
                Output::Event(_) => {}
            }
        }
        panic!("the browser's str0m did not settle");
    }
}
