//! One WebRTC agent leg as a state machine: a str0m [`Rtc`] in RTP mode, with the audio
//! negotiation Amico needs and the run-loop invariant kept in one place.
//!
//! str0m requires every mutation of an `Rtc` (an input, a write, an SDP change) to be
//! followed by draining `poll_output` to its `Timeout`. Every method here that mutates does
//! that before returning, queueing what came out: datagrams for the endpoint's socket
//! ([`RtcLeg::poll_transmit`]), RTP packets from the browser ([`RtcLeg::poll_rtp`]), and the
//! next wake-up ([`RtcLeg::poll_timeout`]).

use super::WebRtcError;
use super::sdp::{anonymous_origin, strip_unlisted_payload_types, with_default_destination};
use crate::{AudioFormat, Codec, Direction, RemoteMedia};
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::config::DtlsCert;
use str0m::format::{Codec as RtcCodec, FormatParams};
use str0m::media::{Direction as RtcDirection, Frequency, MediaKind, Mid};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::rtp::{Extension, RtpPacket, RtpWrite, SeqNo};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

/// The telephone-event payload type Amico offers (the one most PBXs use too).
pub(crate) const TELEPHONE_EVENT_PT: u8 = 101;

/// A wake-up asked for at or before the time just handled means "nothing due yet": str0m
/// never lets its timeout go back past the last input, so this keeps a driver from spinning.
const MIN_WAKE: Duration = Duration::from_millis(1);

/// A timeout further away than this is str0m's "nothing scheduled" (a century ahead).
const NOTHING_SCHEDULED: Duration = Duration::from_secs(24 * 3600);

/// Bounds one drain of `poll_output`; str0m ends each drain with a `Timeout` long before.
const MAX_OUTPUTS_PER_DRAIN: usize = 10_000;

/// What became of a datagram given to [`RtcLeg::handle_receive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    /// str0m took it (a check answered, a DTLS record, RTP or RTCP).
    Accepted,
    /// Neither a check with our ufrag nor from an address ICE validated: misrouted or a
    /// stranger's.
    NotOurs,
    /// Not STUN, DTLS, RTP or RTCP, or refused by str0m (bad SRTP authentication...).
    Unreadable,
}

/// A str0m session for one browser agent: ICE-lite with one host candidate, DTLS-SRTP,
/// rtcp-mux and BUNDLE on a single audio `m=` line carrying PCMU and/or PCMA and
/// telephone-event, exchanging whole RTP packets (str0m's RTP mode) so that the media
/// session relays them as it relays plain RTP.
pub(crate) struct RtcLeg {
    rtc: Rtc,
    candidate: SocketAddr,
    local_ufrag: String,
    mid: Option<Mid>,
    pending: Option<SdpPendingOffer>,
    /// What both sides agreed, from the last completed offer/answer.
    format: Option<AudioFormat>,
    transmits: VecDeque<Transmit>,
    received: VecDeque<RtpPacket>,
    timeout: Option<Instant>,
    last_now: Instant,
    /// The extended sequence number (RFC 3711 §3.3.1: index = ROC · 2^16 + SEQ) of the last
    /// packet written, so that SRTP's rollover counter follows our 16-bit numbers.
    sent_index: Option<u64>,
    connected: bool,
    /// DTLS or the fingerprint check failed, or the browser closed: no more media.
    ended: bool,
}

