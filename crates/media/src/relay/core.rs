//! The sans-IO core of one call's relay: decides, for each datagram, whether and where it goes.
//!
//! [`RelayCore`] owns everything about the call's media except the sockets: per-leg
//! configuration, latches, payload-type maps, receive statistics, counters and tone streams. The
//! driver (the tokio task in [`super`], or a test) hands it each datagram with the time it
//! arrived and gets back a [`Verdict`]; the only change it makes to a packet is the payload type
//! byte, in place. It never reads a clock, allocates per packet, or locks.
//!
//! What each leg is sent, in order of precedence:
//! 1. the leg's tone, while one plays to it (relayed packets for it are dropped), and the DTMF
//!    events the relay was asked to send it ([`RelayCore::send_dtmf`]; relayed packets for it are
//!    dropped while an event is being sent);
//! 2. nothing while the leg is held ([`RelayCore::hold`]: the remote does not want media);
//! 3. the other leg's packets while bridged, with payload types mapped by codec;
//! 4. nothing otherwise (not yet bridged: the caller is waiting for an operator).

use super::dtmf_out::DtmfOut;
use super::{Leg, LegMedia};
use crate::codec::{Codec, Payloads};
use crate::dtmf::{DtmfEvent, PACKET_LEN};
use crate::rtp::{self, HeaderFields, RtpHeader};
use crate::stats::{ReceiveStats, ReceiveSummary};
use crate::tone::{FRAME_SAMPLES, Tone, ToneSpec};
use std::net::SocketAddr;
use std::time::Instant;

/// "Drop packets of this payload type" in a payload-type map.
const UNMAPPED: u8 = 0xFF;

/// Which of a leg's two sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SocketKind {
    /// The even port.
    Rtp,
    /// The odd port.
    Rtcp,
}

/// What to do with a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send the (possibly rewritten) datagram from `leg`'s `socket` to `to`.
    Forward {
        /// Leg whose socket sends it.
        leg: Leg,
        /// Which of that leg's sockets.
        socket: SocketKind,
        /// Destination.
        to: SocketAddr,
    },
    /// Drop it (already counted).
    Drop,
}

/// Counters of one leg. "Received" counters are about datagrams that arrived on this leg's
/// sockets; "sent" counters about what homeline sent out of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LegCounters {
    /// RTP packets received from the leg's remote and forwarded to the other leg.
    pub forwarded: u64,
    /// RTP packets received while the legs were not bridged.
    pub dropped_not_bridged: u64,
    /// RTP packets received while the other leg was held or was hearing a tone.
    pub dropped_held: u64,
    /// Datagrams from a source other than the latched remote that reached the relay. (The
    /// driver connects a socket to its latched remote, after which the kernel discards other
    /// sources' datagrams before they are seen or counted.)
    pub dropped_foreign: u64,
    /// Datagrams that are not valid RTP (or RTCP, on the RTCP port), or were truncated.
    pub dropped_invalid: u64,
    /// RTP packets whose payload type has no counterpart on the other leg.
    pub dropped_unmapped: u64,
    /// RTP packets for which the other leg has no remote address yet.
    pub dropped_no_destination: u64,
    /// RTCP packets received and forwarded to the other leg.
    pub rtcp_forwarded: u64,
    /// RTCP packets received and dropped (not bridged, held, foreign, or nowhere to send).
    pub rtcp_dropped: u64,
    /// Tone packets sent to this leg.
    pub tone_packets: u64,
    /// RFC 4733 packets homeline generated for this leg ([`RelayCore::send_dtmf`]).
    pub dtmf_packets: u64,
    /// DTMF events for this leg dropped: it has no telephone-event payload type, or too many
    /// were waiting.
    pub dtmf_dropped: u64,
    /// Sends to this leg that failed (socket buffer full, unreachable, …).
    pub send_errors: u64,
}

/// Everything known about one leg at the end of (or during) a call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LegReport {
    /// Statistics of the RTP received from the leg's remote.
    pub stats: ReceiveSummary,
    /// Counters.
    pub counters: LegCounters,
    /// The remote's RTP address: latched, or still the SDP's guess.
    pub remote_rtp: Option<SocketAddr>,
    /// Whether `remote_rtp` was learned from received packets.
    pub latched: bool,
}

