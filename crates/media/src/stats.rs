//! Receive statistics of one RTP stream (RFC 3550 §6.4.1, appendices A.1, A.3 and A.8) and a
//! call-quality estimate from the ITU-T G.107 E-model.
//!
//! [`ReceiveStats`] is a plain value: feed it every valid RTP header received on a leg with the
//! arrival time (an input; it never reads a clock) and read a [`ReceiveSummary`] at any time.
//!
//! - **Sequence and loss.** The extended highest sequence number counts wraps of the 16-bit
//!   number (A.1). A jump of fewer than 3,000 (`MAX_DROPOUT`) moves the highest number on and
//!   leaves a gap; a packet up to 100 behind (`MAX_MISORDER`) is late and fills its gap. A
//!   128-packet bitmap behind the highest number tells a late packet from a duplicate, so
//!   duplicates are counted apart and do not hide loss (plain A.3 counts them as received). A
//!   larger jump is believed only when the next packet follows it (A.1's `bad_seq`), and then
//!   starts a new segment, as does a new SSRC; loss adds up over segments.
//!   `lost = expected − received`, never negative.
//! - **Jitter** is A.8's estimator, `J += (|D| − J)/16`, in timestamp units (kept ×16 as in the
//!   RFC's integer code), and in milliseconds from the clock rate. Only packets of the timing
//!   payload type feed it when one is set: RFC 4733 events keep the timestamp of the event's
//!   start for up to seconds and would read as huge jitter.
//! - **MOS** comes from [`r_factor`] and [`mos_from_r`]; see their docs for the constants.

use crate::rtp::RtpHeader;
use std::time::Instant;

/// A sequence jump of at least this many packets is a restart or a misdirected stream (A.1).
pub const MAX_DROPOUT: u16 = 3000;
/// A packet at most this many behind the highest sequence number is a late packet (A.1).
pub const MAX_MISORDER: u16 = 100;

/// Packets behind the highest sequence number remembered to tell late from duplicate.
const WINDOW: u64 = 128;

#[derive(Clone, Copy, Debug)]
struct Segment {
    ssrc: u32,
    /// Extended sequence number of the first (lowest) packet of the segment.
    base: u64,
    /// Extended highest sequence number.
    max: u64,
    /// Distinct packets received in the segment.
    received: u64,
    /// Bit `i` set: packet `max − i` was received.
    window: u128,
    /// Sequence number that confirms a large jump (A.1 `bad_seq`).
    bad_seq: Option<u16>,
}

impl Segment {
    fn start(ssrc: u32, seq: u16) -> Self {
        // Start above zero in the 32-bit cycle space so late packets of the first cycle still
        // have room below `base`.
        let ext = (1u64 << 16) | u64::from(seq);
        Segment {
            ssrc,
            base: ext,
            max: ext,
            received: 1,
            window: 1,
            bad_seq: None,
        }
    }

    fn expected(&self) -> u64 {
        self.max - self.base + 1
    }
}

/// What one packet did to the sequence state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SeqUpdate {
    /// New highest, late-but-new, or first packet: counts as received and feeds jitter.
    Fresh,
    /// Seen before.
    Duplicate,
    /// A jump not (yet) believed.
    Ignored,
}

/// Receive statistics of one RTP stream. See the module docs.
#[derive(Clone, Debug)]
pub struct ReceiveStats {
    clock_rate: u32,
    timing_pt: Option<u8>,
    packets: u64,
    bytes: u64,
    duplicates: u64,
    segment: Option<Segment>,
    expected_before: u64,
    received_before: u64,
    origin: Option<Instant>,
    last_transit: Option<u32>,
    /// Jitter ×16, timestamp units.
    jitter_q4: u64,
}

