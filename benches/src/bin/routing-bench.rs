//! Load benchmark of the routing core: a large configuration, every operator logged in, and a
//! realistic mixed event stream on virtual time keeping `--calls` calls in the system on
//! average. Each `Router::handle` (plus draining its commands) is timed on its own.
//!
//! stdout: exactly one JSON line
//! `{"agents":..,"queues":..,"calls":..,"events_per_s":..,"p50_ns":..,"p99_ns":..,"p999_ns":..,"bytes_per_agent":..}`;
//! details on stderr. Exits non-zero if the router refused an event (a driver bug).

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use hdrhistogram::Histogram;
use homeline_benches::{Rng, Scenario, ScenarioSpec, agent_name, queue_name, secs, skill_name};
use homeline_routing::{
    AgentId, AgentState, CallId, Command, Event, EventError, NotReadyReason, Outcome,
    OverflowTarget, QueueId, Router, SkillId, SkillReq, SplitMix64, StateKind, Strategy, Time,
};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;
use std::time::Instant;

#[global_allocator]
static ALLOC: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

/// Benchmark of the routing core under a realistic mixed event stream.
#[derive(Debug, Parser)]
#[command(name = "routing-bench")]
struct Args {
    /// Operators (all logged in, Ready, at the start).
    #[arg(long, default_value_t = 10_000)]
    agents: usize,
    /// Queues.
    #[arg(long, default_value_t = 500)]
    queues: usize,
    /// Calls in the system (waiting, ringing or connected) on average.
    #[arg(long, default_value_t = 5_000)]
    calls: usize,
    /// Seed of the configuration, the event stream and the router's entropy.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Timed events (`handle` calls) after the warm-up.
    #[arg(long, default_value_t = 2_000_000)]
    events: u64,
    /// Events of warm-up (at least; the warm-up also runs 10 virtual minutes).
    #[arg(long, default_value_t = 200_000)]
    warmup: u64,
    /// Skip the final (slow) invariant check.
    #[arg(long)]
    no_check: bool,
    /// Share of calls (to queues other than `skills` ones, which get twice it) that carry
    /// their own required skills.
    #[arg(long, default_value_t = 0.15)]
    call_skills: f64,
    /// Strategy mix, for comparisons: `mixed` (mostly longest-idle, some of every other
    /// strategy), `no-skills` (the `skills` queues become longest-idle), `longest-idle` (all).
    #[arg(long, default_value = "mixed", value_parser = ["mixed", "no-skills", "longest-idle"])]
    mix: String,
}

/// Mean talk time, seconds.
const TALK_MEAN: f64 = 120.0;
/// Mean caller patience while waiting or ringing, seconds.
const PATIENCE_MEAN: f64 = 90.0;
/// Mean time between two breaks of one operator, seconds.
const BREAK_EVERY: f64 = 1800.0;
/// Mean length of a break, seconds.
const BREAK_MEAN: f64 = 120.0;

/// Something the driver will do at a virtual time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    /// The next call arrives.
    Arrival,
    /// Some operator takes a break.
    Break,
    /// The operator answers (or declines) the offer with `token`.
    Respond {
        agent: u32,
        token: u32,
        accept: bool,
    },
    /// The connected call with `token` ends.
    End { call: u64, token: u32 },
    /// The caller loses patience (if still waiting or ringing).
    Abandon { call: u64 },
    /// The operator ends wrap-up early (if still in the wrap-up of `epoch`).
    WrapUpDone { agent: u32, epoch: u32 },
    /// The operator comes back from Not Ready (if still in the state of `epoch`).
    Ready { agent: u32, epoch: u32 },
}

/// The kinds of event sent to the router, for per-kind figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Arrival,
    Accept,
    Decline,
    HangUpQueued,
    HangUpTalking,
    CallEnded,
    WrapUpDone,
    Ready,
    NotReady,
}

impl Kind {
    const ALL: [Kind; 9] = [
        Kind::Arrival,
        Kind::Accept,
        Kind::Decline,
        Kind::HangUpQueued,
        Kind::HangUpTalking,
        Kind::CallEnded,
        Kind::WrapUpDone,
        Kind::Ready,
        Kind::NotReady,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Arrival => "call arrived",
            Kind::Accept => "offer accepted",
            Kind::Decline => "offer declined",
            Kind::HangUpQueued => "caller hung up (queued/ringing)",
            Kind::HangUpTalking => "caller hung up (talking)",
            Kind::CallEnded => "call ended",
            Kind::WrapUpDone => "wrap-up done",
            Kind::Ready => "ready",
            Kind::NotReady => "not ready",
        }
    }
}

