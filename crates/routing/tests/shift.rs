//! A deterministic discrete-event simulation of a call-centre shift on virtual time.
//!
//! Thousands of operators in ~20 queues (each operator in 2–5 queues with penalties 0–2 and
//! 3–5 skills), every strategy, Poisson arrivals at ~90 % of capacity, exponential talk times,
//! missed and declined offers, callers abandoning after an exponential patience, breaks,
//! connection losses, transfers, wrap-up, overflow to queues and outside, relaxation of skills,
//! and operators' own calls out (from any state they may dial in, ringing included).
//!
//! The simulation keeps its own agenda of future events and merges it with
//! `Router::poll_timeout()`. It checks the router's invariants every `check_every` events and at
//! the end, checks the command stream (agent state chain, one offer or call per operator, one
//! operator per call) as it goes, and after draining the shift asserts that every visit of
//! every call ended in exactly one `Outcome` and that the queue figures match the commands.
//!
//! `cargo test -p homeline-routing --test shift -- --nocapture` prints the figures;
//! the large variant is `#[ignore]`d: run it with `--release -- --ignored --nocapture`.

// Guards written as `if` inside match arms read better here than match guards.
#![allow(clippy::collapsible_match)]

use homeline_routing::{
    AgentConfig, AgentId, AgentState, CallId, Command, Entropy, Event, MembershipConfig,
    NotReadyReason, Outcome, OverflowConfig, OverflowTarget, QueueConfig, QueueId, RelaxStep,
    Router, RouterConfig, SkillReq, SkillRequirementConfig, SplitMix64, Strategy, Time, WhenEmpty,
};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SKILLS: usize = 8;
const MEAN_TALK: f64 = 180.0;
const MEAN_PATIENCE: f64 = 240.0;
const MEAN_ACCEPT_DELAY: f64 = 3.0;
const P_MISS: f64 = 0.02;
const P_DECLINE: f64 = 0.02;
const P_TRANSFER: f64 = 0.01;
const P_EXPLICIT_SKILL: f64 = 0.10;
const P_EARLY_WRAP_UP_DONE: f64 = 0.2;
const MEAN_BREAK_INTERVAL: f64 = 3600.0;
const MEAN_BREAK: f64 = 300.0;
const CONNECTION_LOSSES_PER_HOUR: f64 = 20.0;
/// Own calls out per operator and hour, and their mean length.
const OWN_CALLS_PER_HOUR: f64 = 1.0;
const MEAN_OWN_CALL: f64 = 120.0;
const SERVICE_LEVEL: Duration = Duration::from_secs(20);
/// Operators of the small last queue; they log out at `NIGHT_LINE_LEAVES` of the shift.
const NIGHT_LINE_STAFF: usize = 4;
const NIGHT_LINE_LEAVES: f64 = 0.75;

#[derive(Debug, Clone, Copy)]
struct ShiftParams {
    agents: usize,
    queues: usize,
    hours: f64,
    /// Offered load as a fraction of the operators' capacity.
    load: f64,
    seed: u64,
    /// `check_invariants` (and the figures against the commands) every this many events.
    check_every: u64,
}

// ------------------------------------------------------------------------------------------
// Randomness (our own stream, separate from the router's)
// ------------------------------------------------------------------------------------------

struct Rng(SplitMix64);

