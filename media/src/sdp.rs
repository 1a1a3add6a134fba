//! SDP offer/answer for the audio of a leg (RFC 3264, SDP syntax RFC 4566).
//!
//! Amico reads only what anchoring G.711 audio needs: the connection address, the audio port
//! and transport, the payload types with their `a=rtpmap`/`a=fmtp`, `a=ptime` and the
//! direction. Everything else (ICE, RTCP feedback, SSRC, crypto, video) is skipped without
//! being judged, so one odd attribute from a phone never fails the call; a malformed line that
//! Amico does rely on is an error naming the line. `ezk-sdp-types` was tried first and set
//! aside: it rejects a whole body for one malformed `a=ssrc`, and it reads `a=sendonly ` with a
//! trailing space as sendrecv.
//!
//! The SDP Amico writes is minimal and well-formed: `v`, `o`, `s`, `c`, `t`, then for audio
//! `m`, `a=rtpmap` for each format, `a=fmtp` for telephone-event, `a=ptime:20` and the
//! direction. An answer keeps one `m=` line per offered line, declining the others with port 0
//! (RFC 3264 §6).

use crate::{AudioFormat, Codec, Direction, MediaError, RemoteMedia};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// The telephone-event payload type Amico offers when the call flow has no reason to pick
/// another (the value most PBXs use).
pub const DEFAULT_TELEPHONE_EVENT_PT: u8 = 101;

/// Events offered when the remote did not say which (RFC 4733 §2.4.1: DTMF and flash).
const DEFAULT_TELEPHONE_EVENTS: &str = "0-16";

/// Amico always packetises 20 ms of audio (RFC 3551 §4.5: the G.711 default).
const PTIME_MS: u32 = 20;

/// The `o=` line state of one dialog's SDP (RFC 4566 §5.2, RFC 3264 §8).
///
/// The version must grow by one for each changed SDP Amico sends in the dialog and stay the
/// same when the same SDP is sent again, so [`answer`] and [`offer`] never bump it themselves:
/// call [`SdpSession::bump`] before building every SDP after the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpSession {
    id: u64,
    version: u64,
}

impl SdpSession {
    /// A session with this id; the first version equals the id, as most stacks do.
    pub fn new(id: u64) -> Self {
        Self { id, version: id }
    }

    /// The session id written in `o=`.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The version written in `o=` by the next SDP built.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Moves to the next version, before building a modified SDP (RFC 3264 §8).
    pub fn bump(&mut self) {
        self.version = self.version.wrapping_add(1);
    }
}

/// One payload type listed on an `m=` line, with what its attributes say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadFormat {
    /// The RTP payload type number.
    pub payload_type: u8,
    /// The encoding name from `a=rtpmap`, or from RFC 3551's static table when a static
    /// type has no `a=rtpmap`; `None` for a dynamic type without one.
    pub encoding_name: Option<String>,
    /// The RTP clock rate in Hz, from the same sources as `encoding_name`.
    pub clock_rate: Option<u32>,
    /// The `a=fmtp` parameters, if any.
    pub fmtp: Option<String>,
}

impl PayloadFormat {
    /// The G.711 codec this format carries, if it is one.
    pub fn codec(&self) -> Option<Codec> {
        let codec = Codec::from_encoding_name(self.encoding_name.as_deref()?)?;
        (self.clock_rate == Some(codec.clock_rate())).then_some(codec)
    }

    /// Whether this is RFC 4733 `telephone-event` at 8000 Hz, the rate of G.711; events at
    /// other rates belong to wideband codecs (RFC 4733 §2.3.1).
    pub fn is_telephone_event(&self) -> bool {
        self.clock_rate == Some(8000)
            && self
                .encoding_name
                .as_deref()
                .is_some_and(|name| name.eq_ignore_ascii_case("telephone-event"))
    }
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// The media type: `audio`, `video`, `application`...
    pub media: String,
    /// The transport port; 0 means the stream is declined or disabled (RFC 3264 §5.1).
    pub port: u16,
    /// The transport protocol, e.g. `RTP/AVP`.
    pub protocol: String,
    /// The numeric formats in the order listed on the `m=` line, which is the preference
    /// order (RFC 3264 §5.1).
    pub formats: Vec<PayloadFormat>,
    /// The format list exactly as written, echoed when declining the stream.
    pub format_list: String,
    /// The effective connection address: the media-level `c=`, else the session-level one.
    pub connection: Option<IpAddr>,
    /// The effective direction: the media-level attribute, else the session-level one, else
    /// sendrecv (RFC 4566 §6).
    pub direction: Direction,
    /// `a=ptime`, in milliseconds.
    pub ptime: Option<u32>,
}

impl MediaDescription {
    /// Whether this stream is plain RTP: `RTP/AVP` or its feedback extension `RTP/AVPF`, which
    /// a plain RTP endpoint can answer (RFC 4585 §5). SRTP and DTLS profiles are not.
    pub fn is_rtp_avp(&self) -> bool {
        self.protocol.eq_ignore_ascii_case("RTP/AVP")
            || self.protocol.eq_ignore_ascii_case("RTP/AVPF")
    }

