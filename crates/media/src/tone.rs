//! Tone generation (ring-back, music-on-hold placeholder, comfort tones) and detection.
//!
//! [`Tone`] synthesises a sine of a given frequency and level with an on/off cadence, straight
//! into G.711 bytes in a caller's buffer: no allocation per frame, no clock reads (each call
//! produces the next `out.len()` samples at 8 kHz). The oscillator is a rotating phasor (one
//! complex multiply per sample, renormalised once per call), so the waveform is
//! phase-continuous across frames, and across cadence gaps, with no `sin` per sample.

use crate::codec::Codec;
use crate::g711;

/// Samples per second of every G.711 stream.
pub const SAMPLE_RATE: u32 = 8000;
/// Milliseconds of audio per RTP packet homeline sends (`a=ptime:20`).
pub const FRAME_MS: u32 = 20;
/// Samples (and G.711 bytes) per 20 ms frame.
pub const FRAME_SAMPLES: usize = (SAMPLE_RATE * FRAME_MS / 1000) as usize;

/// Level in dBm0 of a full-scale sine (peak ±32767 in the 16-bit linear domain): the G.711
/// overload point, +3.14 dBm0 for A-law (μ-law's is +3.17; the 0.03 dB difference is ignored).
#[allow(clippy::approx_constant)] // a level in dB that happens to look like π
pub const FULL_SCALE_DBM0: f32 = 3.14;

/// What to play: a sine with an on/off cadence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ToneSpec {
    /// Frequency in Hz; clamped to 0..=4000 (0, or a non-finite value, plays silence).
    pub frequency_hz: f32,
    /// Level in dBm0; clamped to at most [`FULL_SCALE_DBM0`].
    pub level_dbm0: f32,
    /// Milliseconds of tone per cycle.
    pub on_ms: u32,
    /// Milliseconds of silence per cycle; 0 plays the tone continuously.
    pub off_ms: u32,
}

impl ToneSpec {
    /// Ring-back tone of CEPT/ETSI countries (EU, ETSI ES 201 970): 425 Hz, 1 s on, 4 s off,
    /// at −10 dBm0.
    pub const RINGBACK_EU: ToneSpec = ToneSpec::cadenced(425.0, -10.0, 1000, 4000);

    /// A tone that never stops.
    pub const fn continuous(frequency_hz: f32, level_dbm0: f32) -> Self {
        ToneSpec {
            frequency_hz,
            level_dbm0,
            on_ms: 1000,
            off_ms: 0,
        }
    }

    /// A tone with a cadence of `on_ms` tone then `off_ms` silence.
    pub const fn cadenced(frequency_hz: f32, level_dbm0: f32, on_ms: u32, off_ms: u32) -> Self {
        ToneSpec {
            frequency_hz,
            level_dbm0,
            on_ms,
            off_ms,
        }
    }
}

/// A running tone generator for one stream. See the module docs.
#[derive(Clone, Debug)]
pub struct Tone {
    spec: ToneSpec,
    codec: Codec,
    /// Peak amplitude in the 16-bit linear domain.
    amplitude: f64,
    /// Per-sample rotation (cos ω, sin ω).
    rot: (f64, f64),
    /// Current phasor (cos φ, sin φ).
    phasor: (f64, f64),
    /// Samples of tone per cycle.
    on_samples: u32,
    /// Samples per cycle (tone + silence); `on_samples` when continuous.
    period_samples: u32,
    /// Position within the cycle.
    pos: u32,
}

impl Tone {
    /// A generator for `spec`, encoding with `codec`, starting at the beginning of a cycle.
    pub fn new(spec: ToneSpec, codec: Codec) -> Self {
        let freq = if spec.frequency_hz.is_finite() {
            f64::from(spec.frequency_hz.clamp(0.0, 4000.0))
        } else {
            0.0
        };
        let level = if spec.level_dbm0.is_finite() {
            spec.level_dbm0.min(FULL_SCALE_DBM0)
        } else {
            -200.0
        };
        let amplitude = if freq > 0.0 {
            32767.0 * 10f64.powf(f64::from(level - FULL_SCALE_DBM0) / 20.0)
        } else {
            0.0
        };
        let omega = 2.0 * std::f64::consts::PI * freq / f64::from(SAMPLE_RATE);
        let samples_per_ms = SAMPLE_RATE / 1000;
        let on_samples = spec.on_ms.saturating_mul(samples_per_ms);
        let period_samples = if spec.off_ms == 0 {
            on_samples.max(1)
        } else {
            on_samples
                .saturating_add(spec.off_ms.saturating_mul(samples_per_ms))
                .max(1)
        };
        Tone {
            spec,
            codec,
            amplitude,
            rot: (omega.cos(), omega.sin()),
            phasor: (1.0, 0.0),
            on_samples: if spec.off_ms == 0 {
                period_samples
            } else {
                on_samples
            },
            period_samples,
            pos: 0,
        }
    }

    /// What this generator plays.
    pub fn spec(&self) -> ToneSpec {
        self.spec
    }

    /// The codec frames are encoded with.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Whether the next sample falls in the "on" part of the cadence.
    pub fn is_on(&self) -> bool {
        self.pos < self.on_samples
    }

    #[inline]
    fn next_sample(&mut self) -> i16 {
        let (c, s) = self.phasor;
        let (rc, rs) = self.rot;
        // sin φ is the output; the phasor turns by ω whether the tone is on or off, so a tone
        // resumes after a gap in phase with where it would have been.
        let sample = if self.pos < self.on_samples {
            (s * self.amplitude).round() as i16
        } else {
            0
        };
        self.phasor = (c * rc - s * rs, s * rc + c * rs);
        self.pos += 1;
        if self.pos >= self.period_samples {
            self.pos = 0;
        }
        sample
    }

