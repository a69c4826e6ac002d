//! The relay workers: OS threads that each own many calls' sockets and cores and move their
//! packets with plain non-blocking syscalls around one `epoll`, with no async runtime, waker or
//! task switch on the packet path. There is one worker for every two CPUs ([`worker_count`]);
//! each new call goes to the next worker in turn and stays there.
//!
//! ```text
//! loop {
//!     epoll_wait(its calls' sockets + its command eventfd, until the next 20 ms tick is due)
//!     the eventfd is ready  => apply every queued Command (Add, Control, Remove) first
//!     each readable socket  => one datagram: core.on_rtp / on_rtcp → send (level-triggered:
//!                              a socket with more queued is simply reported again)
//!     ticks that are due    => core.poll_tone / poll_dtmf(leg) → send, next tick 20 ms on
//! }
//! ```
//!
//! Sockets are registered for `EPOLLIN` only and level-triggered, so a datagram costs one
//! `recvfrom` and one `send` and nothing else: no read that ends in `EAGAIN`, and no writability
//! event for every packet sent (tokio registers sockets for both directions, edge-triggered).
//! The engine's side stays async: [`super::spawn`] registers the call's sockets with the worker
//! and starts a small tokio task per call that forwards its [`Control`] messages here as
//! [`Command`]s and, at the end, returns the report the worker sends back. That task wakes only
//! for control messages.
//!
//! Lifecycle: the worker threads are started by the first call and then live as long as the
//! process, asleep in `epoll_wait` when they have no calls. A call leaves it on `Stop`, when
//! every handle is dropped, or when its task is dropped (aborted, or its runtime shut down):
//! its sockets are closed then, which returns the ports to the pool. The worker never panics on
//! a datagram or a control message; a failed syscall drops and counts the packet, as before. A
//! panic inside one call's core (a bug) ends that call only ([`on_call`]).

use super::core::{RelayCore, RelayReport, SocketKind, Verdict};
use super::ports::{LegSockets, PortLease};
use super::{Control, Leg};
use crate::rtp;
use crate::tone::FRAME_MS;
use rustc_hash::FxHashMap;
use rustix::event::{EventfdFlags, Timespec, epoll};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::OwnedFd;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Receive buffer; a datagram that fills it is taken as truncated and dropped.
const BUF_LEN: usize = 2048;
/// Events taken from one `epoll_wait`.
const EVENTS: usize = 256;
/// The token of the command eventfd; calls' tokens are `id << 2 | leg << 1 | socket`.
const WAKE: u64 = u64::MAX;
/// The tone and DTMF clock.
const TICK: Duration = Duration::from_millis(FRAME_MS as u64);

/// What the engine's side asks of the worker about one call.
#[derive(Debug)]
pub(super) enum Command {
    /// Start relaying a call whose sockets are already registered under `id`.
    Add {
        id: u64,
        core: Box<RelayCore>,
        legs: Box<[LegIo; 2]>,
    },
    /// A control message for the call (never `Stop`: that is `Remove`).
    Control { id: u64, control: Control },
    /// End the call: close its sockets, then send its final report, if asked.
    Remove {
        id: u64,
        reply: Option<oneshot::Sender<RelayReport>>,
    },
}

/// The worker thread, as the engine's side sees it: where to register sockets and send
/// commands.
#[derive(Debug)]
pub(super) struct Worker {
    epoll: Arc<OwnedFd>,
    wake: Arc<OwnedFd>,
    commands: mpsc::Sender<Command>,
    next_id: AtomicU64,
}

/// The process's workers, started by the first call.
static WORKERS: Mutex<Vec<Arc<Worker>>> = Mutex::new(Vec::new());
/// Which worker the next call goes to (round robin).
static NEXT_WORKER: AtomicUsize = AtomicUsize::new(0);

/// How many workers to run: half the CPUs (the other half for signalling and the engine's
/// runtime), at least one. On 2 CPUs one worker relays 200 calls at ~9 µs per packet; two
/// would cut latency (p50 450 → 210 µs) but cost ~20 % more CPU per packet (fewer packets per
/// wake-up), so a worker is added only for every two CPUs.
fn worker_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

impl Worker {
    /// A running worker for a new call (round robin), starting the workers if there are none
    /// yet.
    pub(super) fn get() -> io::Result<Arc<Worker>> {
        // Nothing is left half-updated under the lock, so a panic elsewhere cannot poison it.
        let mut workers = WORKERS.lock().unwrap_or_else(|e| e.into_inner());
        if workers.is_empty() {
            for _ in 0..worker_count() {
                match Worker::start() {
                    Ok(worker) => workers.push(Arc::new(worker)),
                    // fewer workers than wished is still a relay
                    Err(_) if !workers.is_empty() => break,
                    Err(e) => return Err(e),
                }
            }
        }
        let next = NEXT_WORKER.fetch_add(1, Ordering::Relaxed) % workers.len();
        Ok(Arc::clone(&workers[next]))
    }

