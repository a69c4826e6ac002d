//! Single routing decisions at 10,000 operators (500 queues, ~5 queues per operator), for a
//! few strategies. Each iteration times one `Router::handle` (plus draining its commands);
//! the steps that put the router back into the same situation are not timed.
//!
//! `cargo bench -p homeline-benches --bench routing` (about a minute; add `-- --quick` for less).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use homeline_benches::{ScenarioSpec, secs};
use homeline_routing::{
    AgentId, CallId, Command, Event, NotReadyReason, QueueId, Router, SplitMix64, Strategy, Time,
};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

const AGENTS: usize = 10_000;
const QUEUES: usize = 500;

const STRATEGIES: [Strategy; 4] = [
    Strategy::LongestIdle,
    Strategy::RoundRobin,
    Strategy::Skills,
    Strategy::RingAll,
];

fn strategy_fn(s: Strategy) -> fn(usize, usize) -> Strategy {
    match s {
        Strategy::LongestIdle => |_, _| Strategy::LongestIdle,
        Strategy::RoundRobin => |_, _| Strategy::RoundRobin,
        Strategy::FewestCalls => |_, _| Strategy::FewestCalls,
        Strategy::LeastTalkTime => |_, _| Strategy::LeastTalkTime,
        Strategy::RingAll => |_, _| Strategy::RingAll,
        Strategy::Linear => |_, _| Strategy::Linear,
        Strategy::Random => |_, _| Strategy::Random,
        Strategy::Skills => |_, _| Strategy::Skills,
    }
}

/// A router with every queue of one strategy, every operator logged in.
struct Bench {
    router: Router<SplitMix64>,
    now: u64,
    next_call: u64,
    next_queue: u32,
    cmds: Vec<Command>,
}

impl Bench {
    fn new(strategy: Strategy, ready: bool) -> Self {
        let spec = ScenarioSpec {
            strategy_of: strategy_fn(strategy),
            small_ring_all: None,
            extras: false,
            ..ScenarioSpec::new(AGENTS, QUEUES, 7)
        };
        let scenario = spec.build();
        let mut router =
            Router::new(&scenario.config, SplitMix64::new(7)).expect("generated config is valid");
        for a in 0..AGENTS as u32 {
            router
                .handle(
                    Time::ZERO,
                    Event::Login {
                        agent: AgentId(a),
                        ready,
                    },
                )
                .expect("login of a configured operator");
            router.drain_commands().for_each(drop);
        }
        Bench {
            router,
            now: 0,
            next_call: 1,
            next_queue: 0,
            cmds: Vec::with_capacity(4096),
        }
    }

    fn time(&self) -> Time {
        Time::from_nanos(self.now)
    }

    /// Advances virtual time by a second and fires due timers (untimed).
    fn tick(&mut self) {
        self.now += secs(1.0);
        self.router.handle_timeout(self.time());
        self.router.drain_commands().for_each(drop);
    }

    /// Applies `event` untimed; its commands are left in `cmds`.
    fn send(&mut self, event: Event) {
        self.cmds.clear();
        self.router
            .handle(self.time(), event)
            .expect("event valid in the benchmark");
        self.cmds.extend(self.router.drain_commands());
    }

    /// Applies `event`, timing `handle` plus draining the commands.
    fn timed(&mut self, event: Event) -> Duration {
        self.cmds.clear();
        let now = self.time();
        let t0 = Instant::now();
        let r = self.router.handle(now, event);
        self.cmds.extend(self.router.drain_commands());
        let dt = t0.elapsed();
        black_box(&self.cmds);
        r.expect("event valid in the benchmark");
        dt
    }

    /// A new call at the next queue (round the queues).
    fn arrival(&mut self) -> (CallId, Event) {
        let call = CallId(self.next_call);
        self.next_call += 1;
        let queue = QueueId(self.next_queue);
        self.next_queue = (self.next_queue + 1) % QUEUES as u32;
        (
            call,
            Event::CallArrived {
                call,
                queue,
                priority: 0,
                skills: None,
            },
        )
    }