/// A snapshot of [`ReceiveStats`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReceiveSummary {
    /// Valid RTP packets recorded, duplicates included.
    pub packets: u64,
    /// RTP payload octets of those packets (as RTCP's octet count: no headers, no padding).
    pub bytes: u64,
    /// Packets received more than once (within the 128-packet window).
    pub duplicates: u64,
    /// Packets expected from the sequence numbers seen.
    pub expected: u64,
    /// Packets expected and never received (cumulative, never negative).
    pub lost: u64,
    /// `lost / expected`, 0 when nothing was expected.
    pub loss_fraction: f64,
    /// Extended highest sequence number of the current segment (cycles × 65,536 + seq).
    pub highest_sequence: u64,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Interarrival jitter in milliseconds.
    pub jitter_ms: f64,
    /// E-model rating factor (see [`r_factor`]).
    pub r_factor: f64,
    /// Mean opinion score estimate, 1.0–4.5 (see [`mos_from_r`]).
    pub mos: f64,
}

impl ReceiveStats {
    /// Empty statistics for a stream with this RTP clock rate (8,000 for G.711).
    pub fn new(clock_rate: u32) -> Self {
        ReceiveStats {
            clock_rate: clock_rate.max(1),
            timing_pt: None,
            packets: 0,
            bytes: 0,
            duplicates: 0,
            segment: None,
            expected_before: 0,
            received_before: 0,
            origin: None,
            last_transit: None,
            jitter_q4: 0,
        }
    }

    /// Lets only packets of `pt` feed the jitter estimate (`None`: every packet).
    pub fn set_timing_payload_type(&mut self, pt: Option<u8>) {
        self.timing_pt = pt;
    }

    /// Records one packet that arrived at `arrival`.
    pub fn record(&mut self, header: &RtpHeader, arrival: Instant) {
        self.packets += 1;
        self.bytes += header.payload_len as u64;
        match self.update_sequence(header) {
            SeqUpdate::Fresh => {}
            SeqUpdate::Duplicate => {
                self.duplicates += 1;
                return;
            }
            SeqUpdate::Ignored => return,
        }
        if self.timing_pt.is_none_or(|pt| pt == header.payload_type) {
            self.update_jitter(header.timestamp, arrival);
        }
    }

    fn new_segment(&mut self, ssrc: u32, seq: u16) {
        if let Some(old) = self.segment.take() {
            self.expected_before += old.expected();
            self.received_before += old.received;
        }
        self.segment = Some(Segment::start(ssrc, seq));
        self.last_transit = None;
    }

    fn update_sequence(&mut self, header: &RtpHeader) -> SeqUpdate {
        let seq = header.sequence;
        let seg = match &mut self.segment {
            Some(seg) if seg.ssrc == header.ssrc => seg,
            _ => {
                self.new_segment(header.ssrc, seq);
                return SeqUpdate::Fresh;
            }
        };
        let delta = seq.wrapping_sub(seg.max as u16);
        if delta == 0 {
            return SeqUpdate::Duplicate;
        }
        if delta < MAX_DROPOUT {
            let d = u64::from(delta);
            seg.max += d;
            seg.window = if d >= WINDOW {
                1
            } else {
                (seg.window << d) | 1
            };
            seg.received += 1;
            seg.bad_seq = None;
            return SeqUpdate::Fresh;
        }
        let behind = 0u16.wrapping_sub(delta);
        if behind <= MAX_MISORDER {
            let back = u64::from(behind);
            let bit = 1u128 << back;
            if seg.window & bit != 0 {
                return SeqUpdate::Duplicate;
            }
            seg.window |= bit;
            seg.received += 1;
            // a late packet from before the first one seen widens the segment downwards
            seg.base = seg.base.min(seg.max - back);
            return SeqUpdate::Fresh;
        }
        // A large jump: believe it only if the next packet follows on from it.
        if seg.bad_seq == Some(seq) {
            self.new_segment(header.ssrc, seq);
            SeqUpdate::Fresh
        } else {
            seg.bad_seq = Some(seq.wrapping_add(1));
            SeqUpdate::Ignored
        }
    }