/// The driver's view of an operator, kept from the router's commands.
#[derive(Debug, Clone, Copy)]
struct DAgent {
    kind: StateKind,
    /// Bumped on every state change the router reports.
    epoch: u32,
    offer_call: u64,
    /// Token of the offer ringing this operator; 0: none.
    offer_token: u32,
}

/// The driver's view of a call slot; call ids are `generation << 32 | slot`.
#[derive(Debug, Clone, Copy)]
struct DCall {
    generation: u32,
    live: bool,
    /// Token of the current connection; 0: not connected.
    connect_token: u32,
}

/// What the driver does next.
enum Step {
    /// Fire the router's timers at this time.
    Timeout(u64),
    /// Send this event (with the heap bytes it carries into the router).
    Event(Kind, Event, usize),
    /// A stale driver action: nothing to send.
    Skip,
}

/// Counters of what happened, for the stderr report.
#[derive(Debug, Default)]
struct Tally {
    arrivals: u64,
    offers: u64,
    arrivals_offered_at_once: u64,
    ready_offered: u64,
    ready_events: u64,
    withdrawals: u64,
    connected: u64,
    overflows: u64,
    rejects: u64,
    outcomes: BTreeMap<&'static str, u64>,
    stale: u64,
    timeouts_fired: u64,
    live_sum: u128,
    live_samples: u64,
    errors: BTreeMap<String, u64>,
}

struct Driver {
    rng: Rng,
    now: u64,
    seq: u64,
    heap: BinaryHeap<Reverse<(u64, u64, Due)>>,
    agents: Vec<DAgent>,
    calls: Vec<DCall>,
    free: Vec<u32>,
    live: usize,
    next_token: u32,
    target: usize,
    /// Mean arrival rate per second at the target.
    base_rate: f64,
    break_interval: f64,
    break_reason: NotReadyReason,
    /// Share of calls carrying required skills.
    call_skills: f64,
    /// Cumulative arrival weights of the queues.
    cumulative: Vec<f64>,
    queue_members: Vec<Vec<u32>>,
    agent_skills: Vec<Vec<(u16, u8)>>,
    strategies: Vec<Strategy>,
    skill_ids: Vec<SkillId>,
}

impl Driver {
    fn new(
        scenario: &Scenario,
        skill_ids: Vec<SkillId>,
        target: usize,
        call_skills: f64,
        seed: u64,
    ) -> Self {
        let mut rng = Rng::new(seed ^ 0xD817_E500_0000_0002);
        // Uneven load: a few hot queues (Zipf-like over a random ranking), weighted by size.
        let nq = scenario.queue_members.len();
        let mut rank: Vec<usize> = (0..nq).collect();
        for i in (1..nq).rev() {
            rank.swap(i, rng.index(i + 1));
        }
        let mut cumulative = Vec::with_capacity(nq);
        let mut sum = 0.0;
        for (members, r) in scenario.queue_members.iter().zip(&rank) {
            sum += members.len() as f64 / ((r + 1) as f64).powf(0.5);
            cumulative.push(sum);
        }
        let agents = scenario.agent_skills.len();
        Driver {
            rng,
            now: 0,
            seq: 0,
            heap: BinaryHeap::new(),
            agents: vec![
                DAgent {
                    kind: StateKind::LoggedOut,
                    epoch: 0,
                    offer_call: 0,
                    offer_token: 0
                };
                agents
            ],
            calls: Vec::new(),
            free: Vec::new(),
            live: 0,
            next_token: 0,
            target,
            base_rate: target as f64 / (TALK_MEAN + 5.0),
            break_interval: BREAK_EVERY / agents.max(1) as f64,
            break_reason: NotReadyReason::User(Arc::from("break")),
            call_skills,
            cumulative,
            queue_members: scenario.queue_members.clone(),
            agent_skills: scenario.agent_skills.clone(),
            strategies: scenario.strategies.clone(),
            skill_ids,
        }
    }

    fn at(&mut self, delay_secs: f64, due: Due) {
        self.seq += 1;
        self.heap
            .push(Reverse((self.now + secs(delay_secs), self.seq, due)));
    }

