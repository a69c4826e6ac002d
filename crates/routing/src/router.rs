//! The router: state, the public entry points, and the event dispatcher. The transitions
//! live in `agents.rs` (operator states), `calls.rs` (call lifecycle), `outbound.rs`
//! (operators' own calls), `select.rs` (the strategies) and `reconfig.rs`.

use crate::config::{ConfigError, NotReadyReason, RelaxStep, RouterConfig, Strategy, WhenEmpty};
use crate::event::{AgentState, Command, Event, EventError, OverflowTarget, SkillReq};
use crate::ids::{AgentId, QueueId, SkillId};
use crate::rng::Entropy;
use crate::time::Time;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// What an operator does when the call in hand ends. `WrapUp` is the default after a queue
/// call; `Ready` and `WrapUpUntil` are set only while on a call of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AfterCall {
    WrapUp,
    NotReady(NotReadyReason),
    LogOut,
    /// Available.
    Ready,
    /// Back to the wrap-up it interrupted, if not over by then.
    WrapUpUntil(Time),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    pub queue: u32,
    pub penalty: u8,
}

#[derive(Debug)]
pub(crate) struct AgentRec {
    pub name: Arc<str>,
    pub state: AgentState,
    pub since: Time,
    /// Position in the configuration, for `linear` and `round-robin`.
    pub order: u32,
    /// Inline: read on every state change, so no pointer to chase.
    pub members: SmallVec<[Member; 6]>,
    /// Sorted by skill.
    pub skills: SmallVec<[(SkillId, u8); 8]>,
    /// Consecutive missed offers.
    pub misses: u32,
    pub calls: u32,
    pub talk: Duration,
    pub after_call: AfterCall,
    /// Removed from the configuration: gone once logged out.
    pub removed: bool,
    /// Bumped on every state change; stale wrap-up timers carry an older one.
    pub epoch: u32,
}

impl AgentRec {
    pub fn proficiency(&self, skill: SkillId) -> u8 {
        match self.skills.binary_search_by_key(&skill, |s| s.0) {
            Ok(i) => self.skills[i].1,
            Err(_) => 0,
        }
    }

    /// Whether this operator satisfies `reqs`, each minimum capped at `floor`.
    pub fn qualifies(&self, reqs: &[SkillReq], floor: u8) -> bool {
        reqs.iter().all(|r| {
            let need = r.min.min(floor);
            need == 0 || self.proficiency(r.skill) >= need
        })
    }
}

/// A queue's settings, resolved to ids.
#[derive(Debug, Clone)]
pub(crate) struct QueueParams {
    pub ring_timeout: Duration,
    pub wrap_up: Duration,
    pub max_wait: Option<Duration>,
    pub overflow: OverflowTarget,
    pub when_empty: WhenEmpty,
    pub max_misses: u32,
    pub service_level: Duration,
    pub required: Vec<SkillReq>,
    pub relax: Vec<RelaxStep>,
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counters {
    pub offered: u64,
    pub answered: u64,
    pub answered_in_sl: u64,
    pub abandoned: u64,
    pub overflowed: u64,
    pub rejected: u64,
}

#[derive(Debug)]
pub(crate) struct QueueRec {
    pub name: Arc<str>,
    pub params: QueueParams,
    /// Removed from the configuration; serves the calls it holds, takes no new ones.
    pub retired: bool,
    /// Copy of `params.strategy`, next to the index it orders.
    pub strategy: Strategy,
    pub waiting: BTreeSet<u128>,
    /// Available members in strategy order.
    pub available: BTreeSet<u128>,
    pub head_seq: u64,
    pub tail_seq: u64,
    /// `round-robin`: order of the operator offered last.
    pub rr_cursor: Option<u64>,
    /// Members not logged out.
    pub logged_in: u32,
    pub members: u32,
    pub ringing: u32,
    pub counters: Counters,
}

impl QueueRec {
    pub fn logged_in(&self) -> u32 {
        self.logged_in
    }

