//! Prompts and music on hold: audio loaded once from a file and kept ready to send.

mod wav;

use crate::source::FRAME_SAMPLES;
use crate::{Codec, MediaError, g711};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A piece of audio for the waiting caller (a prompt, a piece of music), loaded once and held
/// pre-encoded in both G.711 laws, cut into 20 ms frames.
///
/// Encoding happens here, at load time: playing a clip to a caller only copies the frames of
/// the caller's law into packets, whatever the number of callers hearing it. The last frame
/// is padded with silence of each law. Cloning is cheap (the audio is shared), so one clip
/// loaded at startup serves every call.
///
/// Memory: two bytes per sample (one per law), 16 kB per second of audio; a three-minute
/// piece of music takes 2.9 MB.
#[derive(Clone)]
pub struct Clip(Arc<ClipData>);

struct ClipData {
    name: Box<str>,
    /// Samples of audio before the padding of the last frame.
    samples: usize,
    /// `frames × 160` μ-law codes.
    pcmu: Box<[u8]>,
    /// `frames × 160` A-law codes.
    pcma: Box<[u8]>,
}

impl Clip {
    /// Loads a WAV file: 8000 Hz mono, 16-bit linear PCM or 8-bit G.711 (format tags 7
    /// μ-law and 6 A-law). Any other rate, channel count or encoding is a
    /// [`MediaError::InvalidWav`] naming the file and what is wrong with it; nothing is
    /// resampled or mixed down, so what was recorded is what callers hear. Chunks other than
    /// `fmt ` and `data` (`LIST`, `fact`, `cue `...) are skipped.
    ///
    /// This reads the file with blocking IO: call it at startup or from
    /// `tokio::task::spawn_blocking`, not from a call's task.
    pub fn from_wav(path: &Path) -> Result<Clip, MediaError> {
        let bytes = std::fs::read(path).map_err(|source| MediaError::ClipRead {
            path: path.to_owned(),
            source,
        })?;
        Self::from_wav_bytes(&bytes, &path.display().to_string())
    }

    /// Loads a WAV file already in memory, as [`from_wav`](Self::from_wav) does; `name`
    /// identifies it in errors and logs (a path, a config key).
    pub fn from_wav_bytes(bytes: &[u8], name: &str) -> Result<Clip, MediaError> {
        let audio = wav::parse(bytes).map_err(|problem| MediaError::InvalidWav {
            name: name.to_owned(),
            problem,
        })?;
        Ok(match audio {
            wav::Audio::Linear(samples) => Self::from_samples(&samples, name),
            wav::Audio::G711(codec, codes) => Self::from_g711(codec, codes, name),
        })
    }

    /// A clip of 8 kHz linear samples: synthesized audio (beeps, tones) and tests. An empty
    /// slice gives a clip of no frames, which a playlist skips.
    pub fn from_samples(samples: &[i16], name: &str) -> Clip {
        let frames = samples.len().div_ceil(FRAME_SAMPLES);
        let mut padded = Vec::with_capacity(frames * FRAME_SAMPLES);
        padded.extend_from_slice(samples);
        padded.resize(frames * FRAME_SAMPLES, 0);
        let mut pcmu = Vec::new();
        let mut pcma = Vec::new();
        g711::encode(Codec::Pcmu, &padded, &mut pcmu);
        g711::encode(Codec::Pcma, &padded, &mut pcma);
        Self::new(name, samples.len(), pcmu, pcma)
    }

    /// A clip recorded in one law: those codes are kept exactly and the other law is made by
    /// table, as the relay does, rather than through a lossy second quantization step.
    fn from_g711(codec: Codec, codes: &[u8], name: &str) -> Clip {
        let frames = codes.len().div_ceil(FRAME_SAMPLES);
        let mut native = Vec::with_capacity(frames * FRAME_SAMPLES);
        native.extend_from_slice(codes);
        let silence = match codec {
            Codec::Pcmu => g711::ulaw_encode(0),
            Codec::Pcma => g711::alaw_encode(0),
        };
        native.resize(frames * FRAME_SAMPLES, silence);
        let other_codec = match codec {
            Codec::Pcmu => Codec::Pcma,
            Codec::Pcma => Codec::Pcmu,
        };
        let mut other = Vec::new();
        g711::transcode(codec, other_codec, &native, &mut other);
        let (pcmu, pcma) = match codec {
            Codec::Pcmu => (native, other),
            Codec::Pcma => (other, native),
        };
        Self::new(name, codes.len(), pcmu, pcma)
    }