    /// Where the remote wants this stream's RTP, if it gave a connection address.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.connection.map(|ip| SocketAddr::new(ip, self.port))
    }

    fn is_usable_audio(&self) -> bool {
        self.media == "audio" && self.port != 0 && self.is_rtp_avp()
    }
}

/// A parsed SDP body (offer or answer), with its audio part picked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    origin_session_id: Option<String>,
    origin_version: Option<String>,
    media: Vec<MediaDescription>,
    audio: usize,
}

impl SessionDescription {
    /// The audio section Amico uses: the first active plain-RTP `m=audio`, else the first
    /// `m=audio`.
    pub fn audio(&self) -> &MediaDescription {
        &self.media[self.audio]
    }

    /// Every `m=` section in order, which an answer must mirror (RFC 3264 §6).
    pub fn media(&self) -> &[MediaDescription] {
        &self.media
    }

    /// The audio connection address (`c=`); `0.0.0.0` means an RFC 2543 hold.
    pub fn connection_address(&self) -> Option<IpAddr> {
        self.audio().connection
    }

    /// The audio port; 0 means declined.
    pub fn audio_port(&self) -> u16 {
        self.audio().port
    }

    /// The audio payload types in the sender's order of preference.
    pub fn payload_formats(&self) -> &[PayloadFormat] {
        &self.audio().formats
    }

    /// The audio direction as the sender of this SDP states it.
    pub fn direction(&self) -> Direction {
        self.audio().direction
    }

    /// Whether the audio line is plain RTP (`RTP/AVP`, or `RTP/AVPF`).
    pub fn is_rtp_avp(&self) -> bool {
        self.audio().is_rtp_avp()
    }

    /// The session id from `o=`.
    pub fn origin_session_id(&self) -> Option<&str> {
        self.origin_session_id.as_deref()
    }

    /// The version from `o=`: a re-INVITE with the same version carries unchanged SDP
    /// (RFC 3264 §8).
    pub fn origin_version(&self) -> Option<&str> {
        self.origin_version.as_deref()
    }
}

struct MediaBuilder {
    description: MediaDescription,
    connection: Option<IpAddr>,
    direction: Option<Direction>,
    rtpmaps: Vec<(u8, String, u32)>,
    fmtps: Vec<(u8, String)>,
}

impl MediaBuilder {
    fn finish(
        mut self,
        session_connection: Option<IpAddr>,
        session_direction: Option<Direction>,
    ) -> MediaDescription {
        for format in &mut self.description.formats {
            let pt = format.payload_type;
            if let Some((_, name, rate)) = self.rtpmaps.iter().find(|(p, ..)| *p == pt) {
                format.encoding_name = Some(name.clone());
                format.clock_rate = Some(*rate);
            } else if let Some((name, rate)) = static_payload_type(pt) {
                format.encoding_name = Some(name.to_owned());
                format.clock_rate = Some(rate);
            }
            format.fmtp = self
                .fmtps
                .iter()
                .find(|(p, _)| *p == pt)
                .map(|(_, params)| params.clone());
        }
        self.description.connection = self.connection.or(session_connection);
        self.description.direction = self.direction.or(session_direction).unwrap_or_default();
        self.description
    }
}

/// RFC 3551 §6 table 4: the static audio payload types, usable without `a=rtpmap`.
fn static_payload_type(payload_type: u8) -> Option<(&'static str, u32)> {
    Some(match payload_type {
        0 => ("PCMU", 8000),
        3 => ("GSM", 8000),
        4 => ("G723", 8000),
        5 => ("DVI4", 8000),
        6 => ("DVI4", 16000),
        7 => ("LPC", 8000),
        8 => ("PCMA", 8000),
        9 => ("G722", 8000),
        10 | 11 => ("L16", 44100),
        12 => ("QCELP", 8000),
        13 => ("CN", 8000),
        14 => ("MPA", 90000),
        15 => ("G728", 8000),
        16 => ("DVI4", 11025),
        17 => ("DVI4", 22050),
        18 => ("G729", 8000),
        _ => return None,
    })
}