    fn token(&mut self) -> u32 {
        self.next_token = self.next_token.wrapping_add(1).max(1);
        self.next_token
    }

    fn start(&mut self) {
        self.at(0.0, Due::Arrival);
        if !self.agents.is_empty() {
            let d = self.rng.exp(self.break_interval);
            self.at(d, Due::Break);
        }
    }

    fn slot_of(&self, call: u64) -> Option<usize> {
        let slot = (call & 0xFFFF_FFFF) as usize;
        let c = self.calls.get(slot)?;
        (c.live && u64::from(c.generation) == call >> 32).then_some(slot)
    }

    fn new_call(&mut self) -> u64 {
        let slot = match self.free.pop() {
            Some(s) => s as usize,
            None => {
                self.calls.push(DCall {
                    generation: 0,
                    live: false,
                    connect_token: 0,
                });
                self.calls.len() - 1
            }
        };
        let c = &mut self.calls[slot];
        c.generation = c.generation.wrapping_add(1);
        c.live = true;
        c.connect_token = 0;
        self.live += 1;
        (u64::from(c.generation) << 32) | slot as u64
    }

    fn end_call(&mut self, call: u64) {
        if let Some(slot) = self.slot_of(call) {
            self.calls[slot].live = false;
            self.free.push(slot as u32);
            self.live -= 1;
        }
    }

    /// The next thing to do: a router timeout if it is due first, else the next driver action.
    fn next(&mut self, router_timeout: Option<Time>) -> Step {
        let driver_next = self.heap.peek().map(|Reverse((t, _, _))| *t);
        match (router_timeout.map(Time::as_nanos), driver_next) {
            (Some(r), Some(d)) if r <= d => {
                self.now = self.now.max(r);
                return Step::Timeout(self.now);
            }
            (Some(r), None) => {
                self.now = self.now.max(r);
                return Step::Timeout(self.now);
            }
            (_, None) => return Step::Skip,
            _ => {}
        }
        let Some(Reverse((t, _, due))) = self.heap.pop() else {
            return Step::Skip;
        };
        self.now = self.now.max(t);
        match due {
            Due::Arrival => self.arrival(),
            Due::Break => {
                let d = self.rng.exp(self.break_interval);
                self.at(d, Due::Break);
                let a = self.rng.index(self.agents.len());
                match self.agents[a].kind {
                    StateKind::Available
                    | StateKind::WrapUp
                    | StateKind::Offered
                    | StateKind::OnCall => Step::Event(
                        Kind::NotReady,
                        Event::NotReady {
                            agent: AgentId(a as u32),
                            reason: self.break_reason.clone(),
                        },
                        0,
                    ),
                    StateKind::LoggedOut | StateKind::NotReady => Step::Skip,
                }
            }
            Due::Respond {
                agent,
                token,
                accept,
            } => {
                let a = self.agents[agent as usize];
                if a.offer_token != token {
                    return Step::Skip;
                }
                let (call, agent) = (CallId(a.offer_call), AgentId(agent));
                if accept {
                    Step::Event(Kind::Accept, Event::OfferAccepted { call, agent }, 0)
                } else {
                    Step::Event(Kind::Decline, Event::OfferDeclined { call, agent }, 0)
                }
            }
            Due::End { call, token } => match self.slot_of(call) {
                Some(slot) if self.calls[slot].connect_token == token => {
                    if self.rng.chance(0.3) {
                        Step::Event(
                            Kind::HangUpTalking,
                            Event::CallerHungUp { call: CallId(call) },
                            0,
                        )
                    } else {
                        Step::Event(Kind::CallEnded, Event::CallEnded { call: CallId(call) }, 0)
                    }
                }
                _ => Step::Skip,
            },
            Due::Abandon { call } => match self.slot_of(call) {
                Some(slot) if self.calls[slot].connect_token == 0 => Step::Event(
                    Kind::HangUpQueued,
                    Event::CallerHungUp { call: CallId(call) },
                    0,
                ),
                _ => Step::Skip,
            },
            Due::WrapUpDone { agent, epoch } => {
                let a = self.agents[agent as usize];
                if a.epoch == epoch && a.kind == StateKind::WrapUp {
                    Step::Event(
                        Kind::WrapUpDone,
                        Event::WrapUpDone {
                            agent: AgentId(agent),
                        },
                        0,
                    )
                } else {
                    Step::Skip
                }
            }
            Due::Ready { agent, epoch } => {
                let a = self.agents[agent as usize];
                if a.epoch == epoch && a.kind == StateKind::NotReady {
                    Step::Event(
                        Kind::Ready,
                        Event::Ready {
                            agent: AgentId(agent),
                        },
                        0,
                    )
                } else {
                    Step::Skip
                }
            }
        }
    }

