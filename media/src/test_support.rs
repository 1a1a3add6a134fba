//! Signal helpers for the tests: tones, levels and a Goertzel detector.

use crate::source::{AudioSource, FRAME_SAMPLES, Tone};

/// `samples` of a tone at `frequency_hz` and `level_dbov` RMS.
pub(crate) fn tone(frequency_hz: f64, level_dbov: f32, samples: usize) -> Vec<i16> {
    let mut tone = Tone::new(frequency_hz, level_dbov);
    let mut frame = [0; FRAME_SAMPLES];
    let mut out = Vec::with_capacity(samples + FRAME_SAMPLES);
    while out.len() < samples {
        tone.next_frame(&mut frame);
        out.extend_from_slice(&frame);
    }
    out.truncate(samples);
    out
}

/// Root mean square of the samples.
pub(crate) fn rms(samples: &[i16]) -> f64 {
    let sum: f64 = samples.iter().map(|&s| (s as f64) * (s as f64)).sum();
    (sum / samples.len().max(1) as f64).sqrt()
}

/// Energy at `frequency_hz` (Goertzel, 8 kHz sampling).
pub(crate) fn goertzel(samples: &[i16], frequency_hz: f64) -> f64 {
    let coefficient = 2.0 * (std::f64::consts::TAU * frequency_hz / 8000.0).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &sample in samples {
        let s0 = sample as f64 + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coefficient * s1 * s2
}

/// How much more energy is at `frequency_hz` than at `neighbour_hz`.
pub(crate) fn goertzel_ratio(samples: &[i16], frequency_hz: f64, neighbour_hz: f64) -> f64 {
    goertzel(samples, frequency_hz) / goertzel(samples, neighbour_hz).max(1.0)
}