    fn new(name: &str, samples: usize, pcmu: Vec<u8>, pcma: Vec<u8>) -> Clip {
        Clip(Arc::new(ClipData {
            name: name.into(),
            samples,
            pcmu: pcmu.into_boxed_slice(),
            pcma: pcma.into_boxed_slice(),
        }))
    }

    /// The name given at load time: the file's path for [`from_wav`](Self::from_wav).
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// How long the audio lasts, without the padding of the last frame.
    pub fn duration(&self) -> Duration {
        // 125 µs per sample at 8000 Hz.
        Duration::from_micros(self.0.samples as u64 * 125)
    }

    /// The number of 20 ms frames (packets) the clip plays as, the last one padded.
    pub fn frames(&self) -> usize {
        self.0.pcmu.len() / FRAME_SAMPLES
    }

    /// Frame `index` (from 0) encoded in `codec`'s law: the 160-byte payload of one RTP
    /// packet. `None` past the end.
    pub fn frame(&self, codec: Codec, index: usize) -> Option<&[u8]> {
        let encoded = match codec {
            Codec::Pcmu => &self.0.pcmu,
            Codec::Pcma => &self.0.pcma,
        };
        let start = index.checked_mul(FRAME_SAMPLES)?;
        encoded.get(start..start.checked_add(FRAME_SAMPLES)?)
    }

    /// Whether both handles share the same loaded audio.
    pub fn ptr_eq(&self, other: &Clip) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for Clip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clip")
            .field("name", &self.name())
            .field("frames", &self.frames())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WavProblem;
    use crate::test_support::{goertzel_ratio, tone};

    /// A WAV file with the given format fields, the chunks before `data`, and `data`.
    pub(super) fn wav(
        format_tag: u16,
        channels: u16,
        sample_rate: u32,
        bits_per_sample: u16,
        extra_chunks: &[(&[u8; 4], &[u8])],
        data: &[u8],
    ) -> Vec<u8> {
        let block_align = channels * bits_per_sample / 8;
        let mut fmt = Vec::new();
        fmt.extend_from_slice(&format_tag.to_le_bytes());
        fmt.extend_from_slice(&channels.to_le_bytes());
        fmt.extend_from_slice(&sample_rate.to_le_bytes());
        fmt.extend_from_slice(&(sample_rate * u32::from(block_align)).to_le_bytes());
        fmt.extend_from_slice(&block_align.to_le_bytes());
        fmt.extend_from_slice(&bits_per_sample.to_le_bytes());
        let mut chunks: Vec<(&[u8; 4], &[u8])> = vec![(b"fmt ", &fmt)];
        chunks.extend_from_slice(extra_chunks);
        chunks.push((b"data", data));
        let mut body = b"WAVE".to_vec();
        for (id, chunk) in chunks {
            body.extend_from_slice(id);
            body.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
            body.extend_from_slice(chunk);
            if chunk.len() % 2 == 1 {
                body.push(0);
            }
        }
        let mut file = b"RIFF".to_vec();
        file.extend_from_slice(&(body.len() as u32).to_le_bytes());
        file.extend_from_slice(&body);
        file
    }

    fn pcm16(samples: &[i16]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    fn refusal(result: Result<Clip, MediaError>) -> (String, WavProblem, String) {
        match result {
            Err(error @ MediaError::InvalidWav { .. }) => {
                let message = error.to_string();
                let MediaError::InvalidWav { name, problem } = error else {
                    unreachable!()
                };
                (name, problem, message)
            }
            other => panic!("expected InvalidWav, got {other:?}"),
        }
    }

    #[test]
    fn a_16_bit_pcm_file_is_encoded_in_both_laws_and_padded() {
        let samples = tone(1000.0, -10.0, 400);
        let file = wav(1, 1, 8000, 16, &[], &pcm16(&samples));
        let clip = Clip::from_wav_bytes(&file, "welcome.wav").unwrap();
        assert_eq!(clip.name(), "welcome.wav");
        assert_eq!(clip.duration(), Duration::from_millis(50));
        assert_eq!(
            clip.frames(),
            3,
            "400 samples: two frames and a padded third"
        );
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut expected = Vec::new();
            g711::encode(codec, &samples[160..320], &mut expected);
            assert_eq!(clip.frame(codec, 1).unwrap(), &expected[..]);
            let last = clip.frame(codec, 2).unwrap();
            let mut expected_tail = Vec::new();
            g711::encode(codec, &samples[320..], &mut expected_tail);
            assert_eq!(&last[..80], &expected_tail[..]);
            let silence = match codec {
                Codec::Pcmu => 0xFF,
                Codec::Pcma => 0xD5,
            };
            assert!(
                last[80..].iter().all(|&code| code == silence),
                "{codec} padding"
            );
            assert_eq!(clip.frame(codec, 3), None);
        }
        let mut heard = Vec::new();
        g711::decode(Codec::Pcma, clip.frame(Codec::Pcma, 0).unwrap(), &mut heard);
        assert!(goertzel_ratio(&heard, 1000.0, 1400.0) > 100.0);
    }

