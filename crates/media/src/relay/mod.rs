//! The RTP relay of one call: two legs, each a pair of UDP sockets, joined by a [`RelayCore`].
//!
//! [`spawn`] takes the legs' sockets (from a [`PortAllocator`]) and their media as far as known,
//! and splits the call in two:
//!
//! ```text
//! engine ──Control──▶ the call's tokio task ──Command──▶ a relay worker thread (many calls)
//!                     forwards control messages;          epoll on its calls' sockets:
//!                     on Stop (or every handle gone)       datagram → core.on_rtp / on_rtcp
//!                     asks for the final report and        → send; 20 ms ticks → tones, DTMF;
//!                     returns it                           commands → apply to the core
//! ```
//!
//! The packets never touch the async runtime: a worker thread (module `worker`, one for every
//! two CPUs, calls dealt to them in turn) owns its calls' cores and sockets and moves each
//! datagram with one `recvfrom` and one `send`, woken by a level-triggered `epoll` registered
//! for reading only (that module explains the loop and why). The call's tokio task wakes only
//! for control messages; the engine talks to the relay only through the bounded [`Control`]
//! channel and shares no lock or state with it.
//!
//! The packet path reads one clock (`Instant::now()` per datagram, for jitter), uses one fixed
//! 2 KiB buffer (the worker's), and sends without waiting (a full socket buffer drops and counts
//! rather than stalling the call). Symmetric RTP: each leg's remote is latched from the first
//! packet received on it, with the SDP address as the guess until then.
//!
//! Once a socket's latch is locked ([`RelayCore::latched`]) the worker `connect`s the socket to
//! that remote: sends to it are then plain `send`s, which skip the kernel's per-packet route
//! lookup, and the kernel itself discards datagrams from anyone else. When a re-INVITE
//! ([`Control::Configure`]) re-arms the latch, the socket is disconnected again, so a packet from
//! anywhere can latch it, as before the first one. Sockets bound to a wildcard address
//! (`0.0.0.0`, `::`) are never connected: that would also narrow their local address.

mod core;
mod dtmf_out;
mod ports;
mod worker;

pub use self::core::{LegCounters, LegReport, RelayCore, RelayReport, SocketKind, Verdict};
pub use ports::{LegSockets, PortAllocator, PortError, PortLease};

use crate::codec::Payloads;
use crate::dtmf::DtmfEvent;
use crate::sdp::Negotiated;
use crate::tone::ToneSpec;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use worker::{Command, LegIo, Worker};

/// Capacity of a relay's control channel.
pub const CONTROL_CAPACITY: usize = 16;

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
    /// A socket could not be registered with the relay worker, or the worker could not start
    /// (the process is out of file descriptors or threads).
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

/// Starts the relay of one call: hands the legs' sockets to a relay worker thread
/// and starts the call's control task on the current tokio runtime. Returns its handle and the
/// task, which yields the final report after [`Control::Stop`] or when every handle is dropped.
pub fn spawn(
    config: RelayConfig,
    a: LegSockets,
    b: LegSockets,
) -> Result<(RelayHandle, JoinHandle<RelayReport>), RelayError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| RelayError::NoRuntime)?;
    let worker = Worker::get()?;
    let core = RelayCore::new(config.a, config.b, config.seed);
    let id = worker.add(core, [LegIo::new(a), LegIo::new(b)])?;
    // from here the call leaves the worker when `Registered` is dropped, on every path
    let call = Registered {
        worker,
        id,
        removed: false,
    };
    let (tx, rx) = mpsc::channel(CONTROL_CAPACITY);
    let task = runtime.spawn(forward(call, rx));
    Ok((RelayHandle { tx }, task))
}

/// A call on the worker; dropping it before [`Registered::finish`] removes the call (closing its
/// sockets).
#[derive(Debug)]
struct Registered {
    worker: Arc<Worker>,
    id: u64,
    removed: bool,
}

impl Registered {
    /// Removes the call and returns its final report.
    async fn finish(mut self) -> RelayReport {
        let (tx, rx) = oneshot::channel();
        let sent = self.worker.send(Command::Remove {
            id: self.id,
            reply: Some(tx),
        });
        self.removed = true;
        // The worker runs as long as the process and answers the Remove of every call it has;
        // it drops a call unasked only if the call's core panicked, which then ends this task
        // in a panic too, as the call's own task did before.
        sent.expect("the relay worker is running");
        rx.await
            .expect("the relay worker has the call (its core did not panic)")
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if !self.removed {
            // the task was dropped before the end (aborted, or its runtime shut down)
            let _ = self.worker.send(Command::Remove {
                id: self.id,
                reply: None,
            });
        }
    }
}

/// The call's task: forwards control messages to the worker until `Stop` or until every handle
/// is gone, then returns the final report. It wakes only for control messages.
async fn forward(call: Registered, mut rx: mpsc::Receiver<Control>) -> RelayReport {
    while let Some(control) = rx.recv().await {
        if matches!(control, Control::Stop) {
            break;
        }
        let id = call.id;
        if call.worker.send(Command::Control { id, control }).is_err() {
            break;
        }
    }
    call.finish().await
}
