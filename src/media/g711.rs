//! ITU-T G.711 μ-law (PCMU) and A-law (PCMA) on 16-bit linear samples.
//!
//! G.711 is defined on 14-bit (μ-law) and 13-bit (A-law) linear values; here
//! both sit in the top bits of an `i16`, which is what every RTP stack and
//! WAV file uses. Decoding is a lookup into 256-entry tables built at compile
//! time, because it runs on every received packet. Encoding is branch-light
//! arithmetic (a leading-zero count finds the segment); it only runs when
//! prompts are loaded and for tests, so a 64 KiB table would buy nothing.
//!
//! μ-law has two codes for zero (0xFF and 0x7F, "+0" and "−0"); both decode
//! to 0, which encodes back to 0xFF. Every other code round-trips. A-law has
//! no zero code: its smallest steps decode to ±8.

/// μ-law code of +0, used to fill silent frames.
pub const ULAW_SILENCE: u8 = 0xFF;
/// A-law code of the smallest positive step (+8), the conventional A-law silence.
pub const ALAW_SILENCE: u8 = 0xD5;

/// μ-law adds this before finding the segment so that segment boundaries fall
/// on powers of two (G.711 table 2a expressed in 16-bit units).
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude that still fits after the bias is added.
const ULAW_CLIP: i32 = 32635;

/// μ-law decode table, indexed by code.
pub static ULAW_TO_LINEAR: [i16; 256] = build_ulaw_table();
/// A-law decode table, indexed by code.
pub static ALAW_TO_LINEAR: [i16; 256] = build_alaw_table();

const fn ulaw_decode_const(code: u8) -> i16 {
    // Codes are transmitted inverted so that idle lines (all ones) mean zero.
    let c = !code;
    let exponent = ((c >> 4) & 0x07) as i32;
    let mantissa = (c & 0x0F) as i32;
    // Reconstruct at the middle of the step: (mantissa + 16.5) * 2^(exp + 3) - bias.
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if c & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const fn alaw_decode_const(code: u8) -> i16 {
    // Even bits are inverted on the wire (G.711 §A), hence the 0x55.
    let a = code ^ 0x55;
    let mantissa = (a & 0x0F) as i32;
    let segment = ((a >> 4) & 0x07) as i32;
    // Middle of the step, in 16-bit units (13-bit value << 3).
    let magnitude = if segment == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (segment - 1)
    };
    if a & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

const fn build_ulaw_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = ulaw_decode_const(i as u8);
        i += 1;
    }
    table
}

const fn build_alaw_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = alaw_decode_const(i as u8);
        i += 1;
    }
    table
}

/// Decodes one μ-law code.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_TO_LINEAR[code as usize]
}

/// Decodes one A-law code.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_TO_LINEAR[code as usize]
}

/// Encodes one sample as μ-law.
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    let s = i32::from(sample);
    // Widening first keeps -32768 from overflowing on negation.
    let (sign, magnitude) = if s < 0 { (0x80, -s) } else { (0x00, s) };
    let biased = magnitude.min(ULAW_CLIP) + ULAW_BIAS;
    // biased is in 132..=32767, so its top bit is bit 7..=14: segments 0..=7.
    let exponent = (31 - biased.leading_zeros()) as i32 - 7;
    let mantissa = (biased >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// Encodes one sample as A-law.
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    // A-law works on 13 bits; an arithmetic shift keeps the sign.
    let s = i32::from(sample) >> 3;
    // Negative values use one's complement magnitude so that -1 lands in the
    // first negative step instead of needing a "-0" code A-law lacks.
    let (mask, magnitude) = if s >= 0 { (0xD5, s) } else { (0x55, -s - 1) };
    let code = if magnitude < 32 {
        magnitude >> 1
    } else {
        // magnitude is in 32..=4095; its top bit (5..=11) gives segment 1..=7.
        let segment = (31 - magnitude.leading_zeros()) as i32 - 4;
        (segment << 4) | ((magnitude >> segment) & 0x0F)
    };
    (code ^ mask) as u8
}

/// Decodes μ-law bytes into `out`, stopping at the shorter of the two; returns the count.
#[inline]
pub fn ulaw_decode_slice(codes: &[u8], out: &mut [i16]) -> usize {
    let n = codes.len().min(out.len());
    for (o, &c) in out[..n].iter_mut().zip(&codes[..n]) {
        *o = ULAW_TO_LINEAR[c as usize];
    }
    n
}

