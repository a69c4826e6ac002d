//! The guarantees, checked on demand (tests, simulations, debug builds of the runtime).

use crate::event::{AgentState, StateKind};
use crate::keys::{key_agent, key_call};
use crate::rng::Entropy;
use crate::router::{CallState, Router};
use crate::time::Time;

impl<R: Entropy> Router<R> {
    /// Checks every guarantee of the crate documentation at `now`; the first broken one is
    /// described in the error. Costs O(operators × memberships + calls × Available members).
    pub fn check_invariants(&self, now: Time) -> Result<(), String> {
        for (a, agent) in self.agents.iter().enumerate() {
            match &agent.state {
                AgentState::Offered { call, .. } => match self.calls.get(&call.0).map(|c| &c.state)
                {
                    Some(CallState::Ringing { agents }) if agents.contains(&(a as u32)) => {}
                    other => return Err(format!("agent {a} offered {call} which is {other:?}")),
                },
                AgentState::OnCall { call } => match self.calls.get(&call.0).map(|c| &c.state) {
                    Some(CallState::Connected { agent, .. }) if *agent == a as u32 => {}
                    other => return Err(format!("agent {a} on {call} which is {other:?}")),
                },
                _ => {}
            }
            if agent.removed && !agent.members.is_empty() && agent.state == AgentState::LoggedOut {
                return Err(format!("removed agent {a} still a member"));
            }
        }
        for (&c, call) in &self.calls {
            let q = &self.queues[call.queue as usize];
            match &call.state {
                CallState::Waiting => {
                    let key = crate::keys::call_key(call.priority, call.seq, c);
                    if !q.waiting.contains(&key) {
                        return Err(format!("waiting call {c} missing from its queue"));
                    }
                }
                CallState::Ringing { agents } => {
                    if agents.is_empty() {
                        return Err(format!("call {c} ringing nobody"));
                    }
                    for &a in agents {
                        match &self.agents[a as usize].state {
                            AgentState::Offered { call: oc, .. } if oc.0 == c => {}
                            s => return Err(format!("call {c} rings agent {a} which is {s:?}")),
                        }
                    }
                }
                CallState::Connected { agent, .. } => match &self.agents[*agent as usize].state {
                    AgentState::OnCall { call: oc } if oc.0 == c => {}
                    s => {
                        return Err(format!(
                            "call {c} connected to agent {agent} which is {s:?}"
                        ));
                    }
                },
            }
        }
        for (qi, q) in self.queues.iter().enumerate() {
            let c = q.counters;
            let ended = c.answered + c.abandoned + c.overflowed + c.rejected;
            let open = q.waiting.len() as u64 + u64::from(q.ringing);
            if c.offered != ended + open {
                return Err(format!(
                    "queue {qi}: offered {} != ended {ended} + open {open}",
                    c.offered
                ));
            }
            let ringing = self
                .calls
                .values()
                .filter(|call| {
                    call.queue as usize == qi && matches!(call.state, CallState::Ringing { .. })
                })
                .count();
            if ringing != q.ringing as usize {
                return Err(format!(
                    "queue {qi}: ringing count {} but {ringing} calls",
                    q.ringing
                ));
            }
            let mut states = [0u32; 6];
            for agent in &self.agents {
                if agent.members.iter().any(|m| m.queue as usize == qi) {
                    states[agent.state.kind() as usize] += 1;
                }
            }
            if states != q.states {
                return Err(format!(
                    "queue {qi}: state counts {:?} != {states:?}",
                    q.states
                ));
            }
            if q.available.len() != states[StateKind::Available as usize] as usize {
                return Err(format!("queue {qi}: Available index out of step"));
            }
            for &k in &q.available {
                if self.agents[key_agent(k) as usize].state != AgentState::Available {
                    return Err(format!(
                        "queue {qi}: index holds agent {} not Available",
                        key_agent(k)
                    ));
                }
            }
            for &wk in &q.waiting {
                let Some(call) = self.calls.get(&key_call(wk)) else {
                    return Err(format!("queue {qi}: waiting key for unknown call"));
                };
                let floor = q.floor(call.arrived, now);
                for &k in &q.available {
                    if self.agents[key_agent(k) as usize].qualifies(&call.reqs, floor) {
                        return Err(format!(
                            "queue {qi}: call {} waits while agent {} is Available for it",
                            key_call(wk),
                            key_agent(k)
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}