    fn start() -> io::Result<Worker> {
        let epoll = Arc::new(epoll::create(epoll::CreateFlags::CLOEXEC)?);
        let wake = Arc::new(rustix::event::eventfd(
            0,
            EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK,
        )?);
        epoll::add(
            &*epoll,
            &*wake,
            epoll::EventData::new_u64(WAKE),
            epoll::EventFlags::IN,
        )?;
        let (commands, rx) = mpsc::channel();
        let thread = Thread {
            epoll: Arc::clone(&epoll),
            wake: Arc::clone(&wake),
            commands: rx,
            calls: FxHashMap::default(),
            ticks: BinaryHeap::new(),
            buf: [0u8; BUF_LEN],
        };
        std::thread::Builder::new()
            .name("relay-worker".into())
            .spawn(move || thread.run())?;
        Ok(Worker {
            epoll,
            wake,
            commands,
            next_id: AtomicU64::new(0),
        })
    }

    /// Registers a call's sockets and hands it to the thread; returns its id. On an error the
    /// sockets are closed (which also unregisters them) and the ports go back to the pool.
    pub(super) fn add(&self, core: RelayCore, legs: [LegIo; 2]) -> io::Result<u64> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        for leg in [Leg::A, Leg::B] {
            for kind in [SocketKind::Rtp, SocketKind::Rtcp] {
                epoll::add(
                    &*self.epoll,
                    legs[leg.index()].socket(kind),
                    epoll::EventData::new_u64(token(id, leg, kind)),
                    epoll::EventFlags::IN,
                )?;
            }
        }
        self.send(Command::Add {
            id,
            core: Box::new(core),
            legs: Box::new(legs),
        })?;
        Ok(id)
    }

    /// Queues a command and wakes the thread.
    pub(super) fn send(&self, command: Command) -> io::Result<()> {
        self.commands
            .send(command)
            .map_err(|_| io::Error::other("the relay worker has stopped"))?;
        rustix::io::write(&*self.wake, &1u64.to_ne_bytes())?;
        Ok(())
    }
}

fn token(id: u64, leg: Leg, kind: SocketKind) -> u64 {
    id << 2 | (leg.index() as u64) << 1 | kind_index(kind) as u64
}

const fn kind_index(kind: SocketKind) -> usize {
    match kind {
        SocketKind::Rtp => 0,
        SocketKind::Rtcp => 1,
    }
}

/// The sockets of one leg.
#[derive(Debug)]
pub(super) struct LegIo {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    /// The remote each socket (RTP, RTCP) is connected to: its latched remote, if any.
    connected: [Option<SocketAddr>; 2],
    /// Whether the sockets may be connected: not when bound to a wildcard address, which
    /// `connect` would narrow to the route's source address, shutting out datagrams the remote
    /// sends to any other local address.
    connectable: bool,
    // after the sockets: the ports go back to the pool once both are closed
    _lease: PortLease,
}

impl LegIo {
    pub(super) fn new(sockets: LegSockets) -> Self {
        let (rtp, rtcp, lease) = sockets.into_parts();
        let connectable = rtp.local_addr().is_ok_and(|a| !a.ip().is_unspecified());
        LegIo {
            rtp,
            rtcp,
            connected: [None; 2],
            connectable,
            _lease: lease,
        }
    }

    fn socket(&self, kind: SocketKind) -> &UdpSocket {
        match kind {
            SocketKind::Rtp => &self.rtp,
            SocketKind::Rtcp => &self.rtcp,
        }
    }

    /// Sends without blocking (the sockets are non-blocking): `send` to the connected remote
    /// (no route lookup), `send_to` anywhere else.
    fn send(&self, kind: SocketKind, packet: &[u8], to: SocketAddr) -> io::Result<usize> {
        let socket = self.socket(kind);
        if self.connected[kind_index(kind)] == Some(to) {
            socket.send(packet)
        } else {
            socket.send_to(packet, to)
        }
    }