/// Decodes A-law bytes into `out`, stopping at the shorter of the two; returns the count.
#[inline]
pub fn alaw_decode_slice(codes: &[u8], out: &mut [i16]) -> usize {
    let n = codes.len().min(out.len());
    for (o, &c) in out[..n].iter_mut().zip(&codes[..n]) {
        *o = ALAW_TO_LINEAR[c as usize];
    }
    n
}

/// Encodes samples as μ-law into `out`, stopping at the shorter of the two; returns the count.
pub fn ulaw_encode_slice(samples: &[i16], out: &mut [u8]) -> usize {
    let n = samples.len().min(out.len());
    for (o, &s) in out[..n].iter_mut().zip(&samples[..n]) {
        *o = ulaw_encode(s);
    }
    n
}

/// Encodes samples as A-law into `out`, stopping at the shorter of the two; returns the count.
pub fn alaw_encode_slice(samples: &[i16], out: &mut [u8]) -> usize {
    let n = samples.len().min(out.len());
    for (o, &s) in out[..n].iter_mut().zip(&samples[..n]) {
        *o = alaw_encode(s);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_ulaw_values() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(-1), 0x7F);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        // First step above zero: 8 in 16-bit units (1 in 14-bit).
        assert_eq!(ulaw_decode(0xFE), 8);
        assert_eq!(ulaw_decode(0x7E), -8);
    }

    #[test]
    fn known_alaw_values() {
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
    }

    #[test]
    fn every_ulaw_code_round_trips_except_negative_zero() {
        for code in 0..=255u8 {
            let back = ulaw_encode(ulaw_decode(code));
            if code == 0x7F {
                assert_eq!(back, 0xFF, "-0 folds into +0");
            } else {
                assert_eq!(back, code, "code {code:#04x}");
            }
        }
    }

    #[test]
    fn every_alaw_code_round_trips() {
        for code in 0..=255u8 {
            assert_eq!(alaw_encode(alaw_decode(code)), code, "code {code:#04x}");
        }
    }

    #[test]
    fn decode_tables_are_monotonic_within_each_sign() {
        // Sorting the decoded values of each half must give 128 distinct levels,
        // which catches a swapped segment or mantissa bit.
        for table in [&ULAW_TO_LINEAR, &ALAW_TO_LINEAR] {
            let mut v: Vec<i16> = table.to_vec();
            v.sort_unstable();
            v.dedup();
            assert!(v.len() >= 255, "only {} distinct levels", v.len());
        }
    }

    #[test]
    fn ulaw_error_is_within_half_a_step_for_every_sample() {
        for x in i16::MIN..=i16::MAX {
            let err = (i32::from(ulaw_decode(ulaw_encode(x))) - i32::from(x)).abs();
            // Steps are 1/16..1/32 of (|x| + bias); half a step plus rounding,
            // and the clipped top end still fits.
            let bound = (i32::from(x).abs() + ULAW_BIAS) / 32 + 1;
            assert!(err <= bound, "x={x} err={err} bound={bound}");
        }
    }

    #[test]
    fn alaw_error_is_within_half_a_step_for_every_sample() {
        for x in i16::MIN..=i16::MAX {
            let err = (i32::from(alaw_decode(alaw_encode(x))) - i32::from(x)).abs();
            let bound = i32::from(x).abs() / 32 + 8;
            assert!(err <= bound, "x={x} err={err} bound={bound}");
        }
    }

    #[test]
    fn sine_keeps_g711_signal_to_noise_ratio() {
        // G.711 promises roughly 35-38 dB SNR over a wide range of levels.
        for amplitude in [1000.0f64, 8000.0, 30000.0] {
            for (encode, decode) in [
                (ulaw_encode as fn(i16) -> u8, ulaw_decode as fn(u8) -> i16),
                (alaw_encode, alaw_decode),
            ] {
                let (mut signal, mut noise) = (0.0f64, 0.0f64);
                for n in 0..8000 {
                    let x = (amplitude
                        * (2.0 * std::f64::consts::PI * 1004.0 * n as f64 / 8000.0).sin())
                    .round() as i16;
                    let y = decode(encode(x));
                    signal += f64::from(x).powi(2);
                    noise += (f64::from(y) - f64::from(x)).powi(2);
                }
                let snr = 10.0 * (signal / noise).log10();
                assert!(snr > 33.0, "amplitude {amplitude}: SNR {snr:.1} dB");
            }
        }
    }
}
