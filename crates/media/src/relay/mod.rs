//! The RTP relay of one call: two legs, each a pair of UDP sockets, joined by one tokio task.
//!
//! [`spawn`] takes the legs' sockets (from a [`PortAllocator`]) and their media as far as known
//! and starts the call's task, which owns a [`RelayCore`] by value and drives it:
//!
//! ```text
//! on every wake-up (one hand-written poll, no select!):
//!     control messages, all waiting => apply (Stop, or every sender gone: return the report)
//!     20 ms tick, if a tone plays or DTMF is sent => core.poll_tone / poll_dtmf(leg) → send
//!     each readable socket  => drain it (up to 64 datagrams): core.on_rtp / on_rtcp → send
//!     poll each source until it is Pending, which re-registers the task's waker with it
//! ```
//!
//! The packet path reads one clock (`Instant::now()` per datagram, for jitter), uses one fixed
//! 2 KiB buffer, sends without waiting (a full socket buffer drops and counts rather than
//! stalling the call), and shares no lock or state with signalling: the engine talks to it only
//! through the bounded [`Control`] channel. Symmetric RTP: each leg's remote is latched from the
//! first packet received on it, with the SDP address as the guess until then.
//!
//! Once a socket's latch is locked ([`RelayCore::latched`]) the task `connect`s the socket to
//! that remote: sends to it are then plain `send`s, which skip the kernel's per-packet route
//! lookup, and the kernel itself discards datagrams from anyone else. When a re-INVITE
//! ([`Control::Configure`]) re-arms the latch, the socket is disconnected again, so a packet from
//! anywhere can latch it, as before the first one.

mod core;
mod dtmf_out;
mod ports;

pub use self::core::{LegCounters, LegReport, RelayCore, RelayReport, SocketKind, Verdict};
pub use ports::{LegSockets, PortAllocator, PortError, PortLease};

use crate::codec::Payloads;
use crate::dtmf::DtmfEvent;
use crate::rtp;
use crate::sdp::Negotiated;
use crate::tone::{FRAME_MS, ToneSpec};
use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Interval, MissedTickBehavior};

/// Capacity of a relay's control channel.
pub const CONTROL_CAPACITY: usize = 16;
/// Datagrams read from one socket before the task looks at the others again.
const DRAIN_BUDGET: usize = 64;
/// Receive buffer; a datagram that fills it is taken as truncated and dropped.
const BUF_LEN: usize = 2048;

/// One side of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Leg {
    /// The PBX (trunk) side.
    A,
    /// The operator side.
    B,
}

impl Leg {
    /// The other leg.
    pub const fn other(self) -> Leg {
        match self {
            Leg::A => Leg::B,
            Leg::B => Leg::A,
        }
    }

    const fn index(self) -> usize {
        match self {
            Leg::A => 0,
            Leg::B => 1,
        }
    }
}

/// What the relay needs to know about a leg's remote, from offer/answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegMedia {
    /// The remote's RTP address from SDP: the first guess until packets arrive.
    pub remote_rtp: Option<SocketAddr>,
    /// The remote's RTCP address from SDP.
    pub remote_rtcp: Option<SocketAddr>,
    /// RTCP travels on the RTP port.
    pub rtcp_mux: bool,
    /// The payload types the leg uses.
    pub payloads: Payloads,
}

impl From<&Negotiated> for LegMedia {
    fn from(n: &Negotiated) -> Self {
        LegMedia {
            remote_rtp: n.remote_rtp,
            remote_rtcp: n.remote_rtcp,
            rtcp_mux: n.rtcp_mux,
            payloads: n.payloads,
        }
    }
}

/// A message to a running relay.
#[derive(Debug)]
pub enum Control {
    /// Relay between the legs; stops tones.
    Bridge,
    /// Stop relaying.
    Unbridge,
    /// Send nothing relayed to this leg.
    Hold(Leg),
    /// Undo `Hold`.
    Resume(Leg),
    /// Play a tone to this leg, replacing relayed media to it.
    PlayTone(Leg, ToneSpec),
    /// Stop the tone to this leg.
    StopTone(Leg),
    /// Send this leg a DTMF event lasting this many ms as RFC 4733 packets (after those queued
    /// before it); dropped and counted (`dtmf_dropped`) if the leg has no telephone-event.
    SendDtmf(Leg, DtmfEvent, u32),
    /// New media for a leg (its answer arrived, or a re-INVITE); re-arms its latches.
    Configure(Leg, LegMedia),
    /// New media for a leg whose far end sends from its SDP's addresses (a trunk): they are
    /// latched at once (see [`RelayCore::configure_fixed`]).
    ConfigureFixed(Leg, LegMedia),
    /// Send back the statistics so far.
    Report(oneshot::Sender<RelayReport>),
    /// End the task; it returns the final report.
    Stop,
}

/// The relay task has ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("the relay has stopped")]
pub struct RelayClosed;