/// Both legs' reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RelayReport {
    /// The PBX leg.
    pub a: LegReport,
    /// The operator leg.
    pub b: LegReport,
}

/// A remote address learned from the first packet actually received (symmetric RTP, RFC 4961),
/// with the SDP's address as the guess until then. Once latched, other sources are ignored until
/// the leg is configured again (a re-INVITE), which limits RTP injection to the window before
/// the real remote's first packet.
#[derive(Clone, Copy, Debug, Default)]
struct Latch {
    addr: Option<SocketAddr>,
    locked: bool,
}

impl Latch {
    fn guess(addr: Option<SocketAddr>) -> Self {
        Latch {
            addr,
            locked: false,
        }
    }

    /// Whether a datagram from `from` is the remote's, latching onto it if nothing is yet.
    fn accept(&mut self, from: SocketAddr) -> bool {
        if self.locked {
            return self.addr == Some(from);
        }
        self.addr = Some(from);
        self.locked = true;
        true
    }

    /// Like `accept` without latching (RTCP on a muxed RTP port).
    fn admits(&self, from: SocketAddr) -> bool {
        !self.locked || self.addr == Some(from)
    }
}

#[derive(Clone, Debug)]
struct ToneStream {
    tone: Tone,
    payload_type: u8,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    first: bool,
}

#[derive(Clone, Debug)]
struct LegState {
    media: Option<LegMedia>,
    rtp: Latch,
    rtcp: Latch,
    stats: ReceiveStats,
    counters: LegCounters,
    held: bool,
    tone: Option<ToneStream>,
    /// Maps the other leg's payload types to this leg's (UNMAPPED: drop).
    pt_in: [u8; 128],
    tone_ssrc: u32,
    tone_sequence: u16,
    dtmf: DtmfOut,
}

impl LegState {
    fn new(media: Option<LegMedia>, tone_ssrc: u32, tone_sequence: u16) -> Self {
        let mut leg = LegState {
            media: None,
            rtp: Latch::default(),
            rtcp: Latch::default(),
            stats: ReceiveStats::new(8000),
            counters: LegCounters::default(),
            held: false,
            tone: None,
            pt_in: [UNMAPPED; 128],
            tone_ssrc,
            tone_sequence,
            // a stream of its own, told apart from the tones' by its SSRC
            dtmf: DtmfOut::new(
                !tone_ssrc,
                tone_sequence.rotate_left(8),
                tone_ssrc.rotate_left(16),
            ),
        };
        leg.configure(media);
        leg
    }

    fn configure(&mut self, media: Option<LegMedia>) {
        self.media = media;
        self.rtp = Latch::guess(media.and_then(|m| m.remote_rtp));
        self.rtcp = Latch::guess(media.and_then(|m| m.remote_rtcp));
        let payloads = self.payloads();
        self.stats
            .set_timing_payload_type(media.map(|m| m.payloads.codec_pt));
        if let Some(t) = &mut self.tone {
            t.payload_type = payloads.codec_pt;
            if t.tone.codec() != payloads.codec {
                t.tone = Tone::new(t.tone.spec(), payloads.codec);
            }
        }
        if payloads.telephone_event_pt.is_none() {
            self.counters.dtmf_dropped += self.dtmf.clear() as u64;
        }
    }

    /// The leg's payload types, or PCMU on 0 (RFC 3551's default) before it is configured.
    fn payloads(&self) -> Payloads {
        self.media.map_or(
            Payloads {
                codec: Codec::Pcmu,
                codec_pt: 0,
                telephone_event_pt: None,
            },
            |m| m.payloads,
        )
    }

    /// Whether relayed media may be sent to this leg now.
    fn accepts_relay(&self) -> bool {
        !self.held && self.tone.is_none() && !self.dtmf.sending()
    }

    fn report(&self) -> LegReport {
        LegReport {
            stats: self.stats.summary(0.0),
            counters: self.counters,
            remote_rtp: self.rtp.addr,
            latched: self.rtp.locked,
        }
    }
}

