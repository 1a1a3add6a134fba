//! Where the caller's audio comes from while nobody is talking to it.
//!
//! A source yields 20 ms frames of 8 kHz linear PCM; the session encodes each frame once,
//! in the caller leg's law, and sends it as one RTP packet. The source in use is
//! [`ComfortNoise`]. Prompts and music on hold are not sources: they are
//! [`Clip`](crate::Clip)s, encoded once at load time and played from a
//! [`Playlist`](crate::Playlist) without encoding anything per packet.

/// Samples in one frame: 20 ms at 8000 Hz, the G.711 default packet (RFC 3551 §4.5).
pub const FRAME_SAMPLES: usize = 160;

/// One 20 ms frame of 8 kHz, 16-bit linear PCM.
pub type Frame = [i16; FRAME_SAMPLES];

/// Something that produces the caller's audio frame by frame, paced by the session's clock.
pub trait AudioSource: Send + 'static {
    /// Fills `frame` with the next 20 ms. Returns `false` once the source has nothing more
    /// (a prompt that ended); `frame` is then left unspecified and not sent.
    fn next_frame(&mut self, frame: &mut Frame) -> bool;
}

/// The RMS amplitude of a level in dBov: decibels relative to the overload point, a
/// full-scale square wave of amplitude 32767 (ITU-T G.100.1 §3.5).
pub fn dbov_to_rms(level_dbov: f32) -> f32 {
    32767.0 * 10f32.powf(level_dbov / 20.0)
}

/// Low-level white noise, so that a waiting caller hears a live line rather than dead air
/// (the purpose of comfort noise, RFC 3389 §1), without ever ending.
#[derive(Debug, Clone)]
pub struct ComfortNoise {
    state: u32,
    /// Half-width of the uniform distribution: a uniform on [-a, a] has RMS a/√3.
    amplitude: f32,
}

impl ComfortNoise {
    /// Noise at `level_dbov` RMS (e.g. -50), with a fixed generator seed so runs repeat.
    pub fn new(level_dbov: f32) -> Self {
        Self::with_seed(level_dbov, 0x9E37_79B9)
    }

    /// Noise at `level_dbov` RMS from the given seed (0 is replaced by a non-zero seed).
    pub fn with_seed(level_dbov: f32, seed: u32) -> Self {
        let amplitude = (dbov_to_rms(level_dbov) * 3f32.sqrt()).min(32767.0);
        Self {
            state: if seed == 0 { 0x9E37_79B9 } else { seed },
            amplitude,
        }
    }

    /// Marsaglia's xorshift32: plenty for noise, no dependency, no allocation.
    fn next_uniform(&mut self) -> f32 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.state = x;
        (x as f32 / u32::MAX as f32) * 2.0 - 1.0
    }
}

impl AudioSource for ComfortNoise {
    fn next_frame(&mut self, frame: &mut Frame) -> bool {
        for sample in frame.iter_mut() {
            *sample = (self.next_uniform() * self.amplitude) as i16;
        }
        true
    }
}

/// A continuous sine tone: a test signal, and the basis of ringback or beeps later.
#[derive(Debug, Clone)]
pub struct Tone {
    phase: f64,
    step: f64,
    amplitude: f64,
}

impl Tone {
    /// A tone of `frequency_hz` whose RMS is `level_dbov`.
    pub fn new(frequency_hz: f64, level_dbov: f32) -> Self {
        Self {
            phase: 0.0,
            step: std::f64::consts::TAU * frequency_hz / 8000.0,
            amplitude: (dbov_to_rms(level_dbov) as f64 * std::f64::consts::SQRT_2).min(32767.0),
        }
    }
}

impl AudioSource for Tone {
    fn next_frame(&mut self, frame: &mut Frame) -> bool {
        for sample in frame.iter_mut() {
            *sample = (self.phase.sin() * self.amplitude) as i16;
            self.phase = (self.phase + self.step) % std::f64::consts::TAU;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{goertzel_ratio, rms};

    #[test]
    fn comfort_noise_has_the_configured_level_and_is_not_silence() {
        let mut noise = ComfortNoise::new(-50.0);
        let mut frame = [0; FRAME_SAMPLES];
        let mut all = Vec::new();
        for _ in 0..50 {
            assert!(noise.next_frame(&mut frame));
            all.extend_from_slice(&frame);
        }
        let level = 20.0 * (rms(&all) / 32767.0).log10();
        assert!((level - -50.0).abs() < 1.0, "level {level} dBov");
        assert!(all.windows(2).filter(|w| w[0] != w[1]).count() > all.len() / 2);
    }

    #[test]
    fn comfort_noise_clamps_absurd_levels() {
        let mut noise = ComfortNoise::new(20.0);
        let mut frame = [0; FRAME_SAMPLES];
        noise.next_frame(&mut frame);
        assert!(frame.iter().all(|s| s.unsigned_abs() <= 32767));
    }

    #[test]
    fn tone_is_at_its_frequency_and_level() {
        let mut tone = Tone::new(1000.0, -20.0);
        let mut frame = [0; FRAME_SAMPLES];
        let mut all = Vec::new();
        for _ in 0..10 {
            tone.next_frame(&mut frame);
            all.extend_from_slice(&frame);
        }
        assert!(goertzel_ratio(&all, 1000.0, 1400.0) > 1000.0);
        let level = 20.0 * (rms(&all) / 32767.0).log10();
        assert!((level - -20.0).abs() < 0.5, "level {level} dBov");
    }
}