    fn arrival(&mut self) -> Step {
        // Next arrival: Poisson, the rate nudged towards the target number of calls.
        // Proportional plus a slow integral term (the base rate drifts until the average
        // matches the target, whatever the real time in system is).
        let error = (self.target as f64 - self.live as f64) / self.target.max(1) as f64;
        self.base_rate = (self.base_rate * (1.0 + 2e-4 * error)).max(1e-6);
        let factor = (self.target as f64 / self.live.max(1) as f64).clamp(0.5, 2.0);
        let d = self.rng.exp(1.0 / (self.base_rate * factor).max(1e-9));
        self.at(d, Due::Arrival);

        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let x = self.rng.unit() * total;
        let q = self
            .cumulative
            .partition_point(|&c| c <= x)
            .min(self.cumulative.len() - 1);
        let call = self.new_call();
        let patience = self.rng.exp(PATIENCE_MEAN);
        self.at(patience, Due::Abandon { call });
        let priority = if self.rng.chance(0.1) {
            1 + self.rng.below(3) as u8
        } else {
            0
        };
        let members = &self.queue_members[q];
        let p_skills = if self.strategies[q] == Strategy::Skills {
            2.0 * self.call_skills
        } else {
            self.call_skills
        };
        let skills = if !members.is_empty() && self.rng.chance(p_skills) {
            // Skills some member has, so that the call can be answered.
            let m = members[self.rng.index(members.len())] as usize;
            let own = &self.agent_skills[m];
            let n = if own.len() > 1 && self.rng.chance(0.2) {
                2
            } else {
                1
            };
            let first = self.rng.index(own.len());
            let mut reqs = Vec::with_capacity(n);
            for k in 0..n {
                let (s, p) = own[(first + k) % own.len()];
                let min = 1 + self.rng.below(u64::from(p)) as u8;
                reqs.push(SkillReq {
                    skill: self.skill_ids[usize::from(s)],
                    min,
                });
            }
            Some(reqs)
        } else {
            None
        };
        let bytes = skills
            .as_ref()
            .map_or(0, |r| r.capacity() * size_of::<SkillReq>());
        let event = Event::CallArrived {
            call: CallId(call),
            queue: QueueId(q as u32),
            priority,
            skills,
        };
        Step::Event(Kind::Arrival, event, bytes)
    }