/// Builds the table that maps `from`'s payload types to `to`'s, by codec: the codec maps to the
/// codec if both legs use the same one (the relay does not transcode) and telephone-event to
/// telephone-event.
fn build_map(from: Option<LegMedia>, to: Option<LegMedia>) -> [u8; 128] {
    let mut map = [UNMAPPED; 128];
    if let (Some(from), Some(to)) = (from, to) {
        let (f, t) = (from.payloads, to.payloads);
        if let (Some(fe), Some(te)) = (f.telephone_event_pt, t.telephone_event_pt) {
            map[usize::from(fe & 0x7F)] = te;
        }
        if f.codec == t.codec {
            map[usize::from(f.codec_pt & 0x7F)] = t.codec_pt;
        }
    }
    map
}

/// splitmix64: spreads the caller's seed into SSRCs and initial sequence numbers.
fn mix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The relay of one call between leg A (PBX) and leg B (operator). See the module docs.
#[derive(Clone, Debug)]
pub struct RelayCore {
    legs: [LegState; 2],
    bridged: bool,
}

impl RelayCore {
    /// A relay, not bridged, with the legs' media as far as known. `seed` (from the caller's
    /// random source) picks the SSRCs and first sequence numbers of tone streams.
    pub fn new(a: Option<LegMedia>, b: Option<LegMedia>, seed: u64) -> Self {
        let mut state = seed;
        let mut leg = |media| {
            let r = mix(&mut state);
            LegState::new(media, r as u32, (r >> 32) as u16)
        };
        let legs = [leg(a), leg(b)];
        let mut core = RelayCore {
            legs,
            bridged: false,
        };
        core.rebuild_maps();
        core
    }

    fn leg(&self, leg: Leg) -> &LegState {
        &self.legs[leg.index()]
    }

    fn leg_mut(&mut self, leg: Leg) -> &mut LegState {
        &mut self.legs[leg.index()]
    }

    fn rebuild_maps(&mut self) {
        let (a, b) = (self.legs[0].media, self.legs[1].media);
        self.legs[0].pt_in = build_map(b, a);
        self.legs[1].pt_in = build_map(a, b);
    }

    /// Sets a leg's media (after its offer/answer or a re-INVITE) and re-arms its latches.
    pub fn configure(&mut self, leg: Leg, media: LegMedia) {
        self.leg_mut(leg).configure(Some(media));
        self.rebuild_maps();
    }

    /// Like [`Self::configure`], but the leg's remotes are its SDP's addresses, locked at
    /// once: for a far end that sends from where its SDP says (a trunk's media), so that
    /// nothing else arriving first (say, the previous far end of this leg, still sending
    /// until its BYE) can latch the leg.
    pub fn configure_fixed(&mut self, leg: Leg, media: LegMedia) {
        self.configure(leg, media);
        let l = self.leg_mut(leg);
        l.rtp.locked = l.rtp.addr.is_some();
        l.rtcp.locked = l.rtcp.addr.is_some();
    }

    /// Starts relaying between the legs, and stops any tone.
    pub fn bridge(&mut self) {
        self.bridged = true;
        for l in &mut self.legs {
            l.tone = None;
        }
    }

    /// Stops relaying (tones keep playing).
    pub fn unbridge(&mut self) {
        self.bridged = false;
    }

    /// Whether the legs are bridged.
    pub fn is_bridged(&self) -> bool {
        self.bridged
    }

    /// Stops sending relayed media to `leg` (it is on hold and does not want media).
    pub fn hold(&mut self, leg: Leg) {
        self.leg_mut(leg).held = true;
    }

    /// Undoes [`Self::hold`].
    pub fn resume(&mut self, leg: Leg) {
        self.leg_mut(leg).held = false;
    }

    /// Plays `spec` to `leg` in the leg's codec, replacing relayed media to it, until
    /// [`Self::stop_tone`] or [`Self::bridge`]. The driver then calls [`Self::poll_tone`] every
    /// 20 ms.
    pub fn play_tone(&mut self, leg: Leg, spec: ToneSpec) {
        let l = self.leg_mut(leg);
        let payloads = l.payloads();
        l.tone = Some(ToneStream {
            tone: Tone::new(spec, payloads.codec),
            payload_type: payloads.codec_pt,
            ssrc: l.tone_ssrc,
            sequence: l.tone_sequence,
            timestamp: 0,
            first: true,
        });
    }

