//! The DTMF events the relay sends a leg itself ([`super::Control::SendDtmf`]): a short queue of
//! digits, played one after the other as RFC 4733 packets ([`crate::dtmf::EventSender`]) on a
//! stream of the relay's own (its SSRC, sequence numbers and timestamps), one packet per 20 ms
//! tick, with a pause of [`GAP_TICKS`] ticks between events.
//!
//! While an event is being sent, the relay sends the leg nothing relayed (see
//! [`super::RelayCore`]): a receiver then never sees packets of two SSRCs interleaved within an
//! event (Asterisk, for one, resets its event detection on every SSRC change).

use crate::dtmf::{DtmfEvent, EventSender, StreamFields};
use crate::tone::FRAME_SAMPLES;
use std::collections::VecDeque;

/// Digits waiting at most; more are dropped (and counted).
pub(crate) const QUEUE_LIMIT: usize = 32;
/// Silent ticks (20 ms each) between two events.
pub(crate) const GAP_TICKS: u8 = 2;

/// One leg's outgoing DTMF.
#[derive(Clone, Debug)]
pub(crate) struct DtmfOut {
    ssrc: u32,
    sequence: u16,
    /// RTP timestamp of the next event.
    timestamp: u32,
    queue: VecDeque<(DtmfEvent, u32)>,
    current: Option<EventSender>,
    /// Ticks to wait before the next event starts.
    gap: u8,
}

impl DtmfOut {
    pub(crate) fn new(ssrc: u32, sequence: u16, timestamp: u32) -> Self {
        DtmfOut {
            ssrc,
            sequence,
            timestamp,
            queue: VecDeque::new(),
            current: None,
            gap: 0,
        }
    }

    /// Queues an event; `false` when the queue is full.
    pub(crate) fn push(&mut self, event: DtmfEvent, duration_ms: u32) -> bool {
        if self.queue.len() >= QUEUE_LIMIT {
            return false;
        }
        self.queue.push_back((event, duration_ms));
        true
    }

    /// An event is being sent now (relayed media to the leg waits).
    pub(crate) fn sending(&self) -> bool {
        self.current.is_some()
    }

    /// Something is being sent or waits: the driver's 20 ms timer is needed.
    pub(crate) fn pending(&self) -> bool {
        self.current.is_some() || !self.queue.is_empty()
    }

    /// Drops everything queued and the event in progress (its end packets are not sent).
    pub(crate) fn clear(&mut self) -> usize {
        let dropped = self.queue.len() + usize::from(self.current.is_some());
        self.queue.clear();
        self.finish();
        dropped
    }

    fn finish(&mut self) {
        if let Some(done) = self.current.take() {
            self.timestamp = self
                .timestamp
                .wrapping_add(done.span())
                .wrapping_add(u32::from(GAP_TICKS) * FRAME_SAMPLES as u32);
            self.gap = GAP_TICKS;
        }
    }

    /// One 20 ms tick: writes the next packet with payload type `payload_type` into `out` and
    /// returns its length, or `None` (nothing to send this tick, or `out` too short).
    pub(crate) fn poll(&mut self, payload_type: u8, out: &mut [u8]) -> Option<usize> {
        if self.current.is_none() {
            if self.gap > 0 {
                self.gap -= 1;
                return None;
            }
            let (event, ms) = self.queue.pop_front()?;
            self.current = Some(EventSender::new(event, ms, self.timestamp));
        }
        let stream = StreamFields {
            payload_type,
            sequence: self.sequence,
            ssrc: self.ssrc,
        };
        let written = self.current.as_mut()?.next_packet(out, stream);
        if written.is_some() {
            self.sequence = self.sequence.wrapping_add(1);
        }
        if self.current.as_ref().is_some_and(EventSender::is_done) {
            self.finish();
        }
        written
    }
}