    /// Follows the router's commands: offers, connections, state changes, outcomes.
    fn apply(&mut self, cmds: &mut Vec<Command>, tally: &mut Tally) {
        for cmd in cmds.drain(..) {
            match cmd {
                Command::Offer { call, agent, .. } => {
                    tally.offers += 1;
                    let token = self.token();
                    let a = &mut self.agents[agent.0 as usize];
                    a.offer_call = call.0;
                    a.offer_token = token;
                    let r = self.rng.unit();
                    if r < 0.95 {
                        let d = self.rng.uniform(1.0, 6.0);
                        self.at(
                            d,
                            Due::Respond {
                                agent: agent.0,
                                token,
                                accept: true,
                            },
                        );
                    } else if r < 0.98 {
                        let d = self.rng.uniform(1.0, 4.0);
                        self.at(
                            d,
                            Due::Respond {
                                agent: agent.0,
                                token,
                                accept: false,
                            },
                        );
                    } // else: no answer, the router's ring timeout fires.
                }
                Command::Withdraw { agent, .. } => {
                    tally.withdrawals += 1;
                    self.agents[agent.0 as usize].offer_token = 0;
                }
                Command::Connected { call, .. } => {
                    tally.connected += 1;
                    if let Some(slot) = self.slot_of(call.0) {
                        let token = self.token();
                        self.calls[slot].connect_token = token;
                        let talk = 5.0 + self.rng.exp(TALK_MEAN - 5.0);
                        self.at(
                            talk,
                            Due::End {
                                call: call.0,
                                token,
                            },
                        );
                    }
                }
                Command::AgentStateChanged { agent, to, .. } => {
                    let i = agent.0 as usize;
                    let a = &mut self.agents[i];
                    a.kind = to.kind();
                    a.epoch = a.epoch.wrapping_add(1);
                    let epoch = a.epoch;
                    if a.kind != StateKind::Offered {
                        a.offer_token = 0;
                    }
                    match to {
                        // Half the operators end wrap-up early, the rest time out.
                        AgentState::WrapUp { until } if self.rng.chance(0.5) => {
                            let left = until.as_nanos().saturating_sub(self.now) as f64 / 1e9;
                            let d = left * self.rng.uniform(0.2, 0.9);
                            self.at(
                                d,
                                Due::WrapUpDone {
                                    agent: agent.0,
                                    epoch,
                                },
                            );
                        }
                        AgentState::NotReady { reason } => {
                            let d = match reason {
                                NotReadyReason::User(_) => self.rng.exp(BREAK_MEAN),
                                NotReadyReason::NoAnswer => 30.0,
                                NotReadyReason::LoggedIn | NotReadyReason::ConnectionLost => 5.0,
                            };
                            self.at(
                                d,
                                Due::Ready {
                                    agent: agent.0,
                                    epoch,
                                },
                            );
                        }
                        _ => {}
                    }
                }
                Command::Outcome(o) => {
                    let name = match &o.outcome {
                        Outcome::Answered { .. } => "answered",
                        Outcome::Abandoned => "abandoned",
                        Outcome::Overflowed {
                            target: OverflowTarget::Queue(_),
                        } => "overflowed to queue",
                        Outcome::Overflowed { .. } => "overflowed out",
                        Outcome::Rejected { .. } => "rejected",
                    };
                    *tally.outcomes.entry(name).or_default() += 1;
                    if !matches!(
                        o.outcome,
                        Outcome::Overflowed {
                            target: OverflowTarget::Queue(_)
                        }
                    ) {
                        self.end_call(o.call.0);
                    }
                }
                Command::Overflow { .. } => tally.overflows += 1,
                Command::Reject { .. } => tally.rejects += 1,
            }
        }
    }
}

fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).context("creating a histogram")
}

#[derive(Debug, Serialize)]
struct Report {
    agents: usize,
    queues: usize,
    calls: usize,
    events_per_s: u64,
    p50_ns: u64,
    p99_ns: u64,
    p999_ns: u64,
    bytes_per_agent: u64,
}

