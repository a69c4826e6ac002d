//! Audio helpers of the end-to-end tests: tones, G.711 written independently of
//! `homeline-media` (so the tests do not check homeline against itself), WAV files, and a
//! Goertzel tone detector. Shared by the call suites (directly, and through `call_setup` and
//! `rtp_capture`).

#![allow(dead_code)]

/// `seconds` of a `hz` sine at 8 kHz, `amplitude` of full scale.
pub fn tone(hz: f64, seconds: f64, amplitude: f64) -> Vec<i16> {
    let n = (seconds * 8000.0) as usize;
    (0..n)
        .map(|i| {
            let x = (2.0 * std::f64::consts::PI * hz * i as f64 / 8000.0).sin();
            (x * amplitude * 32767.0) as i16
        })
        .collect()
}

/// G.711 μ-law encoding of one sample (ITU-T G.711, with the usual bias of 0x84).
pub fn ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let s = i32::from(sample);
    let sign = if s < 0 { 0x80 } else { 0 };
    let mag = s.abs().min(CLIP) + BIAS;
    let exponent = (7 - (mag as u32).leading_zeros().saturating_sub(17)).min(7) as i32;
    let mantissa = (mag >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) as u8 as i32 | mantissa) as u8
}

/// G.711 μ-law decoding of one byte.
pub fn unulaw(byte: u8) -> i16 {
    let u = !byte;
    let exponent = i32::from((u >> 4) & 0x07);
    let mantissa = i32::from(u & 0x0F);
    let mag = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if u & 0x80 != 0 { -mag } else { mag }) as i16
}

/// G.711 A-law decoding of one byte (in case linphone picks PCMA).
pub fn unalaw(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let exponent = i32::from((a >> 4) & 0x07);
    let mantissa = i32::from(a & 0x0F);
    let mag = match exponent {
        0 => (mantissa << 4) + 8,
        e => ((mantissa << 4) + 0x108) << (e - 1),
    };
    (if a & 0x80 != 0 { mag } else { -mag }) as i16
}

/// A WAV header for `data_len` bytes of `format` (1: PCM, 7: μ-law) at 8 kHz mono.
pub fn wav_header(format: u16, bits: u16, data_len: usize) -> Vec<u8> {
    let block = bits / 8;
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(36 + data_len as u32).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&format.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&8000u32.to_le_bytes());
    h.extend_from_slice(&(8000 * u32::from(block)).to_le_bytes());
    h.extend_from_slice(&block.to_le_bytes());
    h.extend_from_slice(&bits.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&(data_len as u32).to_le_bytes());
    h
}

/// A μ-law WAV (what SIPp's `rtp_stream` sends as PT 0, header skipped).
pub fn wav_ulaw(samples: &[i16]) -> Vec<u8> {
    let mut w = wav_header(7, 8, samples.len());
    w.extend(samples.iter().map(|&s| ulaw(s)));
    w
}

/// A 16-bit PCM WAV (baresip's `aufile` source).
pub fn wav_s16(samples: &[i16]) -> Vec<u8> {
    let mut w = wav_header(1, 16, samples.len() * 2);
    for s in samples {
        w.extend_from_slice(&s.to_le_bytes());
    }
    w
}

/// The share of the energy of `samples` (at `rate` Hz) that is at `hz`: a Goertzel filter
/// over 20 ms blocks, as `rtp_tone_check.py` of the peers' kit does.
pub fn tone_share(samples: &[i16], rate: u32, hz: f64) -> f64 {
    let block = (rate / 50) as usize;
    let k = 2.0 * (2.0 * std::f64::consts::PI * hz / f64::from(rate)).cos();
    let (mut tone, mut total) = (0.0, 0.0);
    for b in samples.chunks_exact(block) {
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in b {
            let s0 = f64::from(x) + k * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        tone += (s1 * s1 + s2 * s2 - k * s1 * s2) * 2.0 / block as f64;
        total += b.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>();
    }
    if total == 0.0 { 0.0 } else { tone / total }
}

/// Root mean square of `samples`.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
}