    #[test]
    fn unknown_chunks_are_skipped_odd_ones_with_their_pad_byte() {
        let samples = [1000i16; 160];
        let file = wav(
            1,
            1,
            8000,
            16,
            &[
                (b"LIST", b"INFOISFT\x05\x00\x00\x00Lavf\x00"),
                (b"fact", b"\x01"),
            ],
            &pcm16(&samples),
        );
        let clip = Clip::from_wav_bytes(&file, "music.wav").unwrap();
        assert_eq!(clip.frames(), 1);
        assert_eq!(
            clip.frame(Codec::Pcmu, 0).unwrap()[0],
            g711::ulaw_encode(1000)
        );
    }

    #[test]
    fn g711_files_keep_their_codes_and_get_the_other_law_by_table() {
        let codes: Vec<u8> = (0..=255).collect();
        let clip = Clip::from_wav_bytes(&wav(7, 1, 8000, 8, &[], &codes), "mulaw.wav").unwrap();
        assert_eq!(clip.frames(), 2);
        assert_eq!(clip.frame(Codec::Pcmu, 0).unwrap(), &codes[..160]);
        let mut alaw = Vec::new();
        g711::transcode(Codec::Pcmu, Codec::Pcma, &codes[..160], &mut alaw);
        assert_eq!(clip.frame(Codec::Pcma, 0).unwrap(), &alaw[..]);
        assert!(
            clip.frame(Codec::Pcmu, 1).unwrap()[96..]
                .iter()
                .all(|&c| c == 0xFF)
        );

        let clip = Clip::from_wav_bytes(&wav(6, 1, 8000, 8, &[], &codes), "alaw.wav").unwrap();
        assert_eq!(clip.frame(Codec::Pcma, 1).unwrap()[..96], codes[160..]);
        assert!(
            clip.frame(Codec::Pcma, 1).unwrap()[96..]
                .iter()
                .all(|&c| c == 0xD5)
        );
    }

    #[test]
    fn wrong_rate_stereo_and_8_bit_pcm_are_refused_naming_the_file() {
        let data = pcm16(&[0; 320]);
        let (name, problem, message) = refusal(Clip::from_wav_bytes(
            &wav(1, 1, 44100, 16, &[], &data),
            "prompts/it/welcome.wav",
        ));
        assert_eq!(name, "prompts/it/welcome.wav");
        assert!(matches!(
            problem,
            WavProblem::UnsupportedFormat { format } if format.sample_rate == 44100
        ));
        assert_eq!(
            message,
            "prompts/it/welcome.wav: 44100 Hz mono 16-bit PCM, need 8000 Hz mono 16-bit PCM \
             (or 8-bit G.711 μ-law or A-law)"
        );

        let (_, _, message) = refusal(Clip::from_wav_bytes(
            &wav(1, 2, 8000, 16, &[], &data),
            "stereo.wav",
        ));
        assert!(
            message.starts_with("stereo.wav: 8000 Hz stereo 16-bit PCM, need"),
            "{message}"
        );

        let (_, _, message) = refusal(Clip::from_wav_bytes(
            &wav(1, 1, 8000, 8, &[], &data),
            "8bit.wav",
        ));
        assert!(
            message.starts_with("8bit.wav: 8000 Hz mono 8-bit PCM, need"),
            "{message}"
        );

        let (_, _, message) = refusal(Clip::from_wav_bytes(
            &wav(3, 1, 8000, 32, &[], &data),
            "float.wav",
        ));
        assert!(
            message.starts_with("float.wav: 8000 Hz mono 32-bit float, need"),
            "{message}"
        );
    }