/// Parses an SDP body (offer or answer); see the module documentation for what is read.
pub fn parse(body: &str) -> Result<SessionDescription, MediaError> {
    let mut origin_session_id = None;
    let mut origin_version = None;
    let mut session_connection = None;
    let mut session_direction = None;
    let mut done: Vec<MediaBuilder> = Vec::new();
    let mut current: Option<MediaBuilder> = None;

    for (index, raw) in body.split('\n').enumerate() {
        // Trailing spaces and CR are common in the wild and never meaningful (RFC 4566 §5
        // requires CRLF, but §5 also asks parsers to accept a bare LF).
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let invalid = |expected| MediaError::SdpInvalidLine {
            line: index + 1,
            text: raw.trim_end().to_owned(),
            expected,
        };
        let (kind, value) = match line.as_bytes() {
            [kind, b'=', ..] if kind.is_ascii_alphabetic() => (*kind, &line[2..]),
            _ => return Err(invalid("<type>=<value>")),
        };
        // No SDP text holds NUL, and CR only ends a line (RFC 4566 §9). An answer echoes
        // parts of the offer (declined m= lines, the telephone-event fmtp), which must not
        // carry either into our SDP: such a line is refused where Amico relies on it, and
        // skipped like any attribute it does not need elsewhere.
        if value.contains(['\0', '\r']) {
            match kind {
                b'm' | b'c' => return Err(invalid("a line without NUL or CR inside")),
                _ => continue,
            }
        }
        match kind {
            b'o' => {
                let mut fields = value.split_whitespace().skip(1);
                origin_session_id = fields.next().map(str::to_owned);
                origin_version = fields.next().map(str::to_owned);
            }
            b'c' => {
                let ip =
                    parse_connection(value).ok_or_else(|| invalid("c=IN IP4|IP6 <IP address>"))?;
                match current.as_mut() {
                    Some(media) => media.connection = Some(ip),
                    None => session_connection = Some(ip),
                }
            }
            b'm' => {
                let description = parse_media(value)
                    .ok_or_else(|| invalid("m=<media> <port> <protocol> <format>..."))?;
                done.extend(current.take());
                current = Some(MediaBuilder {
                    description,
                    connection: None,
                    direction: None,
                    rtpmaps: Vec::new(),
                    fmtps: Vec::new(),
                });
            }
            b'a' => {
                let (name, argument) = match value.split_once(':') {
                    Some((name, argument)) => (name.trim(), Some(argument.trim())),
                    None => (value, None),
                };
                let direction = match name {
                    "sendrecv" => Some(Direction::SendRecv),
                    "sendonly" => Some(Direction::SendOnly),
                    "recvonly" => Some(Direction::RecvOnly),
                    "inactive" => Some(Direction::Inactive),
                    _ => None,
                };
                if let Some(direction) = direction {
                    match current.as_mut() {
                        Some(media) => media.direction = Some(direction),
                        None => session_direction = Some(direction),
                    }
                    continue;
                }
                // rtpmap, fmtp and ptime are media-level only (RFC 4566 §6); at session level
                // they are meaningless and skipped.
                let (Some(media), Some(argument)) = (current.as_mut(), argument) else {
                    continue;
                };
                match name {
                    "rtpmap" => {
                        let rtpmap = parse_rtpmap(argument).ok_or_else(|| {
                            invalid("a=rtpmap:<payload type> <encoding>/<clock rate>[/<channels>]")
                        })?;
                        media.rtpmaps.push(rtpmap);
                    }
                    "fmtp" => {
                        let (pt, params) = argument
                            .split_once(char::is_whitespace)
                            .unwrap_or((argument, ""));
                        // Formats of non-RTP streams are not numbers; only RTP ones matter here.
                        if let Ok(pt) = pt.parse::<u8>() {
                            media.fmtps.push((pt, params.trim().to_owned()));
                        }
                    }
                    "ptime" => {
                        // Some stacks write a fraction (`a=ptime:20.0`); keep the whole part.
                        let whole = argument.split('.').next().unwrap_or(argument);
                        media.description.ptime = whole.parse().ok();
                    }
                    _ => {}
                }
            }
            // v, s, t, b, i, u, e, p, z, k, r carry nothing audio anchoring needs.
            _ => {}
        }
    }
    done.extend(current.take());

    let media: Vec<MediaDescription> = done
        .into_iter()
        .map(|builder| builder.finish(session_connection, session_direction))
        .collect();
    let audio = media
        .iter()
        .position(MediaDescription::is_usable_audio)
        .or_else(|| media.iter().position(|m| m.media == "audio"))
        .ok_or(MediaError::SdpNoAudio)?;
    if media[audio].port != 0 && media[audio].connection.is_none() {
        return Err(MediaError::SdpNoConnection);
    }
    Ok(SessionDescription {
        origin_session_id,
        origin_version,
        media,
        audio,
    })
}

fn parse_connection(value: &str) -> Option<IpAddr> {
    let mut fields = value.split_whitespace();
    let (network, address_type, address) = (fields.next()?, fields.next()?, fields.next()?);
    if !network.eq_ignore_ascii_case("IN") {
        return None;
    }
    // A multicast address may carry /ttl/count (RFC 4566 §5.7).
    let ip: IpAddr = address.split('/').next()?.parse().ok()?;
    match (address_type.to_ascii_uppercase().as_str(), ip) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Some(ip),
        _ => None,
    }
}

fn parse_media(value: &str) -> Option<MediaDescription> {
    let mut fields = value.split_whitespace();
    let media = fields.next()?.to_owned();
    // `<port>/<number of ports>` (RFC 4566 §5.14) is not used for audio; keep the base port.
    let port = fields.next()?.split('/').next()?.parse().ok()?;
    let protocol = fields.next()?.to_owned();
    let format_list: Vec<&str> = fields.collect();
    let formats = format_list
        .iter()
        .filter_map(|token| token.parse::<u8>().ok())
        .filter(|pt| *pt < 128)
        .map(|payload_type| PayloadFormat {
            payload_type,
            encoding_name: None,
            clock_rate: None,
            fmtp: None,
        })
        .collect();
    Some(MediaDescription {
        media,
        port,
        protocol,
        formats,
        format_list: format_list.join(" "),
        connection: None,
        direction: Direction::SendRecv,
        ptime: None,
    })
}

fn parse_rtpmap(argument: &str) -> Option<(u8, String, u32)> {
    let (pt, encoding) = argument.split_once(char::is_whitespace)?;
    let mut parts = encoding.trim().split('/');
    let name = parts.next().filter(|name| !name.is_empty())?;
    let rate = parts.next()?.trim().parse().ok()?;
    Some((pt.parse().ok()?, name.to_owned(), rate))
}