fn signed_delta(after: usize, before: usize) -> i64 {
    after as i64 - before as i64
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        args.agents > 0 && args.queues > 0,
        "--agents and --queues must be positive"
    );
    ensure!(args.agents < u32::MAX as usize, "too many agents");

    // Configuration (input, not counted as router memory).
    let t = Instant::now();
    let mut spec = ScenarioSpec::new(args.agents, args.queues, args.seed);
    match args.mix.as_str() {
        "no-skills" => {
            spec.strategy_of = |i, n| match homeline_benches::mixed_strategy(i, n) {
                Strategy::Skills => Strategy::LongestIdle,
                s => s,
            }
        }
        "longest-idle" => spec.strategy_of = |_, _| Strategy::LongestIdle,
        _ => {}
    }
    let call_skills = args.call_skills;
    let scenario = spec.build();
    let config_time = t.elapsed();
    let mut cmds: Vec<Command> = Vec::with_capacity(1 << 16);

    // The router: construction and login, measured by the allocator.
    let before = ALLOC.allocated();
    let t = Instant::now();
    let mut router = Router::new(&scenario.config, SplitMix64::new(args.seed))
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e:?}"))?;
    let build_time = t.elapsed();
    let after_new = ALLOC.allocated();
    for i in 0..args.agents {
        let id = router.agent_id(&agent_name(i)).context("agent id")?;
        ensure!(
            id == AgentId(i as u32),
            "agent ids are not dense in configuration order"
        );
        router
            .handle(
                Time::ZERO,
                Event::Login {
                    agent: id,
                    ready: true,
                },
            )
            .map_err(|e| anyhow::anyhow!("login of {id}: {e}"))?;
        router.drain_commands().for_each(drop);
    }
    let after_login = ALLOC.allocated();
    // Driver-side lookups (outside the router's accounting).
    for q in 0..args.queues {
        let id = router.queue_id(&queue_name(q)).context("queue id")?;
        ensure!(
            id == QueueId(q as u32),
            "queue ids are not dense in configuration order"
        );
    }
    let skill_ids: Vec<SkillId> = (0..spec.skills)
        .map(|s| router.skill_id(&skill_name(s)).unwrap_or(SkillId(0)))
        .collect();
    let mut driver = Driver::new(&scenario, skill_ids, args.calls, call_skills, args.seed);
    for a in &mut driver.agents {
        a.kind = StateKind::Available;
    }
    driver.start();
    let mut router_bytes: i64 = signed_delta(after_login, before);
    let mut router_peak = router_bytes;
    let idle_bytes = router_bytes;

    let mut hist = histogram()?;
    let mut timeout_hist = histogram()?;
    let mut kind_hist: Vec<Histogram<u64>> = Kind::ALL
        .iter()
        .map(|_| histogram())
        .collect::<Result<_>>()?;
    let mut skilled_hist = histogram()?;
    let mut strategy_hist: Vec<Histogram<u64>> = Strategy::ALL
        .iter()
        .map(|_| histogram())
        .collect::<Result<_>>()?;
    let mut tally = Tally::default();
    let mut warm_tally_events = 0u64;
    let mut measuring = false;
    let mut measured: u64 = 0;
    let mut handle_ns: u128 = 0;
    let mut timeout_ns: u128 = 0;
    let mut timeout_calls: u64 = 0;
    let mut loop_start = Instant::now();
    let mut virtual_start = 0u64;
    let warmup_until = secs(600.0);

    loop {
        match driver.next(router.poll_timeout()) {
            Step::Skip => {
                tally.stale += 1;
                if driver.heap.is_empty() && router.poll_timeout().is_none() {
                    bail!("the event stream dried up");
                }
            }
            Step::Timeout(now) => {
                let a0 = ALLOC.allocated();
                let t0 = Instant::now();
                router.handle_timeout(Time::from_nanos(now));
                cmds.extend(router.drain_commands());
                let dt = t0.elapsed();
                router_bytes += signed_delta(ALLOC.allocated(), a0);
                if !cmds.is_empty() {
                    tally.timeouts_fired += 1;
                }
                if measuring {
                    timeout_calls += 1;
                    timeout_ns += dt.as_nanos();
                    timeout_hist.saturating_record(dt.as_nanos() as u64);
                }
                driver.apply(&mut cmds, &mut tally);
            }
            Step::Event(kind, event, carried) => {
                let now = Time::from_nanos(driver.now);
                let arrival_strategy = match &event {
                    Event::CallArrived { queue, .. } => driver.strategies.get(queue.0 as usize),
                    _ => None,
                }
                .copied();
                let carries_skills = matches!(
                    &event,
                    Event::CallArrived {
                        skills: Some(_),
                        ..
                    }
                );
                let a0 = ALLOC.allocated();
                let t0 = Instant::now();
                let result = router.handle(now, event);
                cmds.extend(router.drain_commands());
                let dt = t0.elapsed();
                router_bytes += signed_delta(ALLOC.allocated(), a0) + carried as i64;
                if let Err(e) = result {
                    let key = match e {
                        EventError::NotOffered { .. } => "NotOffered".to_string(),
                        EventError::InvalidState { state, .. } => {
                            format!("InvalidState({}) on {}", state.as_str(), kind.name())
                        }
                        other => format!("{other} on {}", kind.name()),
                    };
                    *tally.errors.entry(key).or_default() += 1;
                }
                match kind {
                    Kind::Arrival => {
                        tally.arrivals += 1;
                        if cmds.iter().any(|c| matches!(c, Command::Offer { .. })) {
                            tally.arrivals_offered_at_once += 1;
                        }
                    }
                    Kind::Ready | Kind::WrapUpDone => {
                        tally.ready_events += 1;
                        if cmds.iter().any(|c| matches!(c, Command::Offer { .. })) {
                            tally.ready_offered += 1;
                        }
                    }
                    _ => {}
                }
                tally.live_sum += driver.live as u128;
                tally.live_samples += 1;
                if measuring {
                    let ns = dt.as_nanos() as u64;
                    hist.saturating_record(ns);
                    kind_hist[kind as usize].saturating_record(ns);
                    if carries_skills {
                        skilled_hist.saturating_record(ns);
                    }
                    if let Some(s) = arrival_strategy {
                        let i = Strategy::ALL.iter().position(|x| *x == s).unwrap_or(0);
                        strategy_hist[i].saturating_record(ns);
                    }
                    handle_ns += dt.as_nanos();
                    measured += 1;
                } else {
                    warm_tally_events += 1;
                }
                driver.apply(&mut cmds, &mut tally);
                router_peak = router_peak.max(router_bytes);
                if measuring && measured >= args.events {
                    break;
                }
                if !measuring && warm_tally_events >= args.warmup && driver.now >= warmup_until {
                    measuring = true;
                    loop_start = Instant::now();
                    virtual_start = driver.now;
                    tally = Tally {
                        errors: std::mem::take(&mut tally.errors),
                        ..Tally::default()
                    };
                }
            }
        }
    }
    let loop_time = loop_start.elapsed();
    let end = Time::from_nanos(driver.now);

    // Cross-check of the router's memory: everything allocated now minus the driver's
    // structures (approximately: their capacities) and the configuration (dropped here).
    let total_now = ALLOC.allocated();

    let handle_secs = handle_ns as f64 / 1e9;
    let events_per_s = if handle_secs > 0.0 {
        (measured as f64 / handle_secs) as u64
    } else {
        0
    };
    let bytes_per_agent = (router_bytes.max(0) as u64).div_ceil(args.agents as u64);

    // ---- stderr report ----
    let e = |s: String| eprintln!("{s}");
    e(format!(
        "routing-bench: {} agents, {} queues, target {} calls, seed {}, mix {}, call skills {}",
        args.agents, args.queues, args.calls, args.seed, args.mix, args.call_skills
    ));
    let strat_counts = Strategy::ALL
        .iter()
        .map(|s| {
            (
                s.as_str(),
                scenario.strategies.iter().filter(|x| *x == s).count(),
            )
        })
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{s}={n}"))
        .collect::<Vec<_>>()
        .join(" ");
    e(format!("  strategies: {strat_counts}"));
    let sizes: Vec<usize> = scenario.queue_members.iter().map(Vec::len).collect();
    e(format!(
        "  members per queue: min {} avg {:.1} max {}",
        sizes.iter().min().copied().unwrap_or(0),
        sizes.iter().sum::<usize>() as f64 / sizes.len().max(1) as f64,
        sizes.iter().max().copied().unwrap_or(0)
    ));
    e(format!(
        "  setup: config generated in {config_time:.2?}, Router::new in {build_time:.2?}"
    ));
    e(format!(
        "  measured {} handle calls over {:.0} s of virtual time ({:.1} h), plus {} handle_timeout calls",
        measured,
        (driver.now - virtual_start) as f64 / 1e9,
        (driver.now - virtual_start) as f64 / 3.6e12,
        timeout_calls
    ));
    e(format!(
        "  calls in system: avg {:.0} (target {}), at end {} (router: {})",
        tally.live_sum as f64 / tally.live_samples.max(1) as f64,
        args.calls,
        driver.live,
        router.calls_in_progress()
    ));
    e(format!(
        "  handle: {:.0} events/s inside handle (mean {:.0} ns), p50 {} ns, p90 {} ns, p99 {} ns, p99.9 {} ns, p99.99 {} ns, max {} ns",
        events_per_s as f64,
        hist.mean(),
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.9),
        hist.value_at_quantile(0.99),
        hist.value_at_quantile(0.999),
        hist.value_at_quantile(0.9999),
        hist.max()
    ));
    e(format!(
        "  handle_timeout: {} calls ({} fired something), mean {:.0} ns, p99 {} ns, max {} ns, total {:.1} ms",
        timeout_calls,
        tally.timeouts_fired,
        timeout_hist.mean(),
        timeout_hist.value_at_quantile(0.99),
        timeout_hist.max(),
        timeout_ns as f64 / 1e6
    ));
    let all_ns = handle_ns + timeout_ns;
    e(format!(
        "  handle + handle_timeout: {:.0} inputs/s; whole loop (driver included): {:.0} events/s ({} events in {:.2?})",
        (measured + timeout_calls) as f64 / (all_ns as f64 / 1e9).max(1e-12),
        measured as f64 / loop_time.as_secs_f64().max(1e-12),
        measured,
        loop_time
    ));
    // One table row; the last column is this row's share of all events slower than 2 µs.
    let slow_total = hist.count_between(2_001, hist.max().max(2_001)).max(1);
    let row = |name: &str, h: &Histogram<u64>| {
        format!(
            "    {:<34} {:>9} {:>7.2}% {:>7.0} {:>7} {:>7} {:>7} {:>8} {:>7.1}%",
            name,
            h.len(),
            100.0 * h.len() as f64 / measured.max(1) as f64,
            h.mean(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
            100.0 * h.count_between(2_001, h.max().max(2_001)) as f64 / slow_total as f64
        )
    };
    let header = "count   share    mean     p50     p99   p99.9      max  of >2µs";
    e(format!(
        "  per event kind (ns):                     {header}"
    ));
    for k in Kind::ALL {
        let h = &kind_hist[k as usize];
        if !h.is_empty() {
            e(row(k.name(), h));
        }
    }
    e(format!(
        "  call arrived, by queue strategy (ns):    {header}"
    ));
    for (i, s) in Strategy::ALL.iter().enumerate() {
        if !strategy_hist[i].is_empty() {
            e(row(s.as_str(), &strategy_hist[i]));
        }
    }
    if !skilled_hist.is_empty() {
        e(row("(calls carrying own skills)", &skilled_hist));
    }
    e(format!(
        "  stream: {} arrivals ({:.1}% offered at once), {} offers, {} withdrawals, {} connected, {} ready/wrap-up-done ({:.1}% got a waiting call), {} overflow, {} reject, {} stale driver actions",
        tally.arrivals,
        100.0 * tally.arrivals_offered_at_once as f64 / tally.arrivals.max(1) as f64,
        tally.offers,
        tally.withdrawals,
        tally.connected,
        tally.ready_events,
        100.0 * tally.ready_offered as f64 / tally.ready_events.max(1) as f64,
        tally.overflows,
        tally.rejects,
        tally.stale
    ));
    e(format!("  outcomes: {:?}", tally.outcomes));
    let mut states = [0usize; 6];
    for a in &driver.agents {
        states[a.kind as usize] += 1;
    }
    e(format!(
        "  operators at end: {}",
        StateKind::ALL
            .iter()
            .map(|k| format!("{}={}", k.as_str(), states[*k as usize]))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let stats = router.stats(end);
    let waiting: u32 = stats.iter().map(|s| s.waiting).sum();
    let busiest = stats.iter().max_by_key(|s| s.waiting);
    e(format!(
        "  waiting at end: {waiting} calls{}",
        busiest
            .map(|s| format!(
                " (most in {}: {}, longest wait {:.0?})",
                s.name, s.waiting, s.longest_wait
            ))
            .unwrap_or_default()
    ));
    e(format!(
        "  memory (router only): {} B after new+login ({:.0} B/agent), {} B at end with {} calls ({:.0} B/agent), peak {} B ({:.0} B/agent); Router::new alone {} B",
        idle_bytes,
        idle_bytes as f64 / args.agents as f64,
        router_bytes,
        router.calls_in_progress(),
        router_bytes as f64 / args.agents as f64,
        router_peak,
        router_peak as f64 / args.agents as f64,
        signed_delta(after_new, before)
    ));
    e(format!(
        "  memory (whole process, cross-check): {} B allocated now, {} B before the router",
        total_now, before
    ));
    if !args.no_check {
        let t = Instant::now();
        match router.check_invariants(end) {
            Ok(()) => e(format!("  invariants: ok ({:.2?})", t.elapsed())),
            Err(problem) => e(format!("  invariants: BROKEN: {problem}")),
        }
    }
    let errors: u64 = tally.errors.values().sum();
    if errors > 0 {
        e(format!(
            "  ERRORS from handle (driver bugs): {errors}: {:?}",
            tally.errors
        ));
    } else {
        e("  errors from handle: 0".into());
    }

    let report = Report {
        agents: args.agents,
        queues: args.queues,
        calls: args.calls,
        events_per_s,
        p50_ns: hist.value_at_quantile(0.5),
        p99_ns: hist.value_at_quantile(0.99),
        p999_ns: hist.value_at_quantile(0.999),
        bytes_per_agent,
    };
    println!(
        "{}",
        serde_json::to_string(&report).context("serialising the report")?
    );
    if errors > 0 {
        bail!("{errors} events were refused by the router");
    }
    Ok(())
}