    fn update_jitter(&mut self, timestamp: u32, arrival: Instant) {
        let origin = *self.origin.get_or_insert(arrival);
        let since = arrival.saturating_duration_since(origin);
        // arrival in timestamp units; wraps like the RTP timestamp does
        let units = since.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000;
        let arrival_ts = units as u32;
        let transit = arrival_ts.wrapping_sub(timestamp);
        if let Some(last) = self.last_transit {
            let d = u64::from((transit.wrapping_sub(last) as i32).unsigned_abs());
            // J += (|D| - J) / 16, with J kept ×16 (RFC 3550 A.8)
            self.jitter_q4 = self.jitter_q4 + d - ((self.jitter_q4 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter(&self) -> u32 {
        u32::try_from(self.jitter_q4 >> 4).unwrap_or(u32::MAX)
    }

    /// The statistics so far, with a MOS estimate for a path of `one_way_delay_ms` (network
    /// delay, when known; 0 otherwise). The delay fed to the E-model adds a jitter buffer of
    /// twice the measured jitter and 10 ms of packetisation allowance, the usual simplification
    /// of monitoring tools (after Cole & Rosenbluth, "Voice over IP performance monitoring",
    /// 2001).
    pub fn summary(&self, one_way_delay_ms: f64) -> ReceiveSummary {
        let (expected_now, received_now, highest) = self
            .segment
            .map_or((0, 0, 0), |s| (s.expected(), s.received, s.max - (1 << 16)));
        let expected = self.expected_before + expected_now;
        let received = self.received_before + received_now;
        let lost = expected.saturating_sub(received);
        let loss_fraction = if expected == 0 {
            0.0
        } else {
            lost as f64 / expected as f64
        };
        let jitter = self.jitter();
        let jitter_ms = f64::from(jitter) * 1000.0 / f64::from(self.clock_rate);
        let delay = one_way_delay_ms.max(0.0) + 2.0 * jitter_ms + 10.0;
        let r = r_factor(delay, loss_fraction * 100.0, G711_PLC);
        ReceiveSummary {
            packets: self.packets,
            bytes: self.bytes,
            duplicates: self.duplicates,
            expected,
            lost,
            loss_fraction,
            highest_sequence: highest,
            jitter,
            jitter_ms,
            r_factor: r,
            mos: mos_from_r(r),
        }
    }
}

/// Equipment impairment of a codec for the E-model (ITU-T G.113 Appendix I).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CodecImpairment {
    /// Equipment impairment factor `Ie` without loss.
    pub ie: f64,
    /// Packet-loss robustness factor `Bpl`.
    pub bpl: f64,
}

/// G.711 with packet-loss concealment (G.711 Appendix I): `Ie = 0`, `Bpl = 25.1`.
pub const G711_PLC: CodecImpairment = CodecImpairment { ie: 0.0, bpl: 25.1 };
/// G.711 without concealment: `Ie = 0`, `Bpl = 4.3`.
pub const G711_NO_PLC: CodecImpairment = CodecImpairment { ie: 0.0, bpl: 4.3 };

/// Basic signal-to-noise ratio minus simultaneous impairments, `R0 − Is`, with every G.107
/// parameter at its default, and the advantage factor `A` = 0.
pub const R_DEFAULT: f64 = 93.2;

/// Delay impairment `Id` for a one-way mouth-to-ear delay in ms: the simplified form of G.107's
/// `Idte + Idle + Idd` at default parameters, `0.024·d + 0.11·(d − 177.3)·H(d − 177.3)`
/// (Cole & Rosenbluth 2001), where `H` is the unit step.
pub fn delay_impairment(one_way_delay_ms: f64) -> f64 {
    let d = one_way_delay_ms.max(0.0);
    let mut id = 0.024 * d;
    if d > 177.3 {
        id += 0.11 * (d - 177.3);
    }
    id
}

/// Effective equipment impairment `Ie,eff = Ie + (95 − Ie)·Ppl/(Ppl/BurstR + Bpl)` (G.107
/// §3.6) for random loss (`BurstR = 1`), with `Ppl` the loss in percent.
pub fn effective_equipment_impairment(loss_percent: f64, codec: CodecImpairment) -> f64 {
    let ppl = loss_percent.clamp(0.0, 100.0);
    codec.ie + (95.0 - codec.ie) * ppl / (ppl + codec.bpl)
}

/// The simplified E-model rating `R = 93.2 − Id − Ie,eff`. Non-finite inputs count as worst.
pub fn r_factor(one_way_delay_ms: f64, loss_percent: f64, codec: CodecImpairment) -> f64 {
    let delay = if one_way_delay_ms.is_nan() {
        f64::INFINITY
    } else {
        one_way_delay_ms
    };
    let loss = if loss_percent.is_nan() {
        100.0
    } else {
        loss_percent
    };
    let r = R_DEFAULT - delay_impairment(delay) - effective_equipment_impairment(loss, codec);
    if r.is_nan() { 0.0 } else { r }
}

/// G.107 Annex B: `MOS = 1` for `R < 0`, `4.5` for `R > 100`, else
/// `1 + 0.035·R + R·(R − 60)·(100 − R)·7·10⁻⁶`.
pub fn mos_from_r(r: f64) -> f64 {
    if r.is_nan() || r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn hdr(seq: u16, ts: u32) -> RtpHeader {
        RtpHeader {
            padding: false,
            extension: false,
            csrc_count: 0,
            marker: false,
            payload_type: 0,
            sequence: seq,
            timestamp: ts,
            ssrc: 7,
            payload_offset: 12,
            payload_len: 160,
        }
    }

    /// Feeds packets with these sequence numbers, 20 ms apart, timestamps matching.
    fn feed(seqs: &[u16]) -> ReceiveSummary {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000);
        for (i, seq) in seqs.iter().enumerate() {
            let at = t0 + Duration::from_millis(20 * i as u64);
            s.record(&hdr(*seq, 160 * u32::from(*seq)), at);
        }
        s.summary(0.0)
    }

    fn close(a: f64, b: f64, eps: f64) -> bool {
        (a - b).abs() < eps
    }

    #[test]
    fn counts_a_clean_stream() {
        let seqs: Vec<u16> = (100..300).collect();
        let s = feed(&seqs);
        assert_eq!(
            (s.packets, s.bytes, s.expected, s.lost),
            (200, 32000, 200, 0)
        );
        assert_eq!(s.highest_sequence, 299);
        assert_eq!(s.jitter, 0);
    }

    #[test]
    fn counts_gaps_as_loss_across_a_wrap() {
        let mut seqs: Vec<u16> = (65500..=65535).collect();
        seqs.extend(0..100u16);
        seqs.retain(|s| ![65510, 65535, 0, 50, 51, 52].contains(s));
        let s = feed(&seqs);
        assert_eq!(s.expected, 136);
        assert_eq!(s.lost, 6);
        assert_eq!(s.highest_sequence, (1 << 16) + 99);
        assert!(close(s.loss_fraction, 6.0 / 136.0, 1e-12));
    }

    #[test]
    fn late_packets_fill_gaps_and_duplicates_do_not_hide_loss() {
        // 5 arrives late, 7 twice, 9 never; 3 again much later (still inside the window)
        let s = feed(&[1, 2, 3, 4, 6, 5, 7, 7, 8, 10, 3, 11]);
        assert_eq!(s.expected, 11);
        assert_eq!(s.lost, 1);
        assert_eq!(s.duplicates, 2);
        assert_eq!(s.packets, 12);
        // a packet from before the first one seen widens the count rather than going negative
        let s = feed(&[10, 11, 9, 12]);
        assert_eq!((s.expected, s.lost), (4, 0));
    }

    #[test]
    fn a_large_jump_needs_confirmation() {
        // one stray packet far ahead is ignored...
        let s = feed(&[1, 2, 3, 30_000, 4, 5]);
        assert_eq!((s.expected, s.lost, s.packets), (5, 0, 6));
        // ...two in a row restart the sequence, keeping what came before
        let s = feed(&[1, 2, 3, 30_000, 30_001, 30_003]);
        assert_eq!((s.expected, s.lost), (3 + 3, 1));
    }

    #[test]
    fn a_new_ssrc_starts_a_new_segment() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000);
        for seq in [1u16, 2, 4] {
            s.record(&hdr(seq, 0), t0);
        }
        let mut other = hdr(5000, 0);
        other.ssrc = 8;
        s.record(&other, t0);
        other.sequence = 5001;
        s.record(&other, t0);
        let sum = s.summary(0.0);
        assert_eq!((sum.expected, sum.lost), (4 + 2, 1));
    }