    /// The first operator offered a call in the last commands.
    fn offered(&self) -> Option<AgentId> {
        self.cmds.iter().find_map(|c| match c {
            Command::Offer { agent, .. } => Some(*agent),
            _ => None,
        })
    }

    /// A call arrives and is accepted (untimed); returns the call and its operator.
    fn connect(&mut self) -> (CallId, AgentId) {
        loop {
            let (call, ev) = self.arrival();
            self.send(ev);
            if let Some(agent) = self.offered() {
                self.send(Event::OfferAccepted { call, agent });
                return (call, agent);
            }
            // Nobody qualified (skills): drop the call and try the next queue.
            self.send(Event::CallerHungUp { call });
        }
    }
}

fn config(c: &mut Criterion) -> criterion::BenchmarkGroup<'_, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group("routing");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    g
}

/// A call arrives, an idle operator is Available: the offer decision.
fn arrival_offer(c: &mut Criterion) {
    let mut g = config(c);
    for s in STRATEGIES {
        let mut b = Bench::new(s, true);
        g.bench_function(BenchmarkId::new("arrival_offer", s.as_str()), |bencher| {
            bencher.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    b.tick();
                    let (call, ev) = b.arrival();
                    total += b.timed(ev);
                    b.send(Event::CallerHungUp { call });
                }
                total
            })
        });
    }
    g.finish();
}

/// An operator becomes Ready while calls wait in its queues (10 per queue).
fn ready_with_waiting(c: &mut Criterion) {
    let mut g = config(c);
    let reason = NotReadyReason::User(Arc::from("bench"));
    for s in STRATEGIES {
        let mut b = Bench::new(s, false);
        for _ in 0..10 * QUEUES {
            let (_, ev) = b.arrival();
            b.send(ev);
        }
        let mut next = 0u32;
        g.bench_function(
            BenchmarkId::new("ready_with_waiting", s.as_str()),
            |bencher| {
                bencher.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        b.tick();
                        let agent = AgentId(next);
                        next = (next + 1) % AGENTS as u32;
                        total += b.timed(Event::Ready { agent });
                        b.send(Event::NotReady {
                            agent,
                            reason: reason.clone(),
                        });
                    }
                    total
                })
            },
        );
    }
    g.finish();
}

/// An operator accepts the offer (ring-all: the others are withdrawn).
fn accept(c: &mut Criterion) {
    let mut g = config(c);
    for s in STRATEGIES {
        let mut b = Bench::new(s, true);
        g.bench_function(BenchmarkId::new("accept", s.as_str()), |bencher| {
            bencher.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    b.tick();
                    let (call, ev) = b.arrival();
                    b.send(ev);
                    let Some(agent) = b.offered() else {
                        b.send(Event::CallerHungUp { call });
                        continue;
                    };
                    total += b.timed(Event::OfferAccepted { call, agent });
                    done += 1;
                    b.send(Event::CallEnded { call });
                    b.send(Event::WrapUpDone { agent });
                }
                total
            })
        });
    }
    g.finish();
}

/// A connected call ends: the operator goes to wrap-up (timer set).
fn call_ended(c: &mut Criterion) {
    let mut g = config(c);
    for s in STRATEGIES {
        let mut b = Bench::new(s, true);
        g.bench_function(BenchmarkId::new("call_ended", s.as_str()), |bencher| {
            bencher.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    b.tick();
                    let (call, agent) = b.connect();
                    total += b.timed(Event::CallEnded { call });
                    b.send(Event::WrapUpDone { agent });
                }
                total
            })
        });
    }
    g.finish();
}

/// An operator finishes wrap-up: Available again, looks for a waiting call (none waits).
fn wrap_up_done(c: &mut Criterion) {
    let mut g = config(c);
    for s in STRATEGIES {
        let mut b = Bench::new(s, true);
        g.bench_function(BenchmarkId::new("wrap_up_done", s.as_str()), |bencher| {
            bencher.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    b.tick();
                    let (call, agent) = b.connect();
                    b.send(Event::CallEnded { call });
                    total += b.timed(Event::WrapUpDone { agent });
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    arrival_offer,
    ready_with_waiting,
    accept,
    call_ended,
    wrap_up_done
);
criterion_main!(benches);