/// Answers an offer (RFC 3264 §6).
///
/// Picks the first offered codec that is in `supported` (in the offerer's order, §6.1), keeps
/// `telephone-event/8000` if offered (with its PT as offered), and mirrors the direction
/// (sendonly→recvonly, inactive→inactive). Every other `m=` line is declined with port 0.
/// `local` is the address the remote must send to: the advertised IP, never a wildcard.
///
/// Returns the answer body and what the offerer said about its own audio, ready for
/// [`MediaSession::start`](crate::MediaSession::start) or
/// [`MediaSession::update_remote`](crate::MediaSession::update_remote).
/// [`MediaError::NoCommonCodec`] means the SIP layer answers 488.
pub fn answer(
    offer: &SessionDescription,
    local: SocketAddr,
    supported: &[Codec],
    session: &SdpSession,
) -> Result<(String, RemoteMedia), MediaError> {
    let audio = offer.audio();
    if !audio.is_rtp_avp() {
        return Err(MediaError::UnsupportedTransport {
            protocol: audio.protocol.clone(),
        });
    }
    if audio.port == 0 {
        return Err(MediaError::AudioDeclined);
    }
    let chosen = audio
        .formats
        .iter()
        .find(|format| {
            format
                .codec()
                .is_some_and(|codec| supported.contains(&codec))
        })
        .ok_or(MediaError::NoCommonCodec)?;
    let codec = chosen.codec().ok_or(MediaError::NoCommonCodec)?;
    let telephone_event = audio
        .formats
        .iter()
        .find(|format| format.is_telephone_event());
    let format = AudioFormat {
        codec,
        payload_type: chosen.payload_type,
        telephone_event: telephone_event.map(|format| format.payload_type),
    };
    let remote = RemoteMedia {
        addr: audio.addr().ok_or(MediaError::SdpNoConnection)?,
        format,
        direction: audio.direction,
    };

    let mut body = session_header(local.ip(), session);
    for (index, media) in offer.media.iter().enumerate() {
        if index == offer.audio {
            let events = telephone_event
                .and_then(|format| format.fmtp.as_deref())
                .unwrap_or(DEFAULT_TELEPHONE_EVENTS);
            write_audio(
                &mut body,
                local.port(),
                &audio.protocol,
                &[(format.payload_type, codec)],
                format.telephone_event.map(|pt| (pt, events)),
                audio.direction.mirrored(),
            );
        } else {
            // RFC 3264 §6: a declined stream keeps its place, with port 0 and any format.
            let _ = write!(
                body,
                "m={} 0 {} {}\r\n",
                media.media, media.protocol, media.format_list
            );
        }
    }
    Ok((body, remote))
}

/// Builds an offer for an outgoing leg (to an agent's phone): `codecs` in order of
/// preference with their static payload types (an empty list offers PCMU and PCMA),
/// `telephone-event/8000` with the given PT and events 0-16 when `telephone_event` is `Some`
/// (use [`DEFAULT_TELEPHONE_EVENT_PT`] unless there is a reason not to), `a=sendrecv` and
/// `a=ptime:20`. `local` is the address the phone must send to: the advertised IP, never a
/// wildcard (`0.0.0.0` in `c=` would mean hold).
pub fn offer(
    local: SocketAddr,
    codecs: &[Codec],
    telephone_event: Option<u8>,
    session: &SdpSession,
) -> String {
    let codecs = if codecs.is_empty() {
        &[Codec::Pcmu, Codec::Pcma][..]
    } else {
        codecs
    };
    let formats: Vec<(u8, Codec)> = codecs
        .iter()
        .map(|codec| (codec.payload_type(), *codec))
        .collect();
    let mut body = session_header(local.ip(), session);
    write_audio(
        &mut body,
        local.port(),
        "RTP/AVP",
        &formats,
        telephone_event.map(|pt| (pt, DEFAULT_TELEPHONE_EVENTS)),
        Direction::SendRecv,
    );
    body
}

/// Reads the remote's answer to an [`offer`]: the first audio codec in the answer that we
/// offered (RFC 3264 §6.1: the answerer's preferred one), and its telephone-event PT if it
/// kept one.
pub fn accept_answer(
    answer: &SessionDescription,
    offered: &[Codec],
) -> Result<RemoteMedia, MediaError> {
    let audio = answer.audio();
    if !audio.is_rtp_avp() {
        return Err(MediaError::UnsupportedTransport {
            protocol: audio.protocol.clone(),
        });
    }
    if audio.port == 0 {
        return Err(MediaError::AudioDeclined);
    }
    let offered = if offered.is_empty() {
        &[Codec::Pcmu, Codec::Pcma][..]
    } else {
        offered
    };
    let chosen = audio
        .formats
        .iter()
        .find_map(|format| {
            format
                .codec()
                .filter(|codec| offered.contains(codec))
                .map(|codec| (format.payload_type, codec))
        })
        .ok_or_else(|| MediaError::AnswerNotOffered {
            payload_types: audio
                .formats
                .iter()
                .map(|format| format.payload_type)
                .collect(),
        })?;
    Ok(RemoteMedia {
        addr: audio.addr().ok_or(MediaError::SdpNoConnection)?,
        format: AudioFormat {
            codec: chosen.1,
            payload_type: chosen.0,
            telephone_event: audio
                .formats
                .iter()
                .find(|format| format.is_telephone_event())
                .map(|format| format.payload_type),
        },
        direction: audio.direction,
    })
}