impl RtcLeg {
    /// A leg whose only ICE candidate is `candidate` (the endpoint's socket), offering
    /// `codecs` in that order of preference plus telephone-event, with the endpoint's
    /// certificate.
    pub(crate) fn new(
        now: Instant,
        candidate: SocketAddr,
        codecs: &[Codec],
        certificate: DtlsCert,
    ) -> Result<Self, WebRtcError> {
        let mut wanted: Vec<Codec> = Vec::with_capacity(2);
        for &codec in codecs {
            if !wanted.contains(&codec) {
                wanted.push(codec);
            }
        }
        if wanted.is_empty() {
            return Err(WebRtcError::NoCodec);
        }
        // RTP mode: whole packets in and out, so that sequence numbers, timestamps, the marker
        // bit and RFC 4733 payloads pass as the relay made them.
        let mut config = Rtc::builder()
            .clear_codecs()
            .set_rtp_mode(true)
            // RFC 8445 §2.5: a lite agent on a reachable address only answers checks; the
            // browser, full ICE, controls and nominates.
            .set_ice_lite(true)
            .set_dtls_cert(certificate)
            // Only the mid (RFC 8843 §15: BUNDLE demultiplexing) and the audio level. No
            // bandwidth estimation extensions: G.711 has one bitrate.
            .clear_extension_map()
            .set_extension(1, Extension::AudioLevel)
            .set_extension(4, Extension::RtpMid);
        let codec_config = config.codec_config();
        for codec in wanted {
            match codec {
                Codec::Pcmu => codec_config.enable_pcmu(true, false),
                Codec::Pcma => codec_config.enable_pcma(true, false),
            }
        }
        // RFC 4733 §7.1.1: telephone-event at the G.711 clock rate, events 0-16 (DTMF and
        // flash).
        codec_config.add_config(
            TELEPHONE_EVENT_PT.into(),
            None,
            RtcCodec::Tele,
            Frequency::EIGHT_KHZ,
            None,
            FormatParams::parse_line("0-16"),
        );
        let mut rtc = config.build(now);
        let host = Candidate::host(candidate, "udp")
            .map_err(|_| WebRtcError::UnusableAddress { address: candidate })?;
        rtc.add_local_candidate(host);
        let local_ufrag = rtc.direct_api().local_ice_credentials().ufrag;
        let mut leg = Self {
            rtc,
            candidate,
            local_ufrag,
            mid: None,
            pending: None,
            format: None,
            transmits: VecDeque::new(),
            received: VecDeque::new(),
            timeout: None,
            last_now: now,
            sent_index: None,
            connected: false,
            ended: false,
        };
        leg.drain(now);
        Ok(leg)
    }

    /// Our ICE username fragment: connectivity checks for this leg carry it first in their
    /// USERNAME (RFC 8445 §7.2.2), which is how the endpoint routes them here.
    pub(crate) fn local_ufrag(&self) -> &str {
        &self.local_ufrag
    }

    /// The SDP offer for the INVITE to the browser (RFC 8829 §5.2.1): one sendrecv audio
    /// section, `UDP/TLS/RTP/SAVPF`, `a=setup:actpass` (RFC 5763 §5), our fingerprint,
    /// ufrag and password, `a=ice-lite`, `a=rtcp-mux` (RFC 5761 §5.1.1), `a=group:BUNDLE`
    /// (RFC 8843 §7.2) and the host candidate. A second call makes a new offer; the answer
    /// must then be to that one.
    pub(crate) fn create_offer(&mut self) -> Result<String, WebRtcError> {
        let mut api = self.rtc.sdp_api();
        let mid = match self.mid {
            Some(mid) => {
                // A re-offer of the same section (after hold, say): sendrecv again.
                api.set_direction(mid, RtcDirection::SendRecv);
                mid
            }
            None => api.add_media(MediaKind::Audio, RtcDirection::SendRecv, None, None, None),
        };
        let applied = api.apply();
        self.drain(self.last_now);
        let (offer, pending) = applied.ok_or(WebRtcError::NoOfferPending)?;
        self.mid = Some(mid);
        self.pending = Some(pending);
        let offer = anonymous_origin(&offer.to_sdp_string());
        Ok(with_default_destination(&offer, self.candidate))
    }

    /// Applies the browser's answer to our offer; from here ICE and DTLS can complete.
    pub(crate) fn accept_answer(&mut self, answer: &str) -> Result<AudioFormat, WebRtcError> {
        let answer = SdpAnswer::from_sdp_string(answer).map_err(WebRtcError::InvalidSdp)?;
        let pending = self.pending.take().ok_or(WebRtcError::NoOfferPending)?;
        let result = self.rtc.sdp_api().accept_answer(pending, answer);
        self.drain(self.last_now);
        result.map_err(WebRtcError::Refused)?;
        self.refresh_format()
    }