    /// The relaxation floor for a call that arrived at `arrived`: required minimums are
    /// capped at it (5 = no relaxation yet, 0 = any member).
    pub fn floor(&self, arrived: Time, now: Time) -> u8 {
        let waited = now.saturating_since(arrived);
        let mut floor = 5;
        for step in &self.params.relax {
            if waited >= step.after {
                floor = step.min_proficiency;
            }
        }
        floor
    }
}

#[derive(Debug, Clone)]
pub(crate) enum CallState {
    Waiting,
    Ringing {
        agents: Vec<u32>,
    },
    Connected {
        agent: u32,
        at: Time,
        wait: Duration,
    },
}

#[derive(Debug)]
pub(crate) struct CallRec {
    pub queue: u32,
    pub priority: u8,
    pub reqs: Vec<SkillReq>,
    /// Arrival in the current queue.
    pub arrived: Time,
    /// Position key in the waiting set while waiting.
    pub seq: u64,
    pub state: CallState,
    /// Token of the current visit's timers (router-wide unique, so a call id reused later
    /// or a reconfiguration cannot be hit by stale max-wait and relax timers).
    pub visit: u64,
    /// Bumped per offer; stale ring timers carry an older one.
    pub offer_epoch: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    Ring { call: u64, epoch: u64 },
    MaxWait { call: u64, visit: u64 },
    Relax { call: u64, visit: u64 },
    WrapUp { agent: u32, epoch: u32 },
}

/// The routing core. See the crate documentation for the run loop and guarantees.
#[derive(Debug)]
pub struct Router<R> {
    pub(crate) agents: Vec<AgentRec>,
    /// Per operator, a bit per skill it has (see `select::skill_bit`): a dense array that
    /// strategies check before touching an operator's record.
    pub(crate) skill_masks: Vec<u64>,
    pub(crate) agent_names: FxHashMap<Arc<str>, u32>,
    pub(crate) queues: Vec<QueueRec>,
    pub(crate) queue_names: FxHashMap<Arc<str>, u32>,
    pub(crate) skill_names: FxHashMap<Arc<str>, SkillId>,
    pub(crate) calls: FxHashMap<u64, CallRec>,
    /// Operators' own calls: call id to operator.
    pub(crate) outbound: FxHashMap<u64, u32>,
    pub(crate) timers: BinaryHeap<Reverse<(Time, Timer)>>,
    pub(crate) out: VecDeque<Command>,
    pub(crate) rng: R,
    /// Scratch buffers for picks, kept to avoid allocating per decision.
    pub(crate) scratch: Vec<u32>,
    pub(crate) picked: Vec<u128>,
    /// Source of timer tokens.
    pub(crate) tokens: u64,
}

impl<R: Entropy> Router<R> {
    /// A router for `config`, every operator logged out, drawing randomness from `rng`.
    pub fn new(config: &RouterConfig, rng: R) -> Result<Self, Vec<ConfigError>> {
        let mut router = Router {
            agents: Vec::new(),
            skill_masks: Vec::new(),
            agent_names: FxHashMap::default(),
            queues: Vec::new(),
            queue_names: FxHashMap::default(),
            skill_names: FxHashMap::default(),
            calls: FxHashMap::default(),
            outbound: FxHashMap::default(),
            timers: BinaryHeap::new(),
            out: VecDeque::new(),
            rng,
            scratch: Vec::new(),
            picked: Vec::new(),
            tokens: 0,
        };
        router.apply_config(Time::ZERO, config)?;
        router.out.clear();
        Ok(router)
    }

    /// Applies one input at `now`. On error nothing changed.
    pub fn handle(&mut self, now: Time, event: Event) -> Result<(), EventError> {
        match event {
            Event::Login { agent, ready } => self.on_login(now, self.agent_idx(agent)?, ready),
            Event::Logout { agent } => self.on_logout(now, self.agent_idx(agent)?),
            Event::Ready { agent } => self.on_ready(now, self.agent_idx(agent)?),
            Event::NotReady { agent, reason } => {
                self.on_not_ready(now, self.agent_idx(agent)?, reason)
            }
            Event::WrapUpDone { agent } => self.on_wrap_up_done(now, self.agent_idx(agent)?),
            Event::ConnectionLost { agent } => self.on_connection_lost(now, self.agent_idx(agent)?),
            Event::CallArrived {
                call,
                queue,
                priority,
                skills,
            } => self.on_arrival(now, call, queue, priority, skills),
            Event::OfferAccepted { call, agent } => {
                self.on_accept(now, call, self.agent_idx(agent)?)
            }
            Event::OfferDeclined { call, agent } => {
                self.on_decline(now, call, self.agent_idx(agent)?)
            }
            Event::CallerHungUp { call } => self.on_caller_hangup(now, call),
            Event::CallEnded { call } => self.on_call_ended(now, call),
            Event::Transfer {
                call,
                queue,
                priority,
            } => self.on_transfer(now, call, queue, priority),
            Event::Reconfigure(config) => self
                .apply_config(now, &config)
                .map_err(|e| EventError::BadConfig(e.iter().map(|e| e.to_string()).collect())),
            Event::OutboundStarted { agent, call } => {
                self.on_outbound_started(now, self.agent_idx(agent)?, call)
            }
            Event::OutboundEnded { call } => self.on_outbound_ended(now, call),
        }
    }