    #[test]
    fn jitter_follows_rfc3550_a8() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000);
        // transit alternates 0 and 80 timestamp units (10 ms): |D| = 80 for every packet.
        for i in 0..400u32 {
            let extra = if i % 2 == 1 { 10 } else { 0 };
            let at = t0 + Duration::from_millis(u64::from(20 * i + extra));
            s.record(&hdr(i as u16, 160 * i), at);
            if i == 1 {
                // first estimate: 80/16
                assert_eq!(s.jitter(), 5);
            }
        }
        let sum = s.summary(0.0);
        assert!((79..=80).contains(&sum.jitter), "{}", sum.jitter);
        assert!(close(sum.jitter_ms, f64::from(sum.jitter) / 8.0, 1e-9));
    }

    #[test]
    fn events_do_not_feed_jitter_when_a_timing_type_is_set() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000);
        s.set_timing_payload_type(Some(0));
        for i in 0..50u32 {
            let mut h = hdr(i as u16, 160 * i);
            if (10..20).contains(&i) {
                // an RFC 4733 event: PT 101, timestamp frozen at the event start
                h.payload_type = 101;
                h.timestamp = 1600;
            }
            s.record(&h, t0 + Duration::from_millis(u64::from(20 * i)));
        }
        assert_eq!(s.jitter(), 0);
    }

    #[test]
    fn e_model_known_values() {
        assert!(close(r_factor(0.0, 0.0, G711_PLC), 93.2, 1e-12));
        assert!(close(mos_from_r(93.2), 4.409, 1e-3));
        // 1 % random loss with PLC: Ie,eff = 95/26.1 = 3.640
        assert!(close(
            effective_equipment_impairment(1.0, G711_PLC),
            3.6398,
            1e-4
        ));
        assert!(close(
            mos_from_r(r_factor(0.0, 1.0, G711_PLC)),
            4.3282,
            1e-3
        ));
        // without PLC the same loss costs far more: 95/5.3 = 17.92
        assert!(close(r_factor(0.0, 1.0, G711_NO_PLC), 75.28, 1e-2));
        // 200 ms one way: Id = 4.8 + 0.11·22.7 = 7.297
        assert!(close(delay_impairment(200.0), 7.297, 1e-9));
        assert!(close(delay_impairment(100.0), 2.4, 1e-9));
        // R→MOS anchors of G.107 Annex B
        assert_eq!(mos_from_r(-5.0), 1.0);
        assert_eq!(mos_from_r(120.0), 4.5);
        assert!(close(mos_from_r(50.0), 2.575, 1e-3));
        assert!(close(mos_from_r(80.0), 4.024, 1e-3));
        assert_eq!(mos_from_r(f64::NAN), 1.0);
        assert_eq!(mos_from_r(r_factor(f64::NAN, f64::NAN, G711_PLC)), 1.0);
    }

    #[test]
    fn summary_mos_of_a_clean_stream() {
        let seqs: Vec<u16> = (0..100).collect();
        let s = feed(&seqs);
        // 0 jitter: delay = 10 ms allowance → R = 93.2 − 0.24
        assert!(close(s.r_factor, 92.96, 1e-9));
        assert!(s.mos > 4.4 && s.mos <= 4.41, "{}", s.mos);
    }
}
