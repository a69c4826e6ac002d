//! The guarantees, checked on demand (tests, simulations, debug builds of the runtime).

use crate::agents::{facts, live};
use crate::event::AgentState;
use crate::keys::{available_key, key_agent, key_call, key_tier};
use crate::rng::Entropy;
use crate::router::{AfterCall, CallState, Router};
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
                AgentState::OutboundCall { call }
                    if self.outbound.get(&call.0) != Some(&(a as u32)) =>
                {
                    return Err(format!("agent {a} on own {call} not recorded as theirs"));
                }
                _ => {}
            }
            let own_call = matches!(agent.state, AgentState::OutboundCall { .. });
            match agent.after_call {
                AfterCall::Ready | AfterCall::WrapUpUntil(_) if !own_call => {
                    return Err(format!(
                        "agent {a} {:?} holds {:?}, meant for after an own call",
                        agent.state, agent.after_call
                    ));
                }
                AfterCall::WrapUp if own_call => {
                    return Err(format!("agent {a} on an own call would wrap up after it"));
                }
                _ => {}
            }
            if agent.removed && !agent.members.is_empty() && agent.state == AgentState::LoggedOut {
                return Err(format!("removed agent {a} still a member"));
            }
        }
        for (&c, &a) in &self.outbound {
            if self.calls.contains_key(&c) {
                return Err(format!("own call {c} also a queue call"));
            }
            match self.agents.get(a as usize).map(|x| &x.state) {
                Some(AgentState::OutboundCall { call }) if call.0 == c => {}
                s => return Err(format!("own call {c} of agent {a} which is {s:?}")),
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
            let mut logged_in = 0;
            for (ai, agent) in self.agents.iter().enumerate() {
                let Some(m) = agent.members.iter().find(|m| m.queue as usize == qi) else {
                    continue;
                };
                if agent.state != AgentState::LoggedOut {
                    logged_in += 1;
                }
                if agent.state == AgentState::Available {
                    let key = available_key(q.strategy, m.penalty, ai as u32, &facts(agent));
                    if !q.available.contains(&key) {
                        return Err(format!(
                            "queue {qi}: Available agent {ai} missing from index"
                        ));
                    }
                }
            }
            if logged_in != q.logged_in {
                return Err(format!(
                    "queue {qi}: logged-in count {} != {logged_in}",
                    q.logged_in
                ));
            }
            let live_keys: Vec<u128> = q
                .available
                .iter()
                .copied()
                .filter(|&k| live(q.strategy, &self.agents, k))
                .collect();
            for &k in &live_keys {
                let a = &self.agents[key_agent(k) as usize];
                if !a
                    .members
                    .iter()
                    .any(|m| m.queue as usize == qi && m.penalty == key_tier(k))
                {
                    return Err(format!(
                        "queue {qi}: index holds non-member agent {}",
                        key_agent(k)
                    ));
                }
            }
            for &wk in &q.waiting {
                let Some(call) = self.calls.get(&key_call(wk)) else {
                    return Err(format!("queue {qi}: waiting key for unknown call"));
                };
                let floor = q.floor(call.arrived, now);
                for &k in &live_keys {
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
