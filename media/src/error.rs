//! The crate's error type.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Why a media operation failed. Each variant is one cause; the SIP layer maps the SDP ones
/// to a 488 (RFC 3261 §21.4.26) and the port ones to a 503; the clip ones are configuration
/// errors, reported at load time before any call is taken.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// An SDP line could not be read. `line` counts from 1.
    #[error("SDP line {line} ({text:?}): expected {expected}")]
    SdpInvalidLine {
        /// The 1-based line number in the body.
        line: usize,
        /// The offending line, as received.
        text: String,
        /// What the line should have looked like.
        expected: &'static str,
    },
    /// The SDP has no `m=audio` line at all.
    #[error("SDP has no audio media line")]
    SdpNoAudio,
    /// The audio media line has no `c=` line at media or session level (RFC 4566 §5.7).
    #[error("SDP audio has no connection address (c=) at media or session level")]
    SdpNoConnection,
    /// Every audio stream was declined (port 0) or none uses plain RTP.
    #[error("SDP audio offered only over {protocol}, and Amico speaks RTP/AVP")]
    UnsupportedTransport {
        /// The transport of the first audio line, e.g. `RTP/SAVP`.
        protocol: String,
    },
    /// The remote's answer declined the audio stream (port 0, RFC 3264 §6).
    #[error("the SDP answer declined the audio stream")]
    AudioDeclined,
    /// None of the offered audio codecs is one we support.
    #[error("no common audio codec")]
    NoCommonCodec,
    /// The remote's answer chose only payload types that we did not offer (RFC 3264 §6.1).
    #[error("the SDP answer chose payload types {payload_types:?}, none of which we offered")]
    AnswerNotOffered {
        /// The audio payload types listed in the answer.
        payload_types: Vec<u8>,
    },
    /// A port range has no even port (RFC 3550 §11) or its bounds are reversed.
    #[error("RTP port range {min}-{max} holds no even port")]
    InvalidPortRange {
        /// The lowest port of the range.
        min: u16,
        /// The highest port of the range.
        max: u16,
    },
    /// Every even port of the range is in use (by us or by another process).
    #[error("RTP port range {min}-{max} on {address} is exhausted")]
    PortRangeExhausted {
        /// The address the pool binds.
        address: IpAddr,
        /// The lowest port of the range.
        min: u16,
        /// The highest port of the range.
        max: u16,
    },
    /// Binding or configuring an RTP socket failed for a reason other than the port being in
    /// use.
    #[error("cannot bind RTP socket on {address}: {source}")]
    Bind {
        /// The address that was being bound.
        address: SocketAddr,
        /// The operating system's error.
        source: io::Error,
    },
    /// A socket was requested outside a Tokio runtime, which it needs to register with.
    #[error("RTP sockets must be created inside a Tokio runtime")]
    NoRuntime,
    /// A prompt or music file could not be read from disk.
    #[error("cannot read {}: {source}", path.display())]
    ClipRead {
        /// The file that was being read.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A prompt or music file is not a WAV file Amico can play.
    #[error("{name}: {problem}")]
    InvalidWav {
        /// The clip's name: the file's path as given, or the name passed with the bytes.
        name: String,
        /// What is wrong with it.
        problem: WavProblem,
    },
}

/// What is wrong with a WAV file, in [`MediaError::InvalidWav`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WavProblem {
    /// The bytes do not start with a RIFF header of form `WAVE`.
    #[error("not a WAV file (no RIFF/WAVE header)")]
    NotWav,
    /// A chunk declares more bytes than the file holds: the file was cut short.
    #[error("truncated: the {chunk:?} chunk declares {declared} bytes but only {available} follow")]
    Truncated {
        /// The chunk's four-character id, e.g. `data`.
        chunk: String,
        /// The length in the chunk's header.
        declared: u32,
        /// The bytes actually left in the file.
        available: usize,
    },
    /// A chunk every WAV file needs is missing.
    #[error("no {chunk:?} chunk")]
    MissingChunk {
        /// `fmt ` or `data`.
        chunk: &'static str,
    },
    /// The `fmt ` chunk is shorter than the 16 bytes that describe the format.
    #[error("the \"fmt \" chunk has {len} bytes, need at least 16")]
    ShortFormat {
        /// The chunk's length.
        len: usize,
    },
    /// The audio is in a format that would need resampling, mixing or a codec.
    #[error("{format}, need 8000 Hz mono 16-bit PCM (or 8-bit G.711 μ-law or A-law)")]
    UnsupportedFormat {
        /// The format the file declares.
        format: WavFormat,
    },
    /// The `data` chunk ends in the middle of a sample.
    #[error(
        "the \"data\" chunk has {len} bytes, not a whole number of {bytes_per_sample}-byte samples"
    )]
    PartialSample {
        /// The chunk's length.
        len: usize,
        /// The size of one sample in the declared format.
        bytes_per_sample: usize,
    },
    /// The `data` chunk holds no sample at all.
    #[error("the \"data\" chunk holds no audio")]
    NoAudio,
}

/// The audio format a WAV file's `fmt ` chunk declares, as shown in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavFormat {
    /// The format tag: 1 PCM, 3 IEEE float, 6 A-law, 7 μ-law (for `WAVE_FORMAT_EXTENSIBLE`
    /// files, the tag of the sub-format).
    pub format_tag: u16,
    /// Interleaved channels.
    pub channels: u16,
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Bits per sample.
    pub bits_per_sample: u16,
}

impl fmt::Display for WavFormat {
    /// E.g. `44100 Hz stereo 16-bit PCM`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} Hz ", self.sample_rate)?;
        match self.channels {
            1 => f.write_str("mono")?,
            2 => f.write_str("stereo")?,
            channels => write!(f, "{channels} channels")?,
        }
        write!(f, " {}-bit ", self.bits_per_sample)?;
        match self.format_tag {
            1 => f.write_str("PCM"),
            3 => f.write_str("float"),
            6 => f.write_str("A-law"),
            7 => f.write_str("μ-law"),
            tag => write!(f, "format 0x{tag:04X}"),
        }
    }
}