    fn renormalise(&mut self) {
        let (c, s) = self.phasor;
        let norm = (c * c + s * s).sqrt();
        if norm > 0.0 && norm.is_finite() {
            self.phasor = (c / norm, s / norm);
        } else {
            self.phasor = (1.0, 0.0);
        }
    }

    /// Writes the next `out.len()` samples as linear 16-bit PCM.
    pub fn fill_linear(&mut self, out: &mut [i16]) {
        for o in out.iter_mut() {
            *o = self.next_sample();
        }
        self.renormalise();
    }

    /// Writes the next `out.len()` samples encoded with the generator's codec. Pass a
    /// [`FRAME_SAMPLES`]-byte slice for one 20 ms RTP payload.
    pub fn fill_frame(&mut self, out: &mut [u8]) {
        let codec = self.codec;
        for o in out.iter_mut() {
            *o = g711::encode(codec, self.next_sample());
        }
        self.renormalise();
    }
}

/// Power of `samples` at `freq_hz` by the Goertzel algorithm (squared magnitude of that DFT
/// bin, in linear-sample² units scaled by `len²/4` for a full-scale-matched sine). Compare
/// values between frequencies over the same block; used to detect tones in tests and for
/// in-band tone checks.
pub fn goertzel_power(samples: &[i16], freq_hz: f64, sample_rate: f64) -> f64 {
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * freq_hz / sample_rate).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zero_crossings(samples: &[i16]) -> usize {
        samples
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count()
    }

    #[test]
    fn continuous_tone_has_the_right_frequency_and_level() {
        let mut tone = Tone::new(ToneSpec::continuous(1000.0, 0.0), Codec::Pcmu);
        let mut pcm = [0i16; 8000];
        tone.fill_linear(&mut pcm);
        // 1000 Hz over one second: 2000 sign changes (±1 for where the block starts and ends).
        let zc = zero_crossings(&pcm);
        assert!((1999..=2001).contains(&zc), "{zc}");
        let peak = pcm.iter().map(|s| i32::from(*s).abs()).max().unwrap_or(0);
        let expected = 32767.0 * 10f64.powf(-f64::from(FULL_SCALE_DBM0) / 20.0);
        assert!(
            (f64::from(peak) - expected).abs() < 2.0,
            "{peak} vs {expected}"
        );
    }

    #[test]
    fn frames_are_phase_continuous() {
        let spec = ToneSpec::continuous(425.0, -10.0);
        let mut whole = Tone::new(spec, Codec::Pcma);
        let mut framed = Tone::new(spec, Codec::Pcma);
        let mut a = [0i16; 1600];
        whole.fill_linear(&mut a);
        let mut b = [0i16; 1600];
        for chunk in b.chunks_mut(FRAME_SAMPLES) {
            framed.fill_linear(chunk);
        }
        for (x, y) in a.iter().zip(b.iter()) {
            assert!((i32::from(*x) - i32::from(*y)).abs() <= 1);
        }
        // no jump at frame boundaries: consecutive samples of a 425 Hz sine at -10 dBm0 differ
        // by at most A·ω ≈ 11,700·0.334.
        let max_step = b
            .windows(2)
            .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
            .max()
            .unwrap_or(0);
        assert!(max_step < 4000, "{max_step}");
    }

    #[test]
    fn cadence_is_sample_accurate() {
        let mut tone = Tone::new(ToneSpec::RINGBACK_EU, Codec::Pcmu);
        // 5 s cycle = 250 frames; frames 0..50 on, 50..250 silent, then on again.
        let mut frame = [0u8; FRAME_SAMPLES];
        for i in 0..300 {
            assert_eq!(tone.is_on(), !(50..250).contains(&i), "frame {i}");
            tone.fill_frame(&mut frame);
            let silent = frame.iter().all(|b| *b == Codec::Pcmu.silence());
            assert_eq!(silent, (50..250).contains(&i), "frame {i}");
        }
    }

    #[test]
    fn encoded_frames_decode_to_the_frequency() {
        for codec in Codec::ALL {
            let mut tone = Tone::new(ToneSpec::continuous(425.0, -13.0), codec);
            let mut bytes = [0u8; 8 * FRAME_SAMPLES];
            for chunk in bytes.chunks_mut(FRAME_SAMPLES) {
                tone.fill_frame(chunk);
            }
            let mut pcm = [0i16; 8 * FRAME_SAMPLES];
            g711::decode_into(codec, &bytes, &mut pcm);
            let at = goertzel_power(&pcm, 425.0, 8000.0);
            for other in [350.0, 400.0, 450.0, 500.0, 1000.0] {
                assert!(
                    at > 20.0 * goertzel_power(&pcm, other, 8000.0),
                    "{codec} {other}"
                );
            }
        }
    }

    #[test]
    fn nonsense_specs_play_silence_or_clamp() {
        for spec in [
            ToneSpec::continuous(f32::NAN, 0.0),
            ToneSpec::continuous(0.0, 0.0),
            ToneSpec::continuous(440.0, f32::NEG_INFINITY),
            ToneSpec::cadenced(440.0, -10.0, 0, 100),
        ] {
            let mut tone = Tone::new(spec, Codec::Pcma);
            let mut frame = [0u8; FRAME_SAMPLES];
            tone.fill_frame(&mut frame);
            assert!(
                frame.iter().all(|b| *b == Codec::Pcma.silence()),
                "{spec:?}"
            );
        }
        let mut loud = Tone::new(ToneSpec::continuous(1000.0, 40.0), Codec::Pcmu);
        let mut pcm = [0i16; 800];
        loud.fill_linear(&mut pcm);
        assert!(pcm.iter().all(|s| *s > i16::MIN));
    }
}