    /// Fires every deadline at or before `now`.
    pub fn handle_timeout(&mut self, now: Time) {
        while let Some(Reverse((at, timer))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            self.fire(now, timer);
        }
    }

    /// The earliest pending deadline (possibly of a timer that turns out to be stale; firing
    /// it early does nothing).
    pub fn poll_timeout(&self) -> Option<Time> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// The next command to carry out.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.out.pop_front()
    }

    /// Every pending command, in order.
    pub fn drain_commands(&mut self) -> std::collections::vec_deque::Drain<'_, Command> {
        self.out.drain(..)
    }

    /// The operator configured as `name`.
    pub fn agent_id(&self, name: &str) -> Option<AgentId> {
        let idx = *self.agent_names.get(name)?;
        (!self.agents[idx as usize].removed).then_some(AgentId(idx))
    }

    /// The queue configured as `name` (not one removed from the configuration).
    pub fn queue_id(&self, name: &str) -> Option<QueueId> {
        let idx = *self.queue_names.get(name)?;
        (!self.queues[idx as usize].retired).then_some(QueueId(idx))
    }

    /// The skill named `name`, if any queue or operator mentions it.
    pub fn skill_id(&self, name: &str) -> Option<SkillId> {
        self.skill_names.get(name).copied()
    }

    /// An operator's name.
    pub fn agent_name(&self, agent: AgentId) -> Option<&str> {
        self.agents.get(agent.idx()).map(|a| &*a.name)
    }

    /// A queue's name.
    pub fn queue_name(&self, queue: QueueId) -> Option<&str> {
        self.queues.get(queue.idx()).map(|q| &*q.name)
    }

    /// An operator's state and when it was entered.
    pub fn agent_state(&self, agent: AgentId) -> Option<(&AgentState, Time)> {
        self.agents.get(agent.idx()).map(|a| (&a.state, a.since))
    }

    /// Every operator id, removed ones included.
    pub fn agent_ids(&self) -> impl Iterator<Item = AgentId> + '_ {
        (0..self.agents.len() as u32).map(AgentId)
    }

    /// Every queue id, retired ones included.
    pub fn queue_ids(&self) -> impl Iterator<Item = QueueId> + '_ {
        (0..self.queues.len() as u32).map(QueueId)
    }

    /// Number of calls the router holds (waiting, ringing or connected).
    pub fn calls_in_progress(&self) -> usize {
        self.calls.len()
    }

    pub(crate) fn agent_idx(&self, agent: AgentId) -> Result<u32, EventError> {
        match self.agents.get(agent.idx()) {
            Some(a) if !a.removed => Ok(agent.0),
            _ => Err(EventError::UnknownAgent(agent)),
        }
    }

    /// A token no timer has carried before.
    pub(crate) fn token(&mut self) -> u64 {
        self.tokens += 1;
        self.tokens
    }

    pub(crate) fn push_timer(&mut self, at: Time, timer: Timer) {
        self.timers.push(Reverse((at, timer)));
    }

    fn fire(&mut self, now: Time, timer: Timer) {
        match timer {
            Timer::Ring { call, epoch } => self.on_ring_timeout(now, call, epoch),
            Timer::MaxWait { call, visit } => self.on_max_wait(now, call, visit),
            Timer::Relax { call, visit } => self.on_relax(now, call, visit),
            Timer::WrapUp { agent, epoch } => self.on_wrap_up_timeout(now, agent, epoch),
        }
    }
}