/// Why a relay could not start.
#[derive(Debug, Error)]
pub enum RelayError {
    /// Called outside a tokio runtime.
    #[error("no tokio runtime to run the relay on")]
    NoRuntime,
    /// A socket could not be registered with the runtime's reactor (I/O not enabled on it).
    #[error("cannot register relay socket: {0}")]
    Socket(#[from] io::Error),
}

/// What a relay starts with.
#[derive(Clone, Copy, Debug)]
pub struct RelayConfig {
    /// The PBX leg's media, if known.
    pub a: Option<LegMedia>,
    /// The operator leg's media, if known (usually not until the operator answers).
    pub b: Option<LegMedia>,
    /// From the caller's random source: SSRCs and sequence numbers of tones.
    pub seed: u64,
}

/// The engine's end of a relay: cheap to clone, sends [`Control`] messages. The task stops when
/// every handle is dropped.
#[derive(Clone, Debug)]
pub struct RelayHandle {
    tx: mpsc::Sender<Control>,
}

impl RelayHandle {
    /// Sends a message, waiting for room in the channel.
    pub async fn send(&self, control: Control) -> Result<(), RelayClosed> {
        self.tx.send(control).await.map_err(|_| RelayClosed)
    }

    /// Sends a message if there is room now.
    pub fn try_send(&self, control: Control) -> Result<(), mpsc::error::TrySendError<Control>> {
        self.tx.try_send(control)
    }

    /// The statistics so far.
    pub async fn report(&self) -> Result<RelayReport, RelayClosed> {
        let (tx, rx) = oneshot::channel();
        self.send(Control::Report(tx)).await?;
        rx.await.map_err(|_| RelayClosed)
    }
}

struct LegIo {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    /// The remote each socket (RTP, RTCP) is connected to: its latched remote, if any.
    connected: [Option<SocketAddr>; 2],
    // after the sockets: the ports go back to the pool once both are closed
    _lease: PortLease,
}

impl LegIo {
    fn new(sockets: LegSockets) -> io::Result<Self> {
        let (rtp, rtcp, lease) = sockets.into_parts();
        Ok(LegIo {
            rtp: UdpSocket::from_std(rtp)?,
            rtcp: UdpSocket::from_std(rtcp)?,
            connected: [None; 2],
            _lease: lease,
        })
    }

    fn socket(&self, kind: SocketKind) -> &UdpSocket {
        match kind {
            SocketKind::Rtp => &self.rtp,
            SocketKind::Rtcp => &self.rtcp,
        }
    }

    fn connected(&self, kind: SocketKind) -> Option<SocketAddr> {
        self.connected[kind as usize]
    }

    /// Sends without blocking: `send` to the connected remote (no route lookup), `send_to`
    /// anywhere else.
    fn send(&self, kind: SocketKind, packet: &[u8], to: SocketAddr) -> io::Result<usize> {
        let socket = self.socket(kind);
        if self.connected(kind) == Some(to) {
            socket.try_send(packet)
        } else {
            socket.try_send_to(packet, to)
        }
    }

    /// Connects the socket to the core's latch for it, or disconnects it when the latch is
    /// re-armed (a re-INVITE), so that the kernel admits exactly the sources the latch does.
    /// A failed connect leaves the socket unconnected, which only costs speed; a failed
    /// disconnect is retried next time.
    fn follow_latch(&mut self, kind: SocketKind, latched: Option<SocketAddr>) {
        if self.connected(kind) == latched {
            return;
        }
        let socket = self.socket(kind);
        let done = match latched {
            Some(remote) => rustix::net::connect(socket, &remote),
            None => rustix::net::connect_unspec(socket),
        };
        if done.is_ok() {
            self.connected[kind as usize] = latched;
        }
    }
}

/// Brings every socket's connection in line with the core's latches.
fn follow_latches(core: &RelayCore, io: &mut [LegIo; 2]) {
    for leg in [Leg::A, Leg::B] {
        for kind in [SocketKind::Rtp, SocketKind::Rtcp] {
            io[leg.index()].follow_latch(kind, core.latched(leg, kind));
        }
    }
}

/// Starts the relay task of one call on the current tokio runtime, which must have I/O and time
/// enabled (`enable_all`). Returns its handle and the
/// task, which yields the final report after [`Control::Stop`] or when every handle is dropped.
pub fn spawn(
    config: RelayConfig,
    a: LegSockets,
    b: LegSockets,
) -> Result<(RelayHandle, JoinHandle<RelayReport>), RelayError> {
    // tokio's from_std and spawn panic outside a runtime; say so as an error instead
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| RelayError::NoRuntime)?;
    let io = [LegIo::new(a)?, LegIo::new(b)?];
    let core = RelayCore::new(config.a, config.b, config.seed);
    let (tx, rx) = mpsc::channel(CONTROL_CAPACITY);
    let task = runtime.spawn(run(core, io, rx));
    Ok((RelayHandle { tx }, task))
}

/// Everything the task owns besides the core.
struct Driver {
    io: [LegIo; 2],
    rx: mpsc::Receiver<Control>,
    ticker: Interval,
    buf: [u8; BUF_LEN],
}