    /// Stops the tone to `leg`.
    pub fn stop_tone(&mut self, leg: Leg) {
        let l = self.leg_mut(leg);
        if let Some(t) = l.tone.take() {
            // a later tone continues the sequence numbers of this one
            l.tone_sequence = t.sequence;
        }
    }

    /// Whether a tone plays to any leg (the driver's 20 ms timer is then needed).
    pub fn tone_active(&self) -> bool {
        self.legs.iter().any(|l| l.tone.is_some())
    }

    /// Writes the next 20 ms tone packet for `leg` into `out` (at least 172 bytes); returns its
    /// length and destination, or `None` when no tone plays or the leg has no address (the tone
    /// still advances, as time does).
    pub fn poll_tone(&mut self, leg: Leg, out: &mut [u8]) -> Option<(usize, SocketAddr)> {
        let l = self.leg_mut(leg);
        let dest = l.rtp.addr;
        let t = l.tone.as_mut()?;
        let len = rtp::HEADER_LEN + FRAME_SAMPLES;
        let Some(dest) = dest.filter(|_| out.len() >= len) else {
            t.tone.fill_frame(&mut [0u8; FRAME_SAMPLES]);
            t.timestamp = t.timestamp.wrapping_add(FRAME_SAMPLES as u32);
            return None;
        };
        let fields = HeaderFields {
            marker: t.first,
            payload_type: t.payload_type,
            sequence: t.sequence,
            timestamp: t.timestamp,
            ssrc: t.ssrc,
        };
        rtp::write_header(out, &fields)?;
        t.tone.fill_frame(&mut out[rtp::HEADER_LEN..len]);
        t.first = false;
        t.sequence = t.sequence.wrapping_add(1);
        t.timestamp = t.timestamp.wrapping_add(FRAME_SAMPLES as u32);
        l.counters.tone_packets += 1;
        Some((len, dest))
    }

    /// Queues DTMF `event` lasting `duration_ms` (clamped to 40 ms..8 s) for `leg`, sent as
    /// RFC 4733 packets with the leg's telephone-event payload type on a stream of the relay's
    /// own, whether or not the legs are bridged; the driver then calls [`Self::poll_dtmf`] every
    /// 20 ms. Returns `false`, and counts it dropped, when the leg has no telephone-event
    /// payload type (the PBX did not negotiate it) or too many events are waiting.
    pub fn send_dtmf(&mut self, leg: Leg, event: DtmfEvent, duration_ms: u32) -> bool {
        let l = self.leg_mut(leg);
        let queued = l.payloads().telephone_event_pt.is_some() && l.dtmf.push(event, duration_ms);
        if !queued {
            l.counters.dtmf_dropped += 1;
        }
        queued
    }

    /// Writes the next DTMF packet for `leg` into `out` (at least 16 bytes); returns its length
    /// and destination, or `None` when there is nothing to send this tick or the leg has no
    /// address (the event still advances, as time does).
    pub fn poll_dtmf(&mut self, leg: Leg, out: &mut [u8]) -> Option<(usize, SocketAddr)> {
        let l = self.leg_mut(leg);
        if !l.dtmf.pending() {
            return None;
        }
        let Some(pt) = l.payloads().telephone_event_pt else {
            l.counters.dtmf_dropped += l.dtmf.clear() as u64;
            return None;
        };
        match l.rtp.addr {
            Some(dest) if out.len() >= PACKET_LEN => {
                let len = l.dtmf.poll(pt, out)?;
                l.counters.dtmf_packets += 1;
                Some((len, dest))
            }
            _ => {
                l.dtmf.poll(pt, &mut [0u8; PACKET_LEN]);
                None
            }
        }
    }

    /// Whether the driver's 20 ms timer is needed: a tone plays, or DTMF is being sent or
    /// waits, on some leg.
    pub fn timer_needed(&self) -> bool {
        self.legs
            .iter()
            .any(|l| l.tone.is_some() || l.dtmf.pending())
    }