impl Rng {
    fn unit(&mut self) -> f64 {
        // 53 random bits in [0, 1).
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    fn below(&mut self, n: usize) -> usize {
        self.0.below(n as u64) as usize
    }
    fn range(&mut self, lo: usize, hi_inclusive: usize) -> usize {
        lo + self.below(hi_inclusive - lo + 1)
    }
    /// Exponential with the given mean, in seconds.
    fn exp(&mut self, mean: f64) -> Duration {
        let u = 1.0 - self.unit(); // (0, 1]
        Duration::from_secs_f64(-u.ln() * mean)
    }
}

// ------------------------------------------------------------------------------------------
// Configuration
// ------------------------------------------------------------------------------------------

fn qname(i: usize) -> String {
    format!("q{i:02}")
}

fn skill_name(s: usize) -> String {
    format!("skill{s}")
}

/// Queue `i`: strategies cycle through all eight; every fourth overflows to the next queue
/// after 30 s, the next ones overflow outside after 45 s; a third require a skill (relaxed
/// after 20 s and 45 s); some reject when empty; max misses 0, 1 or 2.
fn queue_config(i: usize, nq: usize) -> QueueConfig {
    let mut q = QueueConfig::new(qname(i));
    q.strategy = Strategy::ALL[i % Strategy::ALL.len()];
    q.ring_timeout = Duration::from_secs(15 + 5 * (i % 3) as u64);
    q.wrap_up = Duration::from_secs(5 + 5 * (i % 4) as u64);
    match i % 4 {
        0 => {
            q.max_wait = Some(Duration::from_secs(30));
            q.overflow = Some(OverflowConfig::Queue(qname((i + 1) % nq)));
        }
        1 => {
            q.max_wait = Some(Duration::from_secs(45));
            q.overflow = Some(OverflowConfig::External("voicemail".into()));
        }
        _ => {}
    }
    if i % 10 == 9 || i == nq - 1 {
        q.when_empty = WhenEmpty::Reject;
    }
    q.max_misses = match i % 5 {
        4 => 0,
        n => 1 + (n as u32 % 2),
    };
    q.service_level = SERVICE_LEVEL;
    match i % 3 {
        0 => {
            q.required_skills = vec![SkillRequirementConfig {
                skill: skill_name(i % SKILLS),
                min: 2,
            }];
            q.relax = vec![
                RelaxStep {
                    after: Duration::from_secs(20),
                    min_proficiency: 1,
                },
                RelaxStep {
                    after: Duration::from_secs(45),
                    min_proficiency: 0,
                },
            ];
        }
        1 => {
            // Calls arriving with their own requirements are relaxed to anyone after 30 s.
            q.relax = vec![RelaxStep {
                after: Duration::from_secs(30),
                min_proficiency: 0,
            }];
        }
        _ => {}
    }
    q
}

fn build_config(p: &ShiftParams, rng: &mut Rng) -> RouterConfig {
    let queues: Vec<QueueConfig> = (0..p.queues).map(|i| queue_config(i, p.queues)).collect();
    let mut agents = Vec::with_capacity(p.agents);
    // The last queue is a small line staffed by the first `NIGHT_LINE_STAFF` operators only,
    // who leave early: afterwards its calls are rejected (when empty: reject).
    let main = p.queues - 1;
    for a in 0..p.agents {
        let k = rng.range(2, 5.min(main));
        let mut qs: Vec<usize> = Vec::new();
        if a < NIGHT_LINE_STAFF {
            qs.push(main);
        }
        while qs.len() < k {
            let q = rng.below(main);
            if !qs.contains(&q) {
                qs.push(q);
            }
        }
        let memberships = qs
            .iter()
            .enumerate()
            .map(|(j, &q)| MembershipConfig {
                queue: qname(q),
                // The first queue is the operator's main one.
                penalty: if j == 0 { 0 } else { rng.range(0, 2) as u8 },
            })
            .collect();
        let n = rng.range(3, 5);
        let mut skills: Vec<(String, u8)> = Vec::new();
        while skills.len() < n {
            let s = skill_name(rng.below(SKILLS));
            if !skills.iter().any(|(x, _)| *x == s) {
                skills.push((s, rng.range(1, 5) as u8));
            }
        }
        agents.push(AgentConfig {
            name: format!("op{a:05}"),
            queues: memberships,
            skills,
        });
    }
    RouterConfig { queues, agents }
}

// ------------------------------------------------------------------------------------------
// The simulation
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum SimEv {
    /// The next Poisson arrival.
    Arrival,
    /// The caller's patience runs out during visit `visit` (only if not answered by then).
    Patience {
        call: CallId,
        visit: u32,
    },
    Accept {
        call: CallId,
        agent: AgentId,
        offer: u64,
    },
    Decline {
        call: CallId,
        agent: AgentId,
        offer: u64,
    },
    /// End of conversation `conn` (either side hangs up).
    End {
        call: CallId,
        conn: u64,
    },
    /// The operator moves the caller to another queue during conversation `conn`.
    Transfer {
        call: CallId,
        conn: u64,
    },
    WrapUpDone {
        agent: AgentId,
        seq: u64,
    },
    BreakStart {
        agent: AgentId,
    },
    /// Back from a Not Ready state entered at state change `seq`.
    Ready {
        agent: AgentId,
        seq: u64,
    },
    ConnectionLost {
        agent: AgentId,
    },
    Login {
        agent: AgentId,
    },
    Logout {
        agent: AgentId,
    },
    /// The operator dials out, if their state allows.
    Dial {
        agent: AgentId,
    },
    /// The operator's own call `call` ends.
    OwnEnd {
        call: CallId,
    },
}

#[derive(Debug, Default, Clone)]
struct AgentS {
    state: Option<AgentState>,
    /// Number of state changes so far (to recognise stale scheduled events).
    seq: u64,
    offer: Option<(CallId, u64)>,
    call: Option<CallId>,
    /// Their own call out.
    own: Option<CallId>,
}

#[derive(Debug, Clone)]
struct CallS {
    queue: QueueId,
    visits: u32,
    outcomes: u32,
    open: bool,
    /// Conversation number while connected.
    conn: Option<u64>,
    /// Operators ringing.
    ringing: u32,
    /// Start of the current visit, and the wait until answer once connected.
    start: Time,
    wait: Option<Duration>,
}

#[derive(Debug, Default, Clone, Copy)]
struct QCount {
    offered: u64,
    answered: u64,
    answered_in_sl: u64,
    abandoned: u64,
    overflowed: u64,
    rejected: u64,
}

#[derive(Debug, Default)]
struct Totals {
    calls: u64,
    offers: u64,
    missed: u64,
    declined: u64,
    ring_timeouts: u64,
    transfers: u64,
    overflow_queue: u64,
    overflow_external: u64,
    overflow_none: u64,
    rejected: u64,
    breaks: u64,
    connection_losses: u64,
    no_answer: u64,
    own_calls: u64,
    /// Own calls dialled while a queue call rang there (withdrawn, offered on).
    own_calls_while_ringing: u64,
    answered_wait_sum: Duration,
    answered_wait_max: Duration,
}

struct Sim {
    p: ShiftParams,
    router: Router<SplitMix64>,
    rng: Rng,
    now: Time,
    shift_end: Time,
    agenda: BinaryHeap<Reverse<(Time, u64, usize)>>,
    agenda_evs: Vec<Option<SimEv>>,
    agenda_free: Vec<usize>,
    agenda_seq: u64,
    agents: Vec<AgentS>,
    calls: HashMap<CallId, CallS>,
    live_calls: usize,
    queue_ids: Vec<QueueId>,
    queue_weights: Vec<f64>,
    explicit_ok: Vec<bool>,
    counts: Vec<QCount>,
    /// Connected calls we are transferring, and where to.
    transfer_to: HashMap<CallId, QueueId>,
    next_call: u64,
    next_offer: u64,
    next_conn: u64,
    arrival_rate: f64,
    events: u64,
    checks: u64,
    totals: Totals,
    last_call_end: Time,
}

impl Sim {
    fn new(p: ShiftParams) -> Sim {
        let mut rng = Rng(SplitMix64::new(p.seed));
        let config = build_config(&p, &mut rng);
        let router =
            Router::new(&config, SplitMix64::new(p.seed ^ 0xA5A5_5A5A)).expect("valid config");
        let queue_ids: Vec<QueueId> = (0..p.queues)
            .map(|i| router.queue_id(&qname(i)).expect("queue"))
            .collect();
        // Each operator splits its capacity evenly among its queues; arrivals follow.
        let mut queue_weights = vec![0.0; p.queues];
        for a in &config.agents {
            for m in &a.queues {
                let i = config
                    .queues
                    .iter()
                    .position(|q| q.name == m.queue)
                    .expect("queue");
                queue_weights[i] += 1.0 / a.queues.len() as f64;
            }
        }
        let mean_wrap: f64 = config
            .queues
            .iter()
            .map(|q| q.wrap_up.as_secs_f64())
            .sum::<f64>()
            / p.queues as f64;
        let handle = MEAN_TALK + mean_wrap + 1.0 + MEAN_ACCEPT_DELAY;
        let on_break = MEAN_BREAK / (MEAN_BREAK_INTERVAL + MEAN_BREAK);
        let on_own_calls = OWN_CALLS_PER_HOUR * MEAN_OWN_CALL / 3600.0;
        let capacity = p.agents as f64 * (1.0 - on_break - on_own_calls) / handle; // calls per second
        let explicit_ok = (0..p.queues)
            .map(|i| !config.queues[i].relax.is_empty())
            .collect();
        let shift_end = Time::ZERO + Duration::from_secs_f64(p.hours * 3600.0);
        let n = p.agents;
        let mut sim = Sim {
            p,
            router,
            rng,
            now: Time::ZERO,
            shift_end,
            agenda: BinaryHeap::new(),
            agenda_evs: Vec::new(),
            agenda_free: Vec::new(),
            agenda_seq: 0,
            agents: vec![AgentS::default(); n],
            calls: HashMap::new(),
            live_calls: 0,
            queue_ids,
            queue_weights,
            explicit_ok,
            counts: vec![QCount::default(); p.queues],
            transfer_to: HashMap::new(),
            next_call: 1,
            next_offer: 1,
            next_conn: 1,
            arrival_rate: p.load * capacity,
            events: 0,
            checks: 0,
            totals: Totals::default(),
            last_call_end: Time::ZERO,
        };
        for a in 0..n {
            let agent = AgentId(a as u32);
            sim.agents[a].state = Some(AgentState::LoggedOut);
            // Staggered logins over the first minute.
            let at = Time::ZERO + Duration::from_millis(sim.rng.below(60_000) as u64);
            sim.schedule(at, SimEv::Login { agent });
            let at = Time::ZERO + sim.rng.exp(MEAN_BREAK_INTERVAL);
            sim.schedule(at, SimEv::BreakStart { agent });
            let at = Time::ZERO + sim.rng.exp(3600.0 / OWN_CALLS_PER_HOUR);
            sim.schedule(at, SimEv::Dial { agent });
        }
        for a in 0..NIGHT_LINE_STAFF.min(n) {
            let at = Time::ZERO + Duration::from_secs_f64(NIGHT_LINE_LEAVES * p.hours * 3600.0);
            sim.schedule(
                at,
                SimEv::Logout {
                    agent: AgentId(a as u32),
                },
            );
        }
        let losses = (CONNECTION_LOSSES_PER_HOUR * p.hours).round() as usize;
        for _ in 0..losses {
            let agent = AgentId(sim.rng.below(n) as u32);
            let at = Time::ZERO + Duration::from_secs_f64(sim.rng.unit() * p.hours * 3600.0);
            sim.schedule(at, SimEv::ConnectionLost { agent });
        }
        sim.schedule(Time::ZERO, SimEv::Arrival);
        sim
    }

