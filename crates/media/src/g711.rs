//! G.711 μ-law (PCMU) and A-law (PCMA) companding.
//!
//! Decoding is a 256-entry table per law, built at compile time by `const fn` from the
//! reference algorithm (the public-domain Sun `g711.c` that every implementation descends from).
//! Encoding runs that algorithm directly: a sign, a segment found from the leading zeros and four
//! mantissa bits, which costs less than a cache miss into a 16 K-entry table. All functions are
//! pure, total (every `i16` and every byte is valid input) and allocation-free.

use crate::codec::Codec;

/// Bias added to the magnitude before μ-law segment search (in 16-bit units).
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude μ-law can represent, in 14-bit units, before the bias is added.
const ULAW_CLIP: i32 = 8159;

/// μ-law code → linear 16-bit sample.
pub static ULAW_DECODE: [i16; 256] = build_ulaw_table();
/// A-law code → linear 16-bit sample.
pub static ALAW_DECODE: [i16; 256] = build_alaw_table();

const fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code;
    let mut t = (((u & 0x0F) as i32) << 3) + ULAW_BIAS;
    t <<= ((u & 0x70) >> 4) as i32;
    if u & 0x80 != 0 {
        (ULAW_BIAS - t) as i16
    } else {
        (t - ULAW_BIAS) as i16
    }
}

const fn alaw_to_linear(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = ((a & 0x0F) as i32) << 4;
    let seg = ((a & 0x70) >> 4) as i32;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & 0x80 != 0 { t as i16 } else { -t as i16 }
}

const fn build_ulaw_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = ulaw_to_linear(i as u8);
        i += 1;
    }
    table
}

const fn build_alaw_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = alaw_to_linear(i as u8);
        i += 1;
    }
    table
}

/// Decodes one μ-law byte.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DECODE[usize::from(code)]
}

/// Decodes one A-law byte.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DECODE[usize::from(code)]
}

/// Segment number of a non-negative magnitude whose segment `s` ends at `first_end << s`
/// (`first_end` is `2^k - 1`): 0 for values up to `first_end`, then one per doubling; 8 means
/// "beyond the last segment".
#[inline]
fn segment(value: i32, first_end_bits: u32) -> i32 {
    // bits needed to hold `value`; segment 0 holds up to `first_end_bits` bits.
    let bits = 32 - value.leading_zeros();
    bits.saturating_sub(first_end_bits).min(8) as i32
}

/// Encodes one linear 16-bit sample as μ-law (ITU-T G.711 / Sun `linear2ulaw`).
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    let mut pcm = i32::from(sample) >> 2;
    let mask: u8 = if pcm < 0 {
        pcm = -pcm;
        0x7F
    } else {
        0xFF
    };
    pcm = pcm.min(ULAW_CLIP) + (ULAW_BIAS >> 2);
    // segment ends are 0x3F, 0x7F, ... 0x1FFF: six bits for segment 0.
    let seg = segment(pcm, 6);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let uval = ((seg << 4) | ((pcm >> (seg + 1)) & 0x0F)) as u8;
    uval ^ mask
}

/// Encodes one linear 16-bit sample as A-law (ITU-T G.711 / Sun `linear2alaw`).
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    let mut pcm = i32::from(sample) >> 3;
    let mask: u8 = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    // segment ends are 0x1F, 0x3F, ... 0xFFF: five bits for segment 0.
    let seg = segment(pcm, 5);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let mantissa = if seg < 2 { pcm >> 1 } else { pcm >> seg };
    let aval = ((seg << 4) | (mantissa & 0x0F)) as u8;
    aval ^ mask
}

/// Encodes one sample with the codec's law.
#[inline]
pub fn encode(codec: Codec, sample: i16) -> u8 {
    match codec {
        Codec::Pcmu => ulaw_encode(sample),
        Codec::Pcma => alaw_encode(sample),
    }
}

/// Decodes one byte with the codec's law.
#[inline]
pub fn decode(codec: Codec, code: u8) -> i16 {
    match codec {
        Codec::Pcmu => ulaw_decode(code),
        Codec::Pcma => alaw_decode(code),
    }
}