    /// Handles an RTP datagram received on `leg`'s RTP port at `now`. May rewrite its payload
    /// type. (Demultiplex RTCP on a muxed port first with [`crate::rtp::is_rtcp`].)
    pub fn on_rtp(
        &mut self,
        leg: Leg,
        from: SocketAddr,
        packet: &mut [u8],
        now: Instant,
    ) -> Verdict {
        let bridged = self.bridged;
        let [a, b] = &mut self.legs;
        let (src, dst) = match leg {
            Leg::A => (a, b),
            Leg::B => (b, a),
        };
        let header = match RtpHeader::parse(packet) {
            Ok(h) => h,
            Err(_) => {
                src.counters.dropped_invalid += 1;
                return Verdict::Drop;
            }
        };
        if !src.rtp.accept(from) {
            src.counters.dropped_foreign += 1;
            return Verdict::Drop;
        }
        src.stats.record(&header, now);
        if !bridged {
            src.counters.dropped_not_bridged += 1;
            return Verdict::Drop;
        }
        if !dst.accepts_relay() {
            src.counters.dropped_held += 1;
            return Verdict::Drop;
        }
        let pt = dst.pt_in[usize::from(header.payload_type)];
        if pt == UNMAPPED {
            src.counters.dropped_unmapped += 1;
            return Verdict::Drop;
        }
        let Some(to) = dst.rtp.addr else {
            src.counters.dropped_no_destination += 1;
            return Verdict::Drop;
        };
        if pt != header.payload_type {
            rtp::set_payload_type(packet, pt);
        }
        src.counters.forwarded += 1;
        Verdict::Forward {
            leg: leg.other(),
            socket: SocketKind::Rtp,
            to,
        }
    }

    /// Handles an RTCP datagram received on `leg`: on its RTCP port (`muxed == false`) or
    /// demultiplexed from its RTP port. Relayed unchanged to the other leg's RTCP destination
    /// (its RTP port if that leg muxes) whenever RTP to that leg would be.
    pub fn on_rtcp(&mut self, leg: Leg, from: SocketAddr, packet: &[u8], muxed: bool) -> Verdict {
        let bridged = self.bridged;
        let [a, b] = &mut self.legs;
        let (src, dst) = match leg {
            Leg::A => (a, b),
            Leg::B => (b, a),
        };
        if !rtp::is_rtcp(packet) || packet.len() < 8 {
            src.counters.dropped_invalid += 1;
            return Verdict::Drop;
        }
        let ours = if muxed {
            src.rtp.admits(from)
        } else {
            src.rtcp.accept(from)
        };
        let dst_muxed = dst.media.is_some_and(|m| m.rtcp_mux);
        let (socket, to) = if dst_muxed {
            (SocketKind::Rtp, dst.rtp.addr)
        } else {
            (SocketKind::Rtcp, dst.rtcp.addr)
        };
        match to {
            Some(to) if ours && bridged && dst.accepts_relay() => {
                src.counters.rtcp_forwarded += 1;
                Verdict::Forward {
                    leg: leg.other(),
                    socket,
                    to,
                }
            }
            _ => {
                src.counters.rtcp_dropped += 1;
                Verdict::Drop
            }
        }
    }

    /// Counts a datagram on `leg` that the driver found unusable (e.g. truncated).
    pub fn note_invalid(&mut self, leg: Leg) {
        self.leg_mut(leg).counters.dropped_invalid += 1;
    }

    /// Counts a failed send to `leg`.
    pub fn note_send_error(&mut self, leg: Leg) {
        self.leg_mut(leg).counters.send_errors += 1;
    }

    /// The remote `leg`'s `socket` is latched to, once a received packet has locked it; `None`
    /// while the address is only a guess and a packet from anywhere may still latch. The driver
    /// connects the socket to it (and disconnects it when this turns `None` again, after
    /// [`Self::configure`]): the kernel then filters as the latch does.
    pub fn latched(&self, leg: Leg, socket: SocketKind) -> Option<SocketAddr> {
        let l = self.leg(leg);
        let latch = match socket {
            SocketKind::Rtp => l.rtp,
            SocketKind::Rtcp => l.rtcp,
        };
        latch.addr.filter(|_| latch.locked)
    }

    /// The RTP address packets to `leg` go to now.
    pub fn remote_rtp(&self, leg: Leg) -> Option<SocketAddr> {
        self.leg(leg).rtp.addr
    }

    /// Statistics and counters of both legs so far.
    pub fn report(&self) -> RelayReport {
        RelayReport {
            a: self.legs[0].report(),
            b: self.legs[1].report(),
        }
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