    fn schedule(&mut self, at: Time, ev: SimEv) {
        let slot = match self.agenda_free.pop() {
            Some(i) => {
                self.agenda_evs[i] = Some(ev);
                i
            }
            None => {
                self.agenda_evs.push(Some(ev));
                self.agenda_evs.len() - 1
            }
        };
        self.agenda_seq += 1;
        self.agenda.push(Reverse((at, self.agenda_seq, slot)));
    }

    fn agent(&mut self, a: AgentId) -> &mut AgentS {
        &mut self.agents[a.0 as usize]
    }

    fn qidx(&self, q: QueueId) -> usize {
        self.queue_ids
            .iter()
            .position(|&x| x == q)
            .expect("known queue")
    }

    /// Sends an event the simulation knows to be valid.
    fn send(&mut self, ev: Event) {
        if let Err(e) = self.router.handle(self.now, ev.clone()) {
            panic!("at {:?}: {ev:?} rejected: {e:?}", self.now);
        }
        self.process();
    }

    fn run(&mut self) {
        loop {
            let next_ev = self.agenda.peek().map(|Reverse((t, _, _))| *t);
            let next_timer = self.router.poll_timeout();
            match (next_ev, next_timer) {
                (None, None) => break,
                (ev, Some(t)) if ev.is_none_or(|e| t <= e) => {
                    self.now = self.now.max(t);
                    self.router.handle_timeout(self.now);
                    self.process();
                }
                _ => {
                    let Some(Reverse((t, _, slot))) = self.agenda.pop() else {
                        unreachable!()
                    };
                    let ev = self.agenda_evs[slot].take().expect("scheduled");
                    self.agenda_free.push(slot);
                    self.now = self.now.max(t);
                    self.sim_event(ev);
                }
            }
            self.events += 1;
            if self.events.is_multiple_of(self.p.check_every) {
                self.check();
            }
        }
    }