    /// Connects the socket to the core's latch for it, or disconnects it when the latch is
    /// re-armed (a re-INVITE), so that the kernel admits exactly the sources the latch does.
    /// A failed connect leaves the socket unconnected, which only costs speed; a failed
    /// disconnect is retried next time.
    fn follow_latch(&mut self, kind: SocketKind, latched: Option<SocketAddr>) {
        let i = kind_index(kind);
        if self.connected[i] == latched || !self.connectable {
            return;
        }
        let socket = self.socket(kind);
        let done = match latched {
            Some(remote) => socket.connect(remote),
            None => rustix::net::connect_unspec(socket).map_err(io::Error::from),
        };
        if done.is_ok() {
            self.connected[i] = latched;
        }
    }
}

/// One call on the worker.
#[derive(Debug)]
struct Call {
    core: Box<RelayCore>,
    io: Box<[LegIo; 2]>,
    /// When the next 20 ms tone/DTMF tick is due, while the core needs one.
    tick: Option<Instant>,
}

impl Call {
    fn follow_latches(&mut self) {
        for leg in [Leg::A, Leg::B] {
            for kind in [SocketKind::Rtp, SocketKind::Rtcp] {
                self.io[leg.index()].follow_latch(kind, self.core.latched(leg, kind));
            }
        }
    }

    /// Starts the tick at once when the core has just come to need it, stops it when it no
    /// longer does; `true` while it runs.
    fn arm_timer(&mut self, now: Instant) -> bool {
        match (self.tick, self.core.timer_needed()) {
            (None, true) => self.tick = Some(now),
            (Some(_), false) => self.tick = None,
            _ => {}
        }
        self.tick.is_some()
    }

    /// Reads one datagram from a socket the worker found readable and forwards what the core
    /// says.
    fn receive(&mut self, leg: Leg, kind: SocketKind, buf: &mut [u8]) {
        let io = &self.io[leg.index()];
        let (len, from) = match io.socket(kind).recv_from(buf) {
            Ok(received) => received,
            // nothing after all, or an ICMP error surfaced on the socket: nothing to relay
            Err(_) => return,
        };
        let core = &mut self.core;
        if len >= buf.len() {
            core.note_invalid(leg);
            return;
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
            && self.io[out.index()].send(socket, packet, to).is_err()
        {
            core.note_send_error(out);
        }
        let latched = core.latched(leg, kind);
        self.io[leg.index()].follow_latch(kind, latched);
    }

    /// One 20 ms tick: the legs' tone and DTMF packets.
    fn send_tones(&mut self, buf: &mut [u8]) {
        for leg in [Leg::A, Leg::B] {
            let io = &self.io[leg.index()];
            if let Some((len, to)) = self.core.poll_tone(leg, buf)
                && io.send(SocketKind::Rtp, &buf[..len], to).is_err()
            {
                self.core.note_send_error(leg);
            }
            if let Some((len, to)) = self.core.poll_dtmf(leg, buf)
                && io.send(SocketKind::Rtp, &buf[..len], to).is_err()
            {
                self.core.note_send_error(leg);
            }
        }
    }
}

/// The worker thread's state.
struct Thread {
    epoll: Arc<OwnedFd>,
    wake: Arc<OwnedFd>,
    commands: mpsc::Receiver<Command>,
    calls: FxHashMap<u64, Call>,
    /// The calls' next ticks, soonest first. An entry whose call has since stopped or moved
    /// its tick (`Call::tick` differs) is stale and skipped when it comes up.
    ticks: BinaryHeap<Reverse<(Instant, u64)>>,
    buf: [u8; BUF_LEN],
}

impl Thread {
    fn run(mut self) {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(EVENTS);
        loop {
            let timeout = self.next_tick().map(|due| {
                let left = due.saturating_duration_since(Instant::now());
                Timespec {
                    tv_sec: left.as_secs().try_into().unwrap_or(i64::MAX),
                    tv_nsec: left.subsec_nanos().into(),
                }
            });
            events.clear();
            match epoll::wait(
                &*self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                timeout.as_ref(),
            ) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                // cannot happen with a valid epoll and buffer; do not spin if it does
                Err(_) => {
                    std::thread::sleep(TICK);
                    continue;
                }
            }
            // commands first: a Configure or a Stop applies before the datagrams that follow it
            if events.iter().any(|e| {
                let data = e.data;
                data.u64() == WAKE
            }) {
                self.apply_commands();
            }
            for e in &events {
                let data = e.data;
                let token = data.u64();
                if token == WAKE {
                    continue;
                }
                let leg = if token & 2 == 0 { Leg::A } else { Leg::B };
                let kind = if token & 1 == 0 {
                    SocketKind::Rtp
                } else {
                    SocketKind::Rtcp
                };
                // (a call removed earlier in this round has nothing left to read)
                let buf = &mut self.buf;
                on_call(&mut self.calls, token >> 2, |call| {
                    call.receive(leg, kind, buf);
                });
            }
            if !self.ticks.is_empty() {
                self.run_ticks(Instant::now());
            }
        }
    }