/// Encodes `samples` into `out` (pairs up to the shorter of the two); returns the count written.
pub fn encode_into(codec: Codec, samples: &[i16], out: &mut [u8]) -> usize {
    let n = samples.len().min(out.len());
    for (o, s) in out.iter_mut().zip(samples).take(n) {
        *o = encode(codec, *s);
    }
    n
}

/// Decodes `codes` into `out` (pairs up to the shorter of the two); returns the count written.
pub fn decode_into(codec: Codec, codes: &[u8], out: &mut [i16]) -> usize {
    let n = codes.len().min(out.len());
    let table = match codec {
        Codec::Pcmu => &ULAW_DECODE,
        Codec::Pcma => &ALAW_DECODE,
    };
    for (o, c) in out.iter_mut().zip(codes).take(n) {
        *o = table[usize::from(*c)];
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        // First code of each law's "digital milliwatt" sequence (G.711 Table 5/6).
        assert_eq!(ulaw_decode(0x1E), -8828);
        assert_eq!(alaw_decode(0x34), -8960);
    }

    #[test]
    fn decode_tables_are_odd_symmetric() {
        for code in 0..=255u8 {
            assert_eq!(
                ulaw_decode(code),
                -ulaw_decode(code ^ 0x80),
                "ulaw {code:#x}"
            );
            assert_eq!(
                alaw_decode(code),
                -alaw_decode(code ^ 0x80),
                "alaw {code:#x}"
            );
        }
    }

    #[test]
    fn encode_of_decode_is_identity_on_codes() {
        for code in 0..=255u8 {
            // μ-law has two zeros (0x7F and 0xFF); both decode to 0, which encodes to 0xFF.
            let u = ulaw_decode(code);
            assert_eq!(ulaw_decode(ulaw_encode(u)), u, "ulaw {code:#x}");
            if code != 0x7F {
                assert_eq!(ulaw_encode(u), code, "ulaw {code:#x}");
            }
            let a = alaw_decode(code);
            assert_eq!(alaw_encode(a), code, "alaw {code:#x}");
        }
    }

    #[test]
    fn round_trip_error_is_within_half_a_step() {
        for x in i16::MIN..=i16::MAX {
            let v = i32::from(x);
            // μ-law: 8-level steps near zero, each segment doubles; clipping at ±32124 (+ bias
            // truncation of the two dropped bits). Relative error ≤ 1/32 plus 8 units.
            let u = i32::from(ulaw_decode(ulaw_encode(x)));
            let bound_u = v.abs().min(32124) / 32 + 8 + (v.abs() - 32124).max(0);
            assert!((u - v).abs() <= bound_u, "ulaw x={x} got {u}");
            // A-law: 16-unit steps in the two lowest segments, then doubling; clips at ±32256.
            let a = i32::from(alaw_decode(alaw_encode(x)));
            let bound_a = v.abs().min(32256) / 32 + 16 + (v.abs() - 32256).max(0);
            assert!((a - v).abs() <= bound_a, "alaw x={x} got {a}");
        }
    }

    #[test]
    fn encoding_is_monotonic() {
        let mut prev_u = i32::MIN;
        let mut prev_a = i32::MIN;
        for x in i16::MIN..=i16::MAX {
            let u = i32::from(ulaw_decode(ulaw_encode(x)));
            let a = i32::from(alaw_decode(alaw_encode(x)));
            assert!(u >= prev_u && a >= prev_a, "x={x}");
            prev_u = u;
            prev_a = a;
        }
    }

    #[test]
    fn slice_helpers() {
        let samples = [0i16, 1000, -1000, 32000];
        let mut codes = [0u8; 4];
        assert_eq!(encode_into(Codec::Pcma, &samples, &mut codes), 4);
        let mut back = [0i16; 8];
        assert_eq!(decode_into(Codec::Pcma, &codes, &mut back), 4);
        for (x, y) in samples.iter().zip(back.iter()) {
            assert!((i32::from(*x) - i32::from(*y)).abs() <= i32::from(*x).abs() / 32 + 16);
        }
    }
}
