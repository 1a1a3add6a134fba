//! G.711 (ITU-T G.711) μ-law and A-law companding.
//!
//! Every conversion is one lookup in a table built at compile time, so encoding a 20 ms
//! frame or transcoding a relayed packet costs 160 loads and no allocation. The tables follow
//! the reference algorithm (the CCITT/Sun `g711.c`): μ-law keeps the 14 most significant bits
//! of a 16-bit sample, A-law the 13 most significant, which is what makes an encoder table of
//! 16 Ki and 8 Ki entries exact.

use crate::Codec;

/// Bias added to the μ-law magnitude before finding its segment (G.711 §3.2, as 0x84 in the
/// 16-bit domain).
const ULAW_BIAS: i32 = 0x84;
/// Largest μ-law magnitude in the 14-bit domain; louder samples clip to the top code.
const ULAW_CLIP: i32 = 8159;

const fn ulaw_decode_reference(code: u8) -> i16 {
    let code = !code;
    let mut t = (((code & 0x0F) as i32) << 3) + ULAW_BIAS;
    t <<= (code & 0x70) >> 4;
    if code & 0x80 != 0 {
        (ULAW_BIAS - t) as i16
    } else {
        (t - ULAW_BIAS) as i16
    }
}

/// `top14` is a 16-bit sample shifted right by 2 (sign kept).
const fn ulaw_encode_reference(top14: i32) -> u8 {
    let (mut magnitude, mask) = if top14 < 0 {
        (-top14, 0x7F)
    } else {
        (top14, 0xFF)
    };
    if magnitude > ULAW_CLIP {
        magnitude = ULAW_CLIP;
    }
    magnitude += ULAW_BIAS >> 2;
    let mut segment = 0;
    let mut end = 0x3F;
    while segment < 8 && magnitude > end {
        segment += 1;
        end = (end << 1) | 1;
    }
    if segment >= 8 {
        return 0x7F ^ mask;
    }
    let code = ((segment << 4) | ((magnitude >> (segment + 1)) & 0x0F)) as u8;
    code ^ mask
}

const fn alaw_decode_reference(code: u8) -> i16 {
    let code = code ^ 0x55;
    let mut t = ((code & 0x0F) as i32) << 4;
    let segment = (code & 0x70) >> 4;
    match segment {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= segment - 1;
        }
    }
    if code & 0x80 != 0 {
        t as i16
    } else {
        -t as i16
    }
}

/// `top13` is a 16-bit sample shifted right by 3 (sign kept).
const fn alaw_encode_reference(top13: i32) -> u8 {
    let (magnitude, mask) = if top13 >= 0 {
        (top13, 0xD5)
    } else {
        (-top13 - 1, 0x55)
    };
    let mut segment = 0;
    let mut end = 0x1F;
    while segment < 8 && magnitude > end {
        segment += 1;
        end = (end << 1) | 1;
    }
    if segment >= 8 {
        return 0x7F ^ mask;
    }
    let quantised = if segment < 2 {
        (magnitude >> 1) & 0x0F
    } else {
        (magnitude >> segment) & 0x0F
    };
    ((segment << 4) as u8 | quantised as u8) ^ mask
}

static ULAW_DECODE: [i16; 256] = {
    let mut table = [0; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = ulaw_decode_reference(code as u8);
        code += 1;
    }
    table
};

static ALAW_DECODE: [i16; 256] = {
    let mut table = [0; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = alaw_decode_reference(code as u8);
        code += 1;
    }
    table
};

/// Indexed by the top 14 bits of the sample as an unsigned number (two's complement bits).
static ULAW_ENCODE: [u8; 1 << 14] = {
    let mut table = [0; 1 << 14];
    let mut index = 0;
    while index < 1 << 14 {
        // Sign-extend the 14-bit index back to the shifted sample it stands for.
        let top14 = ((index as i32) << 18) >> 18;
        table[index] = ulaw_encode_reference(top14);
        index += 1;
    }
    table
};

/// Indexed by the top 13 bits of the sample as an unsigned number (two's complement bits).
static ALAW_ENCODE: [u8; 1 << 13] = {
    let mut table = [0; 1 << 13];
    let mut index = 0;
    while index < 1 << 13 {
        let top13 = ((index as i32) << 19) >> 19;
        table[index] = alaw_encode_reference(top13);
        index += 1;
    }
    table
};

// Transcoding goes through the linear value of each code; the result is what a decode and
// an encode would give, precomputed so the relay does one lookup per byte.
static ULAW_TO_ALAW: [u8; 256] = {
    let mut table = [0; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = alaw_encode_reference((ULAW_DECODE[code] as i32) >> 3);
        code += 1;
    }
    table
};

static ALAW_TO_ULAW: [u8; 256] = {
    let mut table = [0; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = ulaw_encode_reference((ALAW_DECODE[code] as i32) >> 2);
        code += 1;
    }
    table
};

/// Encodes one 16-bit linear sample as a μ-law code (PCMU).
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    ULAW_ENCODE[((sample as u16) >> 2) as usize]
}

/// Decodes one μ-law code (PCMU) to a 16-bit linear sample.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DECODE[code as usize]
}

/// Encodes one 16-bit linear sample as an A-law code (PCMA).
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    ALAW_ENCODE[((sample as u16) >> 3) as usize]
}

