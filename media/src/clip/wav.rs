//! Reading WAV files: a RIFF header of form `WAVE`, then chunks, each a four-character id, a
//! little-endian 32-bit length and that many bytes, padded to an even length (the RIFF layout
//! of Microsoft's Multimedia Programming Interface and Data Specifications 1.0, 1991). Only
//! `fmt ` and `data` matter here; every other chunk is skipped.

use crate::Codec;
use crate::error::{WavFormat, WavProblem};

/// `WAVE_FORMAT_PCM`: linear samples, little-endian.
const FORMAT_PCM: u16 = 1;
/// `WAVE_FORMAT_ALAW`: G.711 A-law codes.
const FORMAT_ALAW: u16 = 6;
/// `WAVE_FORMAT_MULAW`: G.711 μ-law codes.
const FORMAT_MULAW: u16 = 7;
/// `WAVE_FORMAT_EXTENSIBLE`: the real format tag is the first two bytes of the sub-format
/// GUID, 24 bytes into the `fmt ` chunk.
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// The audio of an acceptable file.
#[derive(Debug)]
pub(super) enum Audio<'a> {
    /// 16-bit linear samples.
    Linear(Vec<i16>),
    /// G.711 codes in that law, as stored.
    G711(Codec, &'a [u8]),
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The audio of a WAV file that is 8000 Hz mono, 16-bit PCM or 8-bit G.711.
pub(super) fn parse(bytes: &[u8]) -> Result<Audio<'_>, WavProblem> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavProblem::NotWav);
    }
    // The RIFF length is ignored: streaming writers leave it 0 or too large, and the chunk
    // lengths say all that is needed.
    let (format, data) = chunks(&bytes[12..])?;
    let format = format.ok_or(WavProblem::MissingChunk { chunk: "fmt " })?;
    if format.len() < 16 {
        return Err(WavProblem::ShortFormat { len: format.len() });
    }
    let mut format_tag = u16_at(format, 0);
    if format_tag == FORMAT_EXTENSIBLE && format.len() >= 26 {
        format_tag = u16_at(format, 24);
    }
    let format = WavFormat {
        format_tag,
        channels: u16_at(format, 2),
        sample_rate: u32_at(format, 4),
        bits_per_sample: u16_at(format, 14),
    };
    let codec = match format {
        WavFormat {
            channels: 1,
            sample_rate: 8000,
            ..
        } => match (format.format_tag, format.bits_per_sample) {
            (FORMAT_PCM, 16) => None,
            (FORMAT_MULAW, 8) => Some(Codec::Pcmu),
            (FORMAT_ALAW, 8) => Some(Codec::Pcma),
            _ => return Err(WavProblem::UnsupportedFormat { format }),
        },
        _ => return Err(WavProblem::UnsupportedFormat { format }),
    };
    let data = data.ok_or(WavProblem::MissingChunk { chunk: "data" })?;
    if data.is_empty() {
        return Err(WavProblem::NoAudio);
    }
    Ok(match codec {
        Some(codec) => Audio::G711(codec, data),
        None => {
            if data.len() % 2 != 0 {
                return Err(WavProblem::PartialSample {
                    len: data.len(),
                    bytes_per_sample: 2,
                });
            }
            Audio::Linear(
                data.chunks_exact(2)
                    .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
                    .collect(),
            )
        }
    })
}

/// The bodies of the first `fmt ` and `data` chunks, walking the chunks until both are found;
/// whatever follows them (tags, cue points, trailing garbage) is never read.
type FormatAndData<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

fn chunks(mut rest: &[u8]) -> Result<FormatAndData<'_>, WavProblem> {
    let (mut format, mut data) = (None, None);
    // Fewer than 8 bytes cannot hold a chunk header: a stray pad byte at the end.
    while rest.len() >= 8 && (format.is_none() || data.is_none()) {
        let id = &rest[..4];
        let declared = u32_at(rest, 4);
        let available = rest.len() - 8;
        let Some(body) = usize::try_from(declared)
            .ok()
            .and_then(|len| rest[8..].get(..len))
        else {
            return Err(WavProblem::Truncated {
                chunk: id.escape_ascii().to_string(),
                declared,
                available,
            });
        };
        match id {
            b"fmt " => {
                format.get_or_insert(body);
            }
            b"data" => {
                data.get_or_insert(body);
            }
            _ => {}
        }
        // The pad byte of an odd-length chunk is not counted in its length; a file that
        // omits it on its last chunk is tolerated.
        let next = (8 + body.len() + body.len() % 2).min(rest.len());
        rest = &rest[next..];
    }
    Ok((format, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensible_files_use_the_sub_format_tag() {
        let mut fmt = Vec::new();
        for field in [FORMAT_EXTENSIBLE, 1] {
            fmt.extend_from_slice(&field.to_le_bytes());
        }
        fmt.extend_from_slice(&8000u32.to_le_bytes());
        fmt.extend_from_slice(&16000u32.to_le_bytes());
        for field in [2u16, 16, 22, 16] {
            fmt.extend_from_slice(&field.to_le_bytes());
        }
        fmt.extend_from_slice(&4u32.to_le_bytes()); // channel mask: front centre
        // KSDATAFORMAT_SUBTYPE_PCM: 00000001-0000-0010-8000-00aa00389b71.
        fmt.extend_from_slice(&[
            1, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71,
        ]);
        assert_eq!(fmt.len(), 40);
        let mut file = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        file.extend_from_slice(&40u32.to_le_bytes());
        file.extend_from_slice(&fmt);
        file.extend_from_slice(b"data\x04\0\0\0\x01\x00\xFF\xFF");
        let Ok(Audio::Linear(samples)) = parse(&file) else {
            panic!("extensible PCM is PCM");
        };
        assert_eq!(samples, [1, -1]);
    }

    #[test]
    fn data_before_fmt_and_trailing_garbage_are_fine() {
        let mut file = b"RIFF\xFF\xFF\xFF\xFFWAVE".to_vec();
        file.extend_from_slice(b"data\x03\0\0\0\x01\x02\x03\0");
        file.extend_from_slice(b"fmt \x10\0\0\0");
        for field in [FORMAT_MULAW, 1] {
            file.extend_from_slice(&field.to_le_bytes());
        }
        file.extend_from_slice(&8000u32.to_le_bytes());
        file.extend_from_slice(&8000u32.to_le_bytes());
        for field in [1u16, 8] {
            file.extend_from_slice(&field.to_le_bytes());
        }
        file.extend_from_slice(b"id3 \xFF\xFF\xFF\x7Fgarbage");
        let Ok(Audio::G711(Codec::Pcmu, codes)) = parse(&file) else {
            panic!("a μ-law file");
        };
        assert_eq!(codes, [1, 2, 3]);
    }
}