    /// Answers an offer from the browser (a re-INVITE: hold, resume). The answer lists only
    /// the formats we take, and none of the others' attributes.
    pub(crate) fn accept_offer(&mut self, offer: &str) -> Result<String, WebRtcError> {
        let offer = SdpOffer::from_sdp_string(offer).map_err(WebRtcError::InvalidSdp)?;
        // An offer of ours still waiting is void now (RFC 3264 §4: one offer at a time).
        self.pending = None;
        let result = self.rtc.sdp_api().accept_offer(offer);
        self.drain(self.last_now);
        let answer = result.map_err(WebRtcError::Refused)?;
        self.refresh_format()?;
        let answer = strip_unlisted_payload_types(&anonymous_origin(&answer.to_sdp_string()));
        Ok(with_default_destination(&answer, self.candidate))
    }

    /// Reads back what the last offer/answer settled: the first G.711 format the browser
    /// listed, and telephone-event if it kept it.
    fn refresh_format(&mut self) -> Result<AudioFormat, WebRtcError> {
        let mid = self.mid.ok_or(WebRtcError::NoCommonCodec)?;
        let media = self.rtc.media(mid).ok_or(WebRtcError::NoCommonCodec)?;
        if media.disabled() {
            return Err(WebRtcError::NoCommonCodec);
        }
        let params = self.rtc.codec_config();
        let mut audio = None;
        let mut telephone_event = None;
        for pt in media.remote_pts() {
            let Some(spec) = params.find(|p| p.pt() == *pt).map(|p| p.spec()) else {
                continue;
            };
            match spec.codec {
                RtcCodec::PCMU if audio.is_none() => audio = Some((Codec::Pcmu, **pt)),
                RtcCodec::PCMA if audio.is_none() => audio = Some((Codec::Pcma, **pt)),
                RtcCodec::Tele if spec.clock_rate == Frequency::EIGHT_KHZ => {
                    telephone_event.get_or_insert(**pt);
                }
                _ => {}
            }
        }
        let (codec, payload_type) = audio.ok_or(WebRtcError::NoCommonCodec)?;
        let format = AudioFormat {
            codec,
            payload_type,
            telephone_event,
        };
        self.format = Some(format);
        Ok(format)
    }

    /// What the browser's side looks like to the relay: the agreed format and the direction
    /// the browser stated (ours mirrored, RFC 3264 §6.1). The address is ICE's business and
    /// left unspecified. `None` until an offer/answer completed.
    pub(crate) fn remote_media(&self) -> Option<RemoteMedia> {
        let format = self.format?;
        let ours = self.rtc.media(self.mid?)?.direction();
        let ours = match ours {
            RtcDirection::SendRecv => Direction::SendRecv,
            RtcDirection::SendOnly => Direction::SendOnly,
            RtcDirection::RecvOnly => Direction::RecvOnly,
            RtcDirection::Inactive => Direction::Inactive,
        };
        Some(RemoteMedia {
            addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            format,
            direction: ours.mirrored(),
        })
    }