/// Decodes one A-law code (PCMA) to a 16-bit linear sample.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DECODE[code as usize]
}

/// Converts a G.711 payload from one law to the other, replacing the contents of `out`.
///
/// With `from == to` the payload is copied unchanged. `out` keeps its capacity between
/// calls, so a relay that reuses one buffer allocates nothing per packet.
pub fn transcode(from: Codec, to: Codec, payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    match (from, to) {
        (Codec::Pcmu, Codec::Pcma) => {
            out.extend(payload.iter().map(|&code| ULAW_TO_ALAW[code as usize]));
        }
        (Codec::Pcma, Codec::Pcmu) => {
            out.extend(payload.iter().map(|&code| ALAW_TO_ULAW[code as usize]));
        }
        (Codec::Pcmu, Codec::Pcmu) | (Codec::Pcma, Codec::Pcma) => out.extend_from_slice(payload),
    }
}

/// Encodes linear samples in `codec`'s law, replacing the contents of `out`.
pub fn encode(codec: Codec, samples: &[i16], out: &mut Vec<u8>) {
    out.clear();
    match codec {
        Codec::Pcmu => out.extend(samples.iter().map(|&sample| ulaw_encode(sample))),
        Codec::Pcma => out.extend(samples.iter().map(|&sample| alaw_encode(sample))),
    }
}

/// Decodes a payload in `codec`'s law to linear samples, replacing the contents of `out`.
pub fn decode(codec: Codec, payload: &[u8], out: &mut Vec<i16>) {
    out.clear();
    match codec {
        Codec::Pcmu => out.extend(payload.iter().map(|&code| ulaw_decode(code))),
        Codec::Pcma => out.extend(payload.iter().map(|&code| alaw_decode(code))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{goertzel_ratio, tone};

    #[test]
    fn ulaw_known_codes() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_decode(0xFF), 0);
        // 0x7F is μ-law's "negative zero".
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
    }

    #[test]
    fn alaw_known_codes() {
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
    }

    #[test]
    fn every_code_survives_decode_then_encode() {
        for code in 0..=255u8 {
            assert_eq!(
                alaw_encode(alaw_decode(code)),
                code,
                "A-law code {code:#04x}"
            );
            if code != 0x7F {
                assert_eq!(
                    ulaw_encode(ulaw_decode(code)),
                    code,
                    "μ-law code {code:#04x}"
                );
            }
        }
    }

    #[test]
    fn decoded_levels_are_monotonic_in_each_half() {
        // Codes 0x00..0x7F are negative (loudest first) in μ-law; 0x80..0xFF positive.
        for code in 0x80..0xFFu8 {
            assert!(ulaw_decode(code) > ulaw_decode(code + 1));
        }
        let mut linear: Vec<i16> = (0..=255u8).map(alaw_decode).collect();
        linear.sort_unstable();
        linear.dedup();
        assert_eq!(linear.len(), 256, "A-law has 256 distinct levels");
    }

    #[test]
    fn quantisation_error_stays_within_half_a_step_of_the_segment() {
        for sample in i16::MIN..=i16::MAX {
            let mu = ulaw_decode(ulaw_encode(sample)) as i32;
            let a = alaw_decode(alaw_encode(sample)) as i32;
            let s = sample as i32;
            // The largest G.711 step is 1024 (μ-law) and 1024 (A-law) at full scale; near
            // zero the step is 2..16, so bound the error relative to the magnitude too.
            let bound = (s.abs() / 16).max(16);
            if s.abs() < 32000 {
                assert!((mu - s).abs() <= bound, "μ-law {s} -> {mu}");
                assert!((a - s).abs() <= bound, "A-law {s} -> {a}");
            }
        }
    }

    #[test]
    fn transcode_matches_decode_then_encode_and_keeps_a_tone() {
        let samples = tone(1000.0, -10.0, 800);
        let mut ulaw = Vec::new();
        encode(Codec::Pcmu, &samples, &mut ulaw);
        let mut alaw = Vec::new();
        transcode(Codec::Pcmu, Codec::Pcma, &ulaw, &mut alaw);
        for (&u, &a) in ulaw.iter().zip(&alaw) {
            assert_eq!(a, alaw_encode(ulaw_decode(u)));
        }
        let mut linear = Vec::new();
        decode(Codec::Pcma, &alaw, &mut linear);
        assert!(goertzel_ratio(&linear, 1000.0, 1400.0) > 100.0);

        let mut back = Vec::new();
        transcode(Codec::Pcma, Codec::Pcmu, &alaw, &mut back);
        assert_eq!(back.len(), ulaw.len());
        let mut same = Vec::new();
        transcode(Codec::Pcmu, Codec::Pcmu, &ulaw, &mut same);
        assert_eq!(same, ulaw);
    }

    #[test]
    fn transcode_reuses_the_buffer() {
        let mut out = Vec::with_capacity(160);
        let capacity = out.capacity();
        for _ in 0..10 {
            transcode(Codec::Pcma, Codec::Pcmu, &[0xD5; 160], &mut out);
        }
        assert_eq!(out.capacity(), capacity);
        assert!(out.iter().all(|&code| code == ulaw_encode(8)));
    }
}