    /// The soonest tick still wanted, dropping stale entries on the way.
    fn next_tick(&mut self) -> Option<Instant> {
        while let Some(&Reverse((due, id))) = self.ticks.peek() {
            if self.calls.get(&id).is_some_and(|c| c.tick == Some(due)) {
                return Some(due);
            }
            self.ticks.pop();
        }
        None
    }

    fn apply_commands(&mut self) {
        let mut counter = [0u8; 8];
        // resets the eventfd; it is non-blocking, and empty only if another round read it
        let _ = rustix::io::read(&*self.wake, &mut counter);
        let now = Instant::now();
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Add { id, core, legs } => {
                    let mut call = Call {
                        core,
                        io: legs,
                        tick: None,
                    };
                    call.follow_latches();
                    if call.arm_timer(now) {
                        self.ticks.push(Reverse((now, id)));
                    }
                    self.calls.insert(id, call);
                }
                Command::Control { id, control } => {
                    let started = on_call(&mut self.calls, id, |call| {
                        let was_timed = call.tick.is_some();
                        apply(&mut call.core, control);
                        call.follow_latches();
                        call.arm_timer(now) && !was_timed
                    });
                    if started == Some(true) {
                        self.ticks.push(Reverse((now, id)));
                    }
                }
                Command::Remove { id, reply } => {
                    if let Some(call) = self.calls.remove(&id) {
                        let report = call.core.report();
                        // closes the sockets, returning the ports, before the report is out
                        drop(call);
                        if let Some(reply) = reply {
                            // the task may be gone (aborted); nothing to do then
                            let _ = reply.send(report);
                        }
                    }
                }
            }
        }
    }

    /// Sends the tone and DTMF packets of every tick that is due.
    fn run_ticks(&mut self, now: Instant) {
        while let Some(&Reverse((due, id))) = self.ticks.peek() {
            if due > now {
                break;
            }
            self.ticks.pop();
            if self.calls.get(&id).is_none_or(|c| c.tick != Some(due)) {
                continue;
            }
            // a late tick delays the next rather than bursting (tokio's MissedTickBehavior::Delay)
            let next = due + TICK;
            let next = if next > now { next } else { now + TICK };
            let buf = &mut self.buf;
            let again = on_call(&mut self.calls, id, |call| {
                call.send_tones(buf);
                call.tick = Some(next);
                call.arm_timer(now)
            });
            if again == Some(true) {
                self.ticks.push(Reverse((next, id)));
            }
        }
    }
}

/// Runs `f` on call `id`, if the worker has it. The core is written not to panic on any input;
/// should it panic all the same (a bug), that call alone ends, as a panicking task of its own
/// did: it is dropped, closing its sockets, and its task, getting no report, ends in a panic.
fn on_call<R>(
    calls: &mut FxHashMap<u64, Call>,
    id: u64,
    f: impl FnOnce(&mut Call) -> R,
) -> Option<R> {
    let call = calls.get_mut(&id)?;
    match std::panic::catch_unwind(AssertUnwindSafe(|| f(call))) {
        Ok(result) => Some(result),
        Err(_) => {
            calls.remove(&id);
            None
        }
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
        // `Stop` travels as `Command::Remove`
        Control::Stop => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::PortAllocator;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn a_panic_in_one_call_ends_that_call_only() {
        // 23400-23407: apart from the port allocator's unit tests (23000-23399)
        let ports =
            PortAllocator::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 23400..=23407).expect("port range");
        let mut calls = FxHashMap::default();
        for id in [1, 2] {
            let legs = [
                LegIo::new(ports.allocate().expect("pair")),
                LegIo::new(ports.allocate().expect("pair")),
            ];
            let call = Call {
                core: Box::new(RelayCore::new(None, None, id)),
                io: Box::new(legs),
                tick: None,
            };
            calls.insert(id, call);
        }
        assert_eq!(ports.available(), 0);
        let panicked: Option<()> = on_call(&mut calls, 1, |_| panic!("a bug in the core"));
        assert_eq!(panicked, None);
        assert!(!calls.contains_key(&1));
        // its sockets are closed and its ports back in the pool; the other call goes on
        assert_eq!(ports.available(), 2);
        assert_eq!(on_call(&mut calls, 2, |c| c.core.is_bridged()), Some(false));
        assert_eq!(on_call(&mut calls, 3, |_| ()), None);
    }
}