fn address_type(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

fn session_header(ip: IpAddr, session: &SdpSession) -> String {
    let kind = address_type(ip);
    format!(
        "v=0\r\no=amico {} {} IN {kind} {ip}\r\ns=Amico\r\nc=IN {kind} {ip}\r\nt=0 0\r\n",
        session.id, session.version
    )
}

fn write_audio(
    body: &mut String,
    port: u16,
    protocol: &str,
    formats: &[(u8, Codec)],
    telephone_event: Option<(u8, &str)>,
    direction: Direction,
) {
    let _ = write!(body, "m=audio {port} {protocol}");
    for (pt, _) in formats {
        let _ = write!(body, " {pt}");
    }
    if let Some((pt, _)) = telephone_event {
        let _ = write!(body, " {pt}");
    }
    body.push_str("\r\n");
    for (pt, codec) in formats {
        let _ = write!(
            body,
            "a=rtpmap:{pt} {}/{}\r\n",
            codec.encoding_name(),
            codec.clock_rate()
        );
    }
    if let Some((pt, events)) = telephone_event {
        let _ = write!(
            body,
            "a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} {events}\r\n"
        );
    }
    let _ = write!(body, "a=ptime:{PTIME_MS}\r\na={}\r\n", direction.as_str());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(lines: &[&str]) -> String {
        lines.iter().map(|line| format!("{line}\r\n")).collect()
    }

    /// pjsua 2.15 with every codec built in: telephone-event at 16 kHz as 96 (for the
    /// wideband codecs) listed before the 8 kHz one as 101.
    fn pjsip_offer() -> String {
        body(&[
            "v=0",
            "o=- 3927034012 3927034012 IN IP4 192.168.1.20",
            "s=pjmedia",
            "b=AS:117",
            "t=0 0",
            "a=X-nat:0",
            "m=audio 4000 RTP/AVP 98 97 99 104 3 0 8 9 96 101",
            "c=IN IP4 192.168.1.20",
            "b=TIAS:96000",
            "a=rtcp:4001 IN IP4 192.168.1.20",
            "a=sendrecv",
            "a=rtpmap:98 speex/16000",
            "a=rtpmap:97 speex/8000",
            "a=rtpmap:99 speex/32000",
            "a=rtpmap:104 iLBC/8000",
            "a=fmtp:104 mode=30",
            "a=rtpmap:3 GSM/8000",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:9 G722/8000",
            "a=rtpmap:96 telephone-event/16000",
            "a=fmtp:96 0-16",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            "a=ssrc:1247283941 cname:6c2d6f5c4c6f2b5e",
        ])
    }

    /// baresip 1.0: connection at session level, opus first, direction after the formats.
    fn baresip_offer() -> String {
        body(&[
            "v=0",
            "o=- 1680172467 3196148395 IN IP4 192.168.1.30",
            "s=-",
            "c=IN IP4 192.168.1.30",
            "t=0 0",
            "m=audio 10000 RTP/AVP 96 9 0 8 101",
            "b=AS:104",
            "a=rtpmap:96 opus/48000/2",
            "a=fmtp:96 stereo=1;sprop-stereo=1",
            "a=rtpmap:9 G722/8000",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-15",
            "a=sendrecv",
            "a=label:1",
            "a=ssrc:2914126521 cname:1a4c3e4e-9b8b-4d0e-bb44-4e2f3d1f0b8a",
            "a=rtcp-rsize",
            "a=ptime:20",
        ])
    }

    /// linphone 5: ICE, RTCP feedback, telephone-event at three rates and a video stream.
    fn linphone_offer() -> String {
        body(&[
            "v=0",
            "o=alice 2273 1432 IN IP4 192.168.1.40",
            "s=Talk",
            "c=IN IP4 192.168.1.40",
            "t=0 0",
            "a=ice-pwd:31ec21eb38b2ec6d36e8dc7b",
            "a=ice-ufrag:e31cb4c8",
            "a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics",
            "a=record:off",
            "m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100",
            "a=rtpmap:96 opus/48000/2",
            "a=fmtp:96 useinbandfec=1",
            "a=rtpmap:97 speex/16000",
            "a=fmtp:97 vbr=on",
            "a=rtpmap:98 speex/8000",
            "a=fmtp:98 vbr=on",
            "a=fmtp:18 annexb=yes",
            "a=rtpmap:101 telephone-event/48000",
            "a=rtpmap:99 telephone-event/16000",
            "a=rtpmap:100 telephone-event/8000",
            "a=rtcp:7079",
            "a=candidate:1 1 UDP 2130706303 192.168.1.40 7078 typ host",
            "a=candidate:1 2 UDP 2130706302 192.168.1.40 7079 typ host",
            "a=rtcp-fb:* trr-int 1000",
            "a=rtcp-fb:* ccm tmmbr",
            "m=video 9078 RTP/AVP 96 97",
            "a=rtpmap:96 VP8/90000",
            "a=rtpmap:97 H264/90000",
            "a=fmtp:97 profile-level-id=42801F",
            "a=rtcp-fb:* trr-int 1000",
            "a=rtcp-fb:96 nack pli",
            "a=rtcp-fb:96 ccm fir",
            "a=rtcp-fb:96 goog-lntf",
        ])
    }

    /// Asterisk 20 on a trunk: PCMA preferred, ptime and maxptime, events 0-16.
    fn asterisk_offer() -> String {
        body(&[
            "v=0",
            "o=- 1914412339 1914412339 IN IP4 10.0.0.5",
            "s=Asterisk",
            "c=IN IP4 10.0.0.5",
            "t=0 0",
            "m=audio 17530 RTP/AVP 8 0 3 101",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:3 GSM/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            "a=ptime:20",
            "a=maxptime:150",
            "a=sendrecv",
        ])
    }

    fn session() -> SdpSession {
        SdpSession::new(4711)
    }

    fn local() -> SocketAddr {
        "203.0.113.7:30000".parse().unwrap()
    }

    const BOTH: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

    /// Checks that Amico's SDP has the mandatory lines in RFC 4566 §5 order and reads back.
    fn assert_well_formed(sdp: &str) -> SessionDescription {
        assert!(sdp.ends_with("\r\n"));
        let kinds: Vec<char> = sdp
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(|l| l.chars().next().unwrap())
            .collect();
        assert_eq!(&kinds[..5], &['v', 'o', 's', 'c', 't'], "{sdp}");
        for line in sdp.split("\r\n").filter(|l| !l.is_empty()) {
            assert_eq!(&line[1..2], "=", "{line}");
            assert!(!line.ends_with(' '), "{line:?}");
        }
        parse(sdp).expect("Amico's own SDP parses")
    }

    #[test]
    fn pjsip_offer_gets_pcmu_and_the_8khz_telephone_event() {
        let offer = parse(&pjsip_offer()).unwrap();
        assert_eq!(
            offer.connection_address(),
            Some("192.168.1.20".parse().unwrap())
        );
        assert_eq!(offer.audio_port(), 4000);
        assert!(offer.is_rtp_avp());
        assert_eq!(offer.payload_formats().len(), 10);
        assert_eq!(offer.origin_version(), Some("3927034012"));
        let (sdp, remote) = answer(&offer, local(), &BOTH, &session()).unwrap();
        assert_eq!(remote.addr, "192.168.1.20:4000".parse().unwrap());
        assert_eq!(
            remote.format,
            AudioFormat {
                codec: Codec::Pcmu,
                payload_type: 0,
                telephone_event: Some(101)
            }
        );
        assert_eq!(remote.direction, Direction::SendRecv);
        let expected = body(&[
            "v=0",
            "o=amico 4711 4711 IN IP4 203.0.113.7",
            "s=Amico",
            "c=IN IP4 203.0.113.7",
            "t=0 0",
            "m=audio 30000 RTP/AVP 0 101",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            "a=ptime:20",
            "a=sendrecv",
        ]);
        assert_eq!(sdp, expected);
        assert_well_formed(&sdp);
    }

    #[test]
    fn baresip_offer_skips_opus_and_g722_and_keeps_its_event_range() {
        let offer = parse(&baresip_offer()).unwrap();
        assert_eq!(offer.audio().ptime, Some(20));
        let (sdp, remote) = answer(&offer, local(), &BOTH, &session()).unwrap();
        assert_eq!(remote.addr, "192.168.1.30:10000".parse().unwrap());
        assert_eq!(remote.format.codec, Codec::Pcmu);
        assert_eq!(remote.format.telephone_event, Some(101));
        assert!(sdp.contains("m=audio 30000 RTP/AVP 0 101\r\n"), "{sdp}");
        // RFC 4733 §2.4.1: answer only events the offerer can handle.
        assert!(sdp.contains("a=fmtp:101 0-15\r\n"), "{sdp}");
    }

    #[test]
    fn supported_list_filters_but_the_offerer_order_wins() {
        let offer = parse(&baresip_offer()).unwrap();
        let (_, remote) = answer(&offer, local(), &[Codec::Pcma], &session()).unwrap();
        assert_eq!(remote.format.codec, Codec::Pcma);
        // Offer order (PCMU before PCMA) wins over our list's order.
        let (_, remote) = answer(&offer, local(), &[Codec::Pcma, Codec::Pcmu], &session()).unwrap();
        assert_eq!(remote.format.codec, Codec::Pcmu);
    }

    #[test]
    fn linphone_offer_declines_video_and_tolerates_ice_and_rtcp_fb() {
        let offer = parse(&linphone_offer()).unwrap();
        assert_eq!(offer.media().len(), 2);
        assert_eq!(
            offer.media()[1].connection,
            Some("192.168.1.40".parse().unwrap())
        );
        let g729 = offer
            .payload_formats()
            .iter()
            .find(|f| f.payload_type == 18)
            .unwrap();
        assert_eq!(g729.encoding_name.as_deref(), Some("G729"));
        assert_eq!(g729.fmtp.as_deref(), Some("annexb=yes"));
        let (sdp, remote) = answer(&offer, local(), &BOTH, &session()).unwrap();
        assert_eq!(
            remote.format,
            AudioFormat {
                codec: Codec::Pcmu,
                payload_type: 0,
                telephone_event: Some(100)
            }
        );
        assert!(sdp.contains("m=audio 30000 RTP/AVP 0 100\r\n"), "{sdp}");
        assert!(sdp.ends_with("m=video 0 RTP/AVP 96 97\r\n"), "{sdp}");
        let reread = assert_well_formed(&sdp);
        assert_eq!(reread.media().len(), 2);
        assert_eq!(reread.media()[1].port, 0);
    }

    #[test]
    fn asterisk_offer_gets_pcma_with_events_0_to_16() {
        let offer = parse(&asterisk_offer()).unwrap();
        assert_eq!(offer.audio().ptime, Some(20));
        let (sdp, remote) = answer(&offer, local(), &BOTH, &session()).unwrap();
        assert_eq!(
            remote.format,
            AudioFormat {
                codec: Codec::Pcma,
                payload_type: 8,
                telephone_event: Some(101)
            }
        );
        assert!(
            sdp.contains("m=audio 30000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"),
            "{sdp}"
        );
        assert!(sdp.contains("a=fmtp:101 0-16\r\n"));
    }

    #[test]
    fn hold_reinvite_with_sendonly_is_answered_recvonly() {
        let mut session = session();
        let hold = asterisk_offer()
            .replace("o=- 1914412339 1914412339", "o=- 1914412339 1914412340")
            .replace("a=sendrecv", "a=sendonly");
        let offer = parse(&hold).unwrap();
        assert_eq!(offer.direction(), Direction::SendOnly);
        session.bump();
        let (sdp, remote) = answer(&offer, local(), &BOTH, &session).unwrap();
        assert_eq!(remote.direction, Direction::SendOnly);
        assert!(!remote.accepts_rtp());
        assert!(sdp.contains("a=recvonly\r\n"), "{sdp}");
        assert!(sdp.contains("o=amico 4711 4712 IN IP4"), "{sdp}");
    }

    #[test]
    fn hold_reinvite_with_zero_address_is_read_as_rfc_2543_hold() {
        let hold = body(&[
            "v=0",
            "o=Cisco-SIPUA 2202 2203 IN IP4 192.168.1.50",
            "s=SIP Call",
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            "m=audio 25202 RTP/AVP 0 101",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-15",
        ]);
        let offer = parse(&hold).unwrap();
        let (_, remote) = answer(&offer, local(), &BOTH, &session()).unwrap();
        assert!(remote.addr.ip().is_unspecified());
        assert!(!remote.accepts_rtp());
        assert!(!remote.sends_rtp());
    }

    #[test]
    fn g729_only_offer_has_no_common_codec() {
        let offer = parse(&body(&[
            "v=0",
            "o=- 1 1 IN IP4 10.1.1.1",
            "s=-",
            "c=IN IP4 10.1.1.1",
            "t=0 0",
            "m=audio 5004 RTP/AVP 18 101",
            "a=rtpmap:18 G729/8000",
            "a=fmtp:18 annexb=no",
            "a=rtpmap:101 telephone-event/8000",
        ]))
        .unwrap();
        assert!(matches!(
            answer(&offer, local(), &BOTH, &session()),
            Err(MediaError::NoCommonCodec)
        ));
    }

    #[test]
    fn srtp_only_offer_names_its_transport() {
        let offer = parse(&asterisk_offer().replace("RTP/AVP", "RTP/SAVP")).unwrap();
        let error = answer(&offer, local(), &BOTH, &session()).unwrap_err();
        assert!(
            matches!(&error, MediaError::UnsupportedTransport { protocol }
                if protocol == "RTP/SAVP")
        );
    }

    #[test]
    fn static_payload_types_need_no_rtpmap_and_lf_only_bodies_parse() {
        let lf_only = "v=0\no=- 1 1 IN IP4 10.0.0.9\ns=-\nc=IN IP4 10.0.0.9\nt=0 0\n";
        let offer = parse(&format!("{lf_only}m=audio 6000 RTP/AVP 8 0\n")).unwrap();
        let (_, remote) = answer(&offer, local(), &BOTH, &session()).unwrap();
        assert_eq!(
            remote.format,
            AudioFormat {
                codec: Codec::Pcma,
                payload_type: 8,
                telephone_event: None
            }
        );
    }

    #[test]
    fn a_dynamic_payload_type_for_pcmu_is_kept() {
        let offer = parse(&body(&[
            "v=0",
            "o=- 1 1 IN IP4 10.0.0.9",
            "s=-",
            "c=IN IP4 10.0.0.9",
            "t=0 0",
            "m=audio 6000 RTP/AVP 110",
            "a=rtpmap:110 pcmu/8000",
            "a=sendonly ",
        ]))
        .unwrap();
        assert_eq!(
            offer.direction(),
            Direction::SendOnly,
            "trailing space after the attribute"
        );
        let (sdp, remote) = answer(&offer, local(), &BOTH, &session()).unwrap();
        assert_eq!(remote.format.payload_type, 110);
        assert!(sdp.contains("a=rtpmap:110 PCMU/8000\r\n"));
    }

    #[test]
    fn errors_name_the_bad_line() {
        let error = parse("v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\nc=IN IP4 not-an-ip\r\n").unwrap_err();
        assert!(
            matches!(&error, MediaError::SdpInvalidLine { line: 3, text, .. }
                if text == "c=IN IP4 not-an-ip")
        );
        assert!(error.to_string().contains("line 3"), "{error}");
        let error = parse("hello world").unwrap_err();
        assert!(matches!(error, MediaError::SdpInvalidLine { line: 1, .. }));
        let error = parse(&asterisk_offer().replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:0 PCMU"))
            .unwrap_err();
        assert!(
            matches!(error, MediaError::SdpInvalidLine { line: 8, .. }),
            "{error}"
        );
        assert!(matches!(
            parse("v=0\r\ns=-\r\n"),
            Err(MediaError::SdpNoAudio)
        ));
        assert!(matches!(
            parse("v=0\r\nm=audio 4000 RTP/AVP 0\r\n"),
            Err(MediaError::SdpNoConnection)
        ));
        assert!(matches!(parse(""), Err(MediaError::SdpNoAudio)));
    }

    #[test]
    fn offer_lists_codecs_in_order_with_telephone_event() {
        let sdp = offer(
            local(),
            &[Codec::Pcma, Codec::Pcmu],
            Some(DEFAULT_TELEPHONE_EVENT_PT),
            &session(),
        );
        let expected = body(&[
            "v=0",
            "o=amico 4711 4711 IN IP4 203.0.113.7",
            "s=Amico",
            "c=IN IP4 203.0.113.7",
            "t=0 0",
            "m=audio 30000 RTP/AVP 8 0 101",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            "a=ptime:20",
            "a=sendrecv",
        ]);
        assert_eq!(sdp, expected);
        assert_well_formed(&sdp);
        let without = offer(
            "[2001:db8::7]:30002".parse().unwrap(),
            &[Codec::Pcmu],
            None,
            &session(),
        );
        assert!(without.contains("c=IN IP6 2001:db8::7\r\n"));
        assert!(without.contains("m=audio 30002 RTP/AVP 0\r\n"));
        assert!(!without.contains("telephone-event"));
    }

    #[test]
    fn accept_answer_takes_the_answerers_choice_among_ours() {
        let ours = [Codec::Pcma, Codec::Pcmu];
        let reply = body(&[
            "v=0",
            "o=- 5 5 IN IP4 192.168.1.20",
            "s=pjmedia",
            "t=0 0",
            "m=audio 4002 RTP/AVP 0 8 96",
            "c=IN IP4 192.168.1.20",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:96 telephone-event/8000",
            "a=fmtp:96 0-16",
        ]);
        let remote = accept_answer(&parse(&reply).unwrap(), &ours).unwrap();
        assert_eq!(remote.addr, "192.168.1.20:4002".parse().unwrap());
        assert_eq!(
            remote.format,
            AudioFormat {
                codec: Codec::Pcmu,
                payload_type: 0,
                telephone_event: Some(96)
            }
        );

        let g722 = reply.replace("RTP/AVP 0 8 96", "RTP/AVP 9");
        let error = accept_answer(&parse(&g722).unwrap(), &ours).unwrap_err();
        assert!(
            matches!(&error, MediaError::AnswerNotOffered { payload_types }
                if payload_types == &[9])
        );
        let pcma_only = accept_answer(&parse(&reply).unwrap(), &[Codec::Pcma]).unwrap();
        assert_eq!(pcma_only.format.codec, Codec::Pcma);
        let declined = reply.replace("m=audio 4002", "m=audio 0");
        assert!(matches!(
            accept_answer(&parse(&declined).unwrap(), &ours),
            Err(MediaError::AudioDeclined)
        ));
    }

    #[test]
    fn nul_or_cr_inside_a_line_never_reaches_our_answer() {
        // Found by the fuzz target sdp (minimised): a NUL in a declined m= line was echoed
        // into the answer.
        let declined = "m=audio 4 RTP/AVP 0\nc=IN IP4 9.6.1.0\nm=a 0 R\0";
        assert!(matches!(
            parse(declined),
            Err(MediaError::SdpInvalidLine { line: 3, .. })
        ));
        // In an attribute it is skipped, like any attribute Amico does not need.
        let offer = body(&[
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.5",
            "s=-",
            "c=IN IP4 192.0.2.5",
            "t=0 0",
            "m=audio 4000 RTP/AVP 0 101",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-15\ra=injected\0",
        ]);
        let (answer, remote) = answer(&parse(&offer).unwrap(), local(), &BOTH, &session()).unwrap();
        assert_eq!(remote.format.telephone_event, Some(101));
        assert!(answer.contains("a=fmtp:101 0-16\r\n"), "{answer}");
        assert!(
            !answer.contains(['\0']) && !answer.contains("injected"),
            "{answer}"
        );
    }

    #[test]
    fn session_version_grows_only_when_bumped() {
        let mut session = SdpSession::new(9);
        assert_eq!((session.id(), session.version()), (9, 9));
        let first = offer(local(), &BOTH, None, &session);
        assert_eq!(
            offer(local(), &BOTH, None, &session),
            first,
            "resending keeps the version"
        );
        session.bump();
        assert_eq!(session.version(), 10);
        assert!(offer(local(), &BOTH, None, &session).contains("o=amico 9 10 IN IP4"));
    }
}