    fn sim_event(&mut self, ev: SimEv) {
        match ev {
            SimEv::Arrival => {
                if self.now >= self.shift_end {
                    return;
                }
                let gap = self.rng.exp(1.0 / self.arrival_rate);
                self.schedule(self.now + gap, SimEv::Arrival);
                let total: f64 = self.queue_weights.iter().sum();
                let mut x = self.rng.unit() * total;
                let mut qi = 0;
                while qi + 1 < self.queue_weights.len() && x >= self.queue_weights[qi] {
                    x -= self.queue_weights[qi];
                    qi += 1;
                }
                let skills =
                    (self.explicit_ok[qi] && self.rng.chance(P_EXPLICIT_SKILL)).then(|| {
                        let s = self
                            .router
                            .skill_id(&skill_name(self.rng.below(SKILLS)))
                            .expect("skill");
                        vec![SkillReq { skill: s, min: 2 }]
                    });
                let priority = u8::from(self.rng.chance(0.1));
                let call = CallId(self.next_call);
                self.next_call += 1;
                let queue = self.queue_ids[qi];
                self.totals.calls += 1;
                self.calls.insert(
                    call,
                    CallS {
                        queue,
                        visits: 0,
                        outcomes: 0,
                        open: false,
                        conn: None,
                        ringing: 0,
                        start: self.now,
                        wait: None,
                    },
                );
                self.open_visit(call, queue);
                self.send(Event::CallArrived {
                    call,
                    queue,
                    priority,
                    skills,
                });
            }
            SimEv::Patience { call, visit } => {
                let Some(c) = self.calls.get(&call) else {
                    return;
                };
                if c.open && c.visits == visit && c.conn.is_none() {
                    self.send(Event::CallerHungUp { call });
                }
            }
            SimEv::Accept { call, agent, offer } | SimEv::Decline { call, agent, offer } => {
                if self.agent(agent).offer != Some((call, offer)) {
                    return; // withdrawn meanwhile (answered elsewhere, hung up, ...)
                }
                if matches!(ev, SimEv::Accept { .. }) {
                    self.send(Event::OfferAccepted { call, agent });
                } else {
                    self.totals.declined += 1;
                    self.send(Event::OfferDeclined { call, agent });
                }
            }
            SimEv::End { call, conn } => {
                if self.calls.get(&call).is_some_and(|c| c.conn == Some(conn)) {
                    if self.rng.chance(0.5) {
                        self.send(Event::CallEnded { call });
                    } else {
                        self.send(Event::CallerHungUp { call });
                    }
                }
            }
            SimEv::Transfer { call, conn } => {
                let Some(c) = self.calls.get(&call) else {
                    return;
                };
                if c.conn != Some(conn) {
                    return;
                }
                let from = self.qidx(c.queue);
                let to = (from + 1 + self.rng.below(self.p.queues - 1)) % self.p.queues;
                let queue = self.queue_ids[to];
                self.totals.transfers += 1;
                self.transfer_to.insert(call, queue);
                self.send(Event::Transfer {
                    call,
                    queue,
                    priority: Some(1),
                });
                assert!(
                    self.transfer_to.is_empty(),
                    "transfer of {call:?} produced no Answered outcome"
                );
            }
            SimEv::WrapUpDone { agent, seq } => {
                if self.agent(agent).seq == seq {
                    self.send(Event::WrapUpDone { agent });
                }
            }
            SimEv::BreakStart { agent } => {
                if self.now >= self.shift_end {
                    return;
                }
                match self.agent(agent).state {
                    Some(AgentState::LoggedOut) | None => {}
                    Some(AgentState::NotReady { .. }) => {
                        // Already away: try again later.
                        let at = self.now + self.rng.exp(MEAN_BREAK_INTERVAL);
                        self.schedule(at, SimEv::BreakStart { agent });
                    }
                    Some(_) => {
                        self.totals.breaks += 1;
                        let reason = NotReadyReason::User(Arc::from("break"));
                        self.send(Event::NotReady { agent, reason });
                    }
                }
            }
            SimEv::Ready { agent, seq } => {
                let a = self.agent(agent);
                if a.seq == seq && matches!(a.state, Some(AgentState::NotReady { .. })) {
                    self.send(Event::Ready { agent });
                }
            }
            SimEv::ConnectionLost { agent } => {
                self.totals.connection_losses += 1;
                self.send(Event::ConnectionLost { agent });
            }
            SimEv::Dial { agent } => {
                if self.now >= self.shift_end {
                    return;
                }
                let at = self.now + self.rng.exp(3600.0 / OWN_CALLS_PER_HOUR);
                self.schedule(at, SimEv::Dial { agent });
                let ringing = match self.agent(agent).state {
                    Some(AgentState::Offered { .. }) => true,
                    Some(
                        AgentState::Available
                        | AgentState::NotReady { .. }
                        | AgentState::WrapUp { .. },
                    ) => false,
                    _ => return, // logged out or on a call: no dialling
                };
                let call = CallId(self.next_call);
                self.next_call += 1;
                self.totals.own_calls += 1;
                self.totals.own_calls_while_ringing += u64::from(ringing);
                self.send(Event::OutboundStarted { agent, call });
                let at = self.now + self.rng.exp(MEAN_OWN_CALL);
                self.schedule(at, SimEv::OwnEnd { call });
            }
            SimEv::OwnEnd { call } => self.send(Event::OutboundEnded { call }),
            SimEv::Login { agent } => self.send(Event::Login { agent, ready: true }),
            SimEv::Logout { agent } => {
                // Breaks and connection losses may still hit an operator who logs out during
                // a call; the pending logout must win (`logout_during_call_survives_not_ready`
                // in tests/model/regressions.rs), else the night line never empties and
                // rejects nothing.
                self.send(Event::Logout { agent });
            }
        }
    }