    /// A datagram from `source` arrived on the endpoint's socket at `destination` and was
    /// routed here.
    pub(crate) fn handle_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        datagram: &[u8],
    ) -> Received {
        let Ok(receive) = Receive::new(Protocol::Udp, source, destination, datagram) else {
            return Received::Unreadable;
        };
        let input = Input::Receive(now, receive);
        // str0m's own test: a check with our ufrag, or traffic from an address ICE validated.
        if !self.rtc.accepts(&input) {
            return Received::NotOurs;
        }
        let result = self.rtc.handle_input(input);
        self.drain(now);
        match result {
            Ok(()) => Received::Accepted,
            Err(error) => {
                // A packet str0m could not use (failed SRTP authentication, a bad DTLS
                // record): the session goes on.
                tracing::debug!(%source, %error, "WebRTC datagram refused");
                Received::Unreadable
            }
        }
    }

    /// Time passed: ICE consent, DTLS retransmissions, RTCP reports.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.timeout.is_none_or(|due| now < due) {
            return;
        }
        if let Err(error) = self.rtc.handle_input(Input::Timeout(now)) {
            tracing::debug!(%error, "WebRTC timeout handling failed");
        }
        self.drain(now);
        if let Some(due) = self.timeout
            && due <= now
        {
            self.timeout = Some(now + MIN_WAKE);
        }
    }

    /// Whether ICE and DTLS are up, so that written media reaches the browser.
    pub(crate) fn is_connected(&self) -> bool {
        self.connected && !self.ended
    }

    /// Sends one RTP packet to the browser with these header fields (the SSRC is the leg's
    /// own, announced in its SDP). `false` when it cannot go: not connected yet, no send
    /// stream, or the leg ended. A packet written before DTLS completes would be queued and
    /// burst out late, so it is refused instead.
    pub(crate) fn write_rtp(
        &mut self,
        now: Instant,
        payload_type: u8,
        sequence: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> bool {
        if !self.is_connected() {
            return false;
        }
        let Some(mid) = self.mid else { return false };
        let index = extend_sequence(self.sent_index, sequence);
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(mid, None) else {
            return false;
        };
        stream.write_rtp(
            RtpWrite::new(
                payload_type.into(),
                SeqNo::from(index),
                timestamp,
                now,
                payload,
            )
            .marker(marker),
        );
        self.sent_index = Some(index);
        self.drain(now);
        true
    }

    /// The next datagram to send from the endpoint's socket.
    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next RTP packet the browser sent, decrypted.
    pub(crate) fn poll_rtp(&mut self) -> Option<RtpPacket> {
        self.received.pop_front()
    }

    /// When [`Self::handle_timeout`] must run next.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        self.timeout
    }

    /// Drains str0m's outputs after a mutation, as its run loop contract requires.
    fn drain(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
        for _ in 0..MAX_OUTPUTS_PER_DRAIN {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(at)) => {
                    self.timeout = (at.saturating_duration_since(self.last_now)
                        < NOTHING_SCHEDULED)
                        .then_some(at);
                    return;
                }
                Ok(Output::Transmit(transmit)) => self.transmits.push_back(transmit),
                Ok(Output::Event(event)) => self.handle_event(event),
                Err(error) => {
                    // Only fatal conditions come out here: a DTLS failure or a fingerprint
                    // that does not match the SDP (RFC 5763 §5), a possible attack.
                    tracing::warn!(%error, "WebRTC leg failed");
                    self.fail();
                    return;
                }
            }
        }
        tracing::warn!("str0m kept producing output; WebRTC leg stopped");
        self.fail();
    }

    fn fail(&mut self) {
        self.ended = true;
        self.timeout = None;
        self.rtc.disconnect();
    }

    fn handle_event(&mut self, event: Event) {
        match event {
            Event::RtpPacket(packet) => self.received.push_back(packet),
            // An offer from the browser before any of ours (str0m names the section).
            Event::MediaAdded(added) if self.mid.is_none() && added.kind == MediaKind::Audio => {
                self.mid = Some(added.mid);
            }
            Event::Connected => {
                tracing::debug!(ufrag = %self.local_ufrag, "WebRTC leg connected (ICE and DTLS)");
                self.connected = true;
            }
            Event::IceConnectionStateChange(state) => {
                tracing::debug!(ufrag = %self.local_ufrag, ?state, "WebRTC ICE state");
                if state == IceConnectionState::Disconnected {
                    self.connected = false;
                }
            }
            Event::Closed => {
                tracing::debug!(ufrag = %self.local_ufrag, "the browser closed DTLS");
                self.ended = true;
            }
            _ => {}
        }
    }
}

impl std::fmt::Debug for RtcLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtcLeg")
            .field("ufrag", &self.local_ufrag)
            .field("format", &self.format)
            .field("connected", &self.connected)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// The extended index of `sequence` following `previous` (RFC 3711 §3.3.1, Appendix A): the
/// candidate nearest to the previous index, so a wrap from 65535 to 0 counts one rollover.
/// The first index is the sequence number itself (ROC 0, which SRTP assumes without
/// signalling).
fn extend_sequence(previous: Option<u64>, sequence: u16) -> u64 {
    let Some(previous) = previous else {
        return u64::from(sequence);
    };
    let delta = sequence.wrapping_sub(previous as u16) as i16;
    previous.saturating_add_signed(i64::from(delta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_sequence_numbers_roll_over_and_tolerate_reordering() {
        assert_eq!(extend_sequence(None, 65_530), 65_530);
        assert_eq!(extend_sequence(Some(65_535), 0), 65_536);
        assert_eq!(extend_sequence(Some(65_536), 65_535), 65_535);
        assert_eq!(extend_sequence(Some(131_071), 1), 131_073);
        assert_eq!(extend_sequence(Some(5), 3), 3);
    }
}