    #[test]
    fn damaged_files_are_refused_with_what_is_wrong() {
        let good = wav(1, 1, 8000, 16, &[], &pcm16(&[7; 320]));

        // Cut in the middle of the data chunk.
        let (name, problem, message) =
            refusal(Clip::from_wav_bytes(&good[..good.len() - 100], "cut.wav"));
        assert_eq!(name, "cut.wav");
        assert_eq!(
            problem,
            WavProblem::Truncated {
                chunk: "data".into(),
                declared: 640,
                available: 540
            }
        );
        assert_eq!(
            message,
            "cut.wav: truncated: the \"data\" chunk declares 640 bytes but only 540 follow"
        );

        let odd = wav(1, 1, 8000, 16, &[], &[1, 2, 3]);
        let (_, problem, _) = refusal(Clip::from_wav_bytes(&odd, "odd.wav"));
        assert_eq!(
            problem,
            WavProblem::PartialSample {
                len: 3,
                bytes_per_sample: 2
            }
        );

        let empty = wav(1, 1, 8000, 16, &[], &[]);
        assert_eq!(
            refusal(Clip::from_wav_bytes(&empty, "empty.wav")).1,
            WavProblem::NoAudio
        );

        for not_wav in [
            &b""[..],
            b"RIFF",
            b"RIFF\x04\x00\x00\x00AVI ",
            b"ID3\x03 an mp3 file",
        ] {
            assert_eq!(
                refusal(Clip::from_wav_bytes(not_wav, "x.mp3")).1,
                WavProblem::NotWav
            );
        }

        // Only the header: neither chunk.
        assert_eq!(
            refusal(Clip::from_wav_bytes(&good[..12], "header.wav")).1,
            WavProblem::MissingChunk { chunk: "fmt " }
        );
        // The format but no data.
        assert_eq!(
            refusal(Clip::from_wav_bytes(&good[..36], "nodata.wav")).1,
            WavProblem::MissingChunk { chunk: "data" }
        );
        // A format chunk too short to say anything.
        let mut short = b"RIFF\x14\x00\x00\x00WAVEfmt \x08\x00\x00\x00".to_vec();
        short.extend_from_slice(&[1, 0, 1, 0, 0x40, 0x1F, 0, 0]);
        assert_eq!(
            refusal(Clip::from_wav_bytes(&short, "short.wav")).1,
            WavProblem::ShortFormat { len: 8 }
        );
    }

    #[test]
    fn a_missing_file_is_a_read_error_naming_it() {
        let path = Path::new("/nonexistent/prompts/welcome.wav");
        let error = Clip::from_wav(path).unwrap_err();
        assert!(matches!(&error, MediaError::ClipRead { path: p, .. } if p == path));
        assert!(
            error
                .to_string()
                .starts_with("cannot read /nonexistent/prompts/welcome.wav: "),
            "{error}"
        );
    }

    #[test]
    fn a_file_on_disk_loads_and_its_errors_carry_the_path() {
        let directory = std::env::temp_dir().join(format!("amico-clip-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        let good = directory.join("good.wav");
        std::fs::write(&good, wav(1, 1, 8000, 16, &[], &pcm16(&[0; 1600]))).unwrap();
        let clip = Clip::from_wav(&good).unwrap();
        assert_eq!(clip.name(), good.display().to_string());
        assert_eq!(
            (clip.frames(), clip.duration()),
            (10, Duration::from_millis(200))
        );

        let bad = directory.join("cd.wav");
        std::fs::write(&bad, wav(1, 2, 44100, 16, &[], &pcm16(&[0; 4]))).unwrap();
        let message = Clip::from_wav(&bad).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("{}: 44100 Hz stereo", bad.display())),
            "{message}"
        );
        std::fs::remove_dir_all(&directory).unwrap();
    }

    #[test]
    fn clones_share_the_audio_and_empty_clips_have_no_frames() {
        let clip = Clip::from_samples(&[5; 1000], "beep");
        let copy = clip.clone();
        assert!(copy.ptr_eq(&clip));
        assert_eq!(format!("{copy:?}"), "Clip { name: \"beep\", frames: 7 }");
        let empty = Clip::from_samples(&[], "nothing");
        assert_eq!((empty.frames(), empty.duration()), (0, Duration::ZERO));
        assert_eq!(empty.frame(Codec::Pcmu, 0), None);
    }
}