    fn open_visit(&mut self, call: CallId, queue: QueueId) {
        let qi = self.qidx(queue);
        self.counts[qi].offered += 1;
        let c = self.calls.get_mut(&call).expect("known call");
        assert!(!c.open, "{call:?} opens a visit while one is open");
        c.open = true;
        c.queue = queue;
        c.visits += 1;
        c.ringing = 0;
        c.start = self.now;
        c.wait = None;
        let visit = c.visits;
        self.live_calls += 1;
        let at = self.now + self.rng.exp(MEAN_PATIENCE);
        self.schedule(at, SimEv::Patience { call, visit });
    }

    fn process(&mut self) {
        while let Some(cmd) = self.router.poll_command() {
            self.command(cmd);
        }
    }

    fn command(&mut self, cmd: Command) {
        let now = self.now;
        match cmd {
            Command::Offer {
                call,
                agent,
                deadline,
            } => {
                self.totals.offers += 1;
                let offer = self.next_offer;
                self.next_offer += 1;
                let a = self.agent(agent);
                assert!(
                    a.offer.is_none() && a.call.is_none(),
                    "{agent:?} offered {call:?} while holding {:?}/{:?}",
                    a.offer,
                    a.call
                );
                a.offer = Some((call, offer));
                let c = self.calls.get_mut(&call).expect("offered call is known");
                assert!(
                    c.open && c.conn.is_none(),
                    "offer of {call:?} in state {c:?}"
                );
                c.ringing += 1;
                let ring = deadline.saturating_since(now);
                let x = self.rng.unit();
                if x < P_MISS {
                    self.totals.missed += 1; // let the ring timeout fire
                } else if x < P_MISS + P_DECLINE {
                    let at = now + Duration::from_millis(500 + self.rng.below(3000) as u64);
                    self.schedule(at, SimEv::Decline { call, agent, offer });
                } else {
                    let delay = (Duration::from_millis(500) + self.rng.exp(MEAN_ACCEPT_DELAY))
                        .min(ring.saturating_sub(Duration::from_millis(500)));
                    self.schedule(now + delay, SimEv::Accept { call, agent, offer });
                }
            }
            Command::Withdraw {
                call,
                agent,
                reason,
            } => {
                let a = self.agent(agent);
                assert_eq!(
                    a.offer.map(|o| o.0),
                    Some(call),
                    "withdraw of {call:?} from {agent:?}"
                );
                a.offer = None;
                if reason == homeline_routing::WithdrawReason::RingTimeout {
                    self.totals.ring_timeouts += 1;
                }
                if let Some(c) = self.calls.get_mut(&call) {
                    c.ringing = c.ringing.saturating_sub(1);
                }
            }
            Command::Connected { call, agent } => {
                let a = self.agent(agent);
                assert_eq!(
                    a.offer.map(|o| o.0),
                    Some(call),
                    "{call:?} connected to {agent:?} which rings {:?}",
                    a.offer
                );
                assert!(a.call.is_none());
                a.offer = None;
                a.call = Some(call);
                let conn = self.next_conn;
                self.next_conn += 1;
                let c = self.calls.get_mut(&call).expect("known");
                assert!(c.open && c.conn.is_none(), "{call:?} connected twice");
                c.conn = Some(conn);
                c.ringing = c.ringing.saturating_sub(1);
                let wait = now.saturating_since(c.start);
                c.wait = Some(wait);
                let queue = c.queue;
                let qi = self.qidx(queue);
                self.counts[qi].answered += 1;
                if wait <= SERVICE_LEVEL {
                    self.counts[qi].answered_in_sl += 1;
                }
                if self.rng.chance(P_TRANSFER) {
                    let at = now + self.rng.exp(MEAN_TALK / 3.0);
                    self.schedule(at, SimEv::Transfer { call, conn });
                } else {
                    let at = now + self.rng.exp(MEAN_TALK);
                    self.schedule(at, SimEv::End { call, conn });
                }
            }
            Command::Overflow { target, .. } => match target {
                OverflowTarget::Queue(_) => self.totals.overflow_queue += 1,
                OverflowTarget::External(_) => self.totals.overflow_external += 1,
                OverflowTarget::None => self.totals.overflow_none += 1,
            },
            Command::Reject { .. } => self.totals.rejected += 1,
            Command::Outcome(o) => {
                let c = self
                    .calls
                    .get_mut(&o.call)
                    .unwrap_or_else(|| panic!("Outcome for unknown {:?}", o.call));
                assert!(c.open, "second Outcome for a visit of {:?}", o.call);
                assert_eq!(
                    c.queue, o.queue,
                    "Outcome of {:?} in the wrong queue",
                    o.call
                );
                c.open = false;
                c.outcomes += 1;
                self.last_call_end = now;
                let was_connected = c.conn.take();
                let answered_wait = c.wait.take();
                self.live_calls -= 1;
                let qi = self.qidx(o.queue);
                let mut next = None;
                match &o.outcome {
                    Outcome::Answered { agent } => {
                        assert!(
                            was_connected.is_some(),
                            "Answered outcome of unconnected {:?}",
                            o.call
                        );
                        let a = self.agent(*agent);
                        assert_eq!(a.call, Some(o.call));
                        a.call = None;
                        assert_eq!(Some(o.wait), answered_wait, "wait of {:?}", o.call);
                        self.totals.answered_wait_sum += o.wait;
                        self.totals.answered_wait_max = self.totals.answered_wait_max.max(o.wait);
                    }
                    Outcome::Abandoned => self.counts[qi].abandoned += 1,
                    Outcome::Overflowed { target } => {
                        self.counts[qi].overflowed += 1;
                        if let OverflowTarget::Queue(t) = target {
                            next = Some(*t);
                        }
                    }
                    Outcome::Rejected { .. } => self.counts[qi].rejected += 1,
                }
                // A connected call transferred: its answered visit ends and a new one starts.
                // The router has already started it (the call stays known), so look there.
                if next.is_none() && was_connected.is_some() {
                    next = self.pending_transfer_target(o.call);
                }
                if let Some(t) = next {
                    self.open_visit(o.call, t);
                }
            }
            Command::AgentStateChanged {
                agent,
                from,
                to,
                at,
                ..
            } => {
                assert_eq!(at, now);
                let shift_end = self.shift_end;
                let a = self.agent(agent);
                assert_eq!(
                    a.state.as_ref(),
                    Some(&from),
                    "{agent:?}: state chain broken"
                );
                a.seq += 1;
                let seq = a.seq;
                a.state = Some(to.clone());
                if let AgentState::OutboundCall { call } = from {
                    assert_eq!(a.own.take(), Some(call), "{agent:?}: own call chain broken");
                }
                if let AgentState::OutboundCall { call } = to {
                    assert!(
                        a.offer.is_none() && a.call.is_none() && a.own.is_none(),
                        "{agent:?} dials out holding {a:?}"
                    );
                    a.own = Some(call);
                }
                match to {
                    AgentState::NotReady { reason } => {
                        let mean = match reason {
                            NotReadyReason::NoAnswer => {
                                self.totals.no_answer += 1;
                                60.0
                            }
                            NotReadyReason::ConnectionLost => 90.0,
                            _ => MEAN_BREAK,
                        };
                        let at = now + self.rng.exp(mean);
                        self.schedule(at, SimEv::Ready { agent, seq });
                    }
                    AgentState::WrapUp { until } if self.rng.chance(P_EARLY_WRAP_UP_DONE) => {
                        let len = until.saturating_since(now).as_millis() as usize;
                        let at = now + Duration::from_millis(self.rng.below(len.max(1)) as u64);
                        self.schedule(at, SimEv::WrapUpDone { agent, seq });
                    }
                    AgentState::Available
                        if matches!(
                            from,
                            AgentState::NotReady {
                                reason: NotReadyReason::User(_)
                            }
                        ) =>
                    {
                        if now < shift_end {
                            let at = now + self.rng.exp(MEAN_BREAK_INTERVAL);
                            self.schedule(at, SimEv::BreakStart { agent });
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// The queue a connected call we are transferring moves to.
    fn pending_transfer_target(&mut self, call: CallId) -> Option<QueueId> {
        self.transfer_to.remove(&call)
    }

    fn check(&mut self) {
        self.checks += 1;
        if let Err(e) = self.router.check_invariants(self.now) {
            panic!(
                "invariant broken at {:?} after {} events: {e}",
                self.now, self.events
            );
        }
        assert_eq!(
            self.router.calls_in_progress(),
            self.live_calls,
            "calls in progress"
        );
        for (i, &q) in self.queue_ids.iter().enumerate() {
            let s = self.router.queue_stats(q, self.now).expect("stats");
            let c = self.counts[i];
            assert_eq!(
                (
                    s.offered,
                    s.answered,
                    s.answered_within_sl,
                    s.abandoned,
                    s.overflowed,
                    s.rejected
                ),
                (
                    c.offered,
                    c.answered,
                    c.answered_in_sl,
                    c.abandoned,
                    c.overflowed,
                    c.rejected
                ),
                "{q:?}: stats vs commands"
            );
        }
        let ringing: u64 = self
            .calls
            .values()
            .filter(|c| c.open && c.conn.is_none() && c.ringing > 0)
            .count() as u64;
        let router_ringing: u64 = self
            .queue_ids
            .iter()
            .map(|&q| u64::from(self.router.queue_stats(q, self.now).expect("stats").ringing))
            .sum();
        assert_eq!(ringing, router_ringing, "ringing calls");
    }

    fn check_agents(&self) {
        for (i, a) in self.agents.iter().enumerate() {
            let (state, _) = self.router.agent_state(AgentId(i as u32)).expect("agent");
            assert_eq!(
                Some(state),
                a.state.as_ref(),
                "agent {i}: stream vs agent_state"
            );
        }
    }

    /// After the shift: every call is over; log everyone out, run out the deadlines and check
    /// the accounting.
    fn finish(&mut self) {
        assert_eq!(self.live_calls, 0, "calls left after the agenda ran dry");
        for a in 0..self.p.agents {
            self.send(Event::Logout {
                agent: AgentId(a as u32),
            });
            self.events += 1;
        }
        while let Some(t) = self.router.poll_timeout() {
            self.now = self.now.max(t);
            self.router.handle_timeout(self.now);
            self.process();
            self.events += 1;
        }
        self.check();
        self.check_agents();
        assert_eq!(self.router.calls_in_progress(), 0);
        let (mut visits, mut outcomes) = (0u64, 0u64);
        for (id, c) in &self.calls {
            assert!(
                !c.open && c.visits >= 1 && c.outcomes == c.visits,
                "{id:?}: {c:?}"
            );
            visits += u64::from(c.visits);
            outcomes += u64::from(c.outcomes);
        }
        assert_eq!(visits, outcomes);
        assert_eq!(self.calls.len() as u64, self.totals.calls);
        for (i, c) in self.counts.iter().enumerate() {
            assert_eq!(
                c.offered,
                c.answered + c.abandoned + c.overflowed + c.rejected,
                "{}: {c:?}",
                qname(i)
            );
        }
        for a in &self.agents {
            assert_eq!(a.state, Some(AgentState::LoggedOut));
            assert_eq!(a.own, None);
        }
    }
}

#[derive(Debug, PartialEq)]
struct Report {
    calls: u64,
    visits: u64,
    answered: u64,
    answered_in_sl: u64,
    abandoned: u64,
    overflowed: u64,
    rejected: u64,
    events: u64,
    end: Time,
}

fn simulate(p: ShiftParams) -> (Report, Totals) {
    let started = Instant::now();
    let mut sim = Sim::new(p);
    sim.run();
    let shift_over = sim.last_call_end;
    sim.finish();
    let sum = |f: fn(&QCount) -> u64| sim.counts.iter().map(f).sum::<u64>();
    let r = Report {
        calls: sim.totals.calls,
        visits: sum(|c| c.offered),
        answered: sum(|c| c.answered),
        answered_in_sl: sum(|c| c.answered_in_sl),
        abandoned: sum(|c| c.abandoned),
        overflowed: sum(|c| c.overflowed),
        rejected: sum(|c| c.rejected),
        events: sim.events,
        end: sim.now,
    };
    let t = &sim.totals;
    let pct = |n: u64, d: u64| {
        if d == 0 {
            0.0
        } else {
            100.0 * n as f64 / d as f64
        }
    };
    let sl = pct(r.answered_in_sl, r.answered + r.abandoned);
    println!(
        "shift: {} operators, {} queues, {:.1} h at {:.0}% load ({:.2} calls/s); last call ended at {:.0} s",
        p.agents,
        p.queues,
        p.hours,
        100.0 * p.load,
        sim.arrival_rate,
        shift_over.as_nanos() as f64 / 1e9
    );
    println!(
        "  calls {}  queue visits (offered) {}  answered {} ({:.1}%)  abandoned {} ({:.1}%)  overflowed {} (to queue {}, external {}, none {})  rejected {}",
        r.calls,
        r.visits,
        r.answered,
        pct(r.answered, r.visits),
        r.abandoned,
        pct(r.abandoned, r.visits),
        r.overflowed,
        t.overflow_queue,
        t.overflow_external,
        t.overflow_none,
        r.rejected
    );
    println!(
        "  service level ({} s): {:.1}%  mean wait {:.1} s  max wait {:.1} s",
        SERVICE_LEVEL.as_secs(),
        sl,
        t.answered_wait_sum.as_secs_f64() / r.answered.max(1) as f64,
        t.answered_wait_max.as_secs_f64()
    );
    println!(
        "  offers {}  missed {}  declined {}  ring timeouts {}  no-answer {}  transfers {}  breaks {}  connection losses {}",
        t.offers,
        t.missed,
        t.declined,
        t.ring_timeouts,
        t.no_answer,
        t.transfers,
        t.breaks,
        t.connection_losses
    );
    println!(
        "  own calls out {} ({} while a queue call rang there)",
        t.own_calls, t.own_calls_while_ringing
    );
    for (i, &q) in sim.queue_ids.iter().enumerate() {
        let s = sim.router.queue_stats(q, sim.now).expect("stats");
        println!(
            "    {} {:<16} offered {:>6} answered {:>6} abandoned {:>4} overflowed {:>3} rejected {:>3} SL {:>5.1}%",
            qname(i),
            Strategy::ALL[i % Strategy::ALL.len()].as_str(),
            s.offered,
            s.answered,
            s.abandoned,
            s.overflowed,
            s.rejected,
            100.0 * s.service_level().unwrap_or(0.0)
        );
    }
    println!(
        "  events processed {}  invariant checks {}  wall time {:.2?}",
        r.events,
        sim.checks,
        started.elapsed()
    );
    // Sanity: the simulated centre works (not a degenerate run that checks nothing).
    assert!(
        r.answered as f64 > 0.8 * r.visits as f64,
        "too few answered: {r:?}"
    );
    assert!(r.events > 0 && sim.checks > 0);
    (r, sim.totals)
}

/// 2,000 operators, 20 queues, two hours at 90 % load (debug build: well under 30 s).
#[test]
fn shift_2000_operators_two_hours() {
    let (r, t) = simulate(ShiftParams {
        agents: 2_000,
        queues: 20,
        hours: 2.0,
        load: 0.9,
        seed: 1,
        check_every: 5_000,
    });
    // Every feature the simulation is meant to exercise happened.
    assert!(
        t.ring_timeouts > 0 && t.declined > 0 && r.abandoned > 0 && t.overflow_queue > 0,
        "{t:?}"
    );
    assert!(
        t.overflow_external > 0 && t.transfers > 0 && t.no_answer > 0 && t.breaks > 0,
        "{t:?}"
    );
    assert!(t.connection_losses > 0 && r.rejected > 0, "{r:?} {t:?}");
    assert!(t.own_calls > 0 && t.own_calls_while_ringing > 0, "{t:?}");
}

/// The same inputs replay to the same figures, event for event.
#[test]
fn shift_replays_exactly() {
    let p = ShiftParams {
        agents: 200,
        queues: 12,
        hours: 0.5,
        load: 0.9,
        seed: 7,
        check_every: 1_000,
    };
    assert_eq!(simulate(p).0, simulate(p).0);
}

/// A full day: 10,000 operators, 40 queues, 8 hours. Run with
/// `cargo test --release -p homeline-routing --test shift -- --ignored --nocapture`.
#[test]
#[ignore = "long: run in release"]
fn shift_10000_operators_eight_hours() {
    let (r, _) = simulate(ShiftParams {
        agents: 10_000,
        queues: 40,
        hours: 8.0,
        load: 0.92,
        seed: 3,
        check_every: 100_000,
    });
    assert!(r.calls > 0);
}