async fn run(mut core: RelayCore, io: [LegIo; 2], rx: mpsc::Receiver<Control>) -> RelayReport {
    let mut ticker = tokio::time::interval(Duration::from_millis(u64::from(FRAME_MS)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut driver = Driver {
        io,
        rx,
        ticker,
        buf: [0u8; BUF_LEN],
    };
    std::future::poll_fn(|cx| driver.poll(cx, &mut core)).await;
    core.report()
}

impl Driver {
    /// One wake-up: applies every waiting control message, sends the tick's tone and DTMF
    /// packets, then drains every readable socket. Each source is polled until it is `Pending`,
    /// which registers the task's waker with it again. `Ready` when the relay is to end.
    fn poll(&mut self, cx: &mut Context<'_>, core: &mut RelayCore) -> Poll<()> {
        // control first: a Configure or Stop applies before the datagrams that follow it
        loop {
            match self.rx.poll_recv(cx) {
                Poll::Ready(None | Some(Control::Stop)) => return Poll::Ready(()),
                Poll::Ready(Some(control)) => {
                    let timer_was_needed = core.timer_needed();
                    apply(core, control);
                    follow_latches(core, &mut self.io);
                    if !timer_was_needed && core.timer_needed() {
                        self.ticker.reset_immediately();
                    }
                }
                Poll::Pending => break,
            }
        }
        while core.timer_needed() && self.ticker.poll_tick(cx).is_ready() {
            send_tones(core, &self.io, &mut self.buf);
        }
        let mut more = false;
        for leg in [Leg::A, Leg::B] {
            for kind in [SocketKind::Rtp, SocketKind::Rtcp] {
                loop {
                    match self.io[leg.index()].socket(kind).poll_recv_ready(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Pending => break,
                        // only when the runtime's reactor is going away: end the call then
                        Poll::Ready(Err(_)) => return Poll::Ready(()),
                    }
                    let emptied = drain(core, &self.io, leg, kind, &mut self.buf);
                    self.io[leg.index()].follow_latch(kind, core.latched(leg, kind));
                    if !emptied {
                        // a flood on this socket: let the others (and other calls) have a turn
                        more = true;
                        break;
                    }
                }
            }
        }
        if more {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

fn apply(core: &mut RelayCore, control: Control) {
    match control {
        Control::Bridge => core.bridge(),
        Control::Unbridge => core.unbridge(),
        Control::Hold(leg) => core.hold(leg),
        Control::Resume(leg) => core.resume(leg),
        Control::PlayTone(leg, spec) => core.play_tone(leg, spec),
        Control::StopTone(leg) => core.stop_tone(leg),
        Control::SendDtmf(leg, event, duration_ms) => {
            // a refusal is counted in the leg's report
            let _ = core.send_dtmf(leg, event, duration_ms);
        }
        Control::Configure(leg, media) => core.configure(leg, media),
        Control::ConfigureFixed(leg, media) => core.configure_fixed(leg, media),
        Control::Report(reply) => {
            // the asker may have given up; nothing to do then
            let _ = reply.send(core.report());
        }
        Control::Stop => {}
    }
}

fn send_tones(core: &mut RelayCore, io: &[LegIo; 2], buf: &mut [u8]) {
    for leg in [Leg::A, Leg::B] {
        if let Some((len, to)) = core.poll_tone(leg, buf) {
            let sent = io[leg.index()].send(SocketKind::Rtp, &buf[..len], to);
            if sent.is_err() {
                core.note_send_error(leg);
            }
        }
        if let Some((len, to)) = core.poll_dtmf(leg, buf) {
            let sent = io[leg.index()].send(SocketKind::Rtp, &buf[..len], to);
            if sent.is_err() {
                core.note_send_error(leg);
            }
        }
    }
}

/// Reads up to [`DRAIN_BUDGET`] datagrams from one socket and forwards what the core says;
/// `true` once the socket is empty (`WouldBlock`, which also clears its readiness).
fn drain(
    core: &mut RelayCore,
    io: &[LegIo; 2],
    leg: Leg,
    kind: SocketKind,
    buf: &mut [u8],
) -> bool {
    let socket = io[leg.index()].socket(kind);
    for _ in 0..DRAIN_BUDGET {
        let (len, from) = match socket.try_recv_from(buf) {
            Ok(received) => received,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            // ICMP errors surfaced on the socket (e.g. port unreachable): keep reading
            Err(_) => continue,
        };
        if len >= buf.len() {
            core.note_invalid(leg);
            continue;
        }
        let packet = &mut buf[..len];
        let verdict = match kind {
            SocketKind::Rtp if rtp::is_rtcp(packet) => core.on_rtcp(leg, from, packet, true),
            SocketKind::Rtp => core.on_rtp(leg, from, packet, Instant::now()),
            SocketKind::Rtcp => core.on_rtcp(leg, from, packet, false),
        };
        if let Verdict::Forward {
            leg: out,
            socket,
            to,
        } = verdict
            && io[out.index()].send(socket, packet, to).is_err()
        {
            core.note_send_error(out);
        }
    }
    false
}
