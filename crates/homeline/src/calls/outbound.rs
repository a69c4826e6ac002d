//! Operators' own calls out through a trunk ([`EdgeEvent::Outbound`]): the operator's INVITE is
//! held by the SIP edge; here a media relay is set up (leg A faces the PBX, leg B the
//! operator), the trunk leg is placed with homeline's offer ([`SipEdge::invite_trunk`]), its
//! ringing is passed on as `180`, its early media (`183` with SDP) as `183` with homeline's
//! SDP and the relay bridged at once (the operator hears the PBX's ringback or
//! announcement; the `200` later repeats that SDP), its answer answers the operator's INVITE with homeline's SDP
//! and bridges the legs, its failure refuses the operator's INVITE with the same status
//! (`408` when nothing answered). Either side hanging up ends both; the operator cancelling
//! cancels the trunk leg.
//!
//! The call goes out through the operator's trunk (`[[agent]] trunk`, else the first
//! `[[trunk]]`), presenting the operator's own `caller_id` if set (else the trunk's, else the
//! operator's name).
//!
//! These calls stay outside the engine's calls, under the SIP edge's call id (one id space
//! with the queue calls). The routing core hears of them through the engine
//! ([`Input::OutboundStarted`] when the INVITE is taken, [`Input::OutboundEnded`] when the call
//! is over, whichever way): the operator is on a call of their own meanwhile (offered
//! nothing, counted as on call; a queue call ringing at their phone is withdrawn, its leg
//! cancelled, and offered to someone else), then back to what they were, with no wrap-up. An
//! operator the routing core does not take (logged out, already on a call) calls out all the
//! same, untracked.
//!
//! Legs are named from [`FIRST_LEG`] up, far from the engine's leg ids.
//!
//! [`SipEdge::invite_trunk`]: homeline_sip::SipEdge::invite_trunk

use super::Calls;
use homeline_engine::Input;
use homeline_engine::routing::{AgentId, AgentState, CallId};
use homeline_media::codec::Codec;
use homeline_media::relay::{self, Control, Leg, LegMedia, RelayConfig, RelayHandle};
use homeline_media::sdp::{Direction, LocalSdp, Negotiated, SessionDescription, negotiate};
use homeline_sip::{CallRef, EdgeEvent, LegRef, OutboundFrom};
use std::collections::HashMap;
use tracing::{debug, info, warn};

/// The first leg id of outbound calls.
pub(super) const FIRST_LEG: u64 = 1 << 62;

/// Where an operator's own calls go out, from `[[agent]]` `trunk` and `caller_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OperatorOutbound {
    /// The trunk by name, already resolved to the first `[[trunk]]` when the operator names
    /// none; `None` only when no trunk is configured.
    pub trunk: Option<String>,
    /// The operator's own caller id, before the trunk's `caller_id`.
    pub caller_id: Option<String>,
}

/// One live outbound call.
pub(super) struct Outbound {
    call: CallRef,
    /// The operator, if the routing core has them on this call.
    agent: Option<AgentId>,
    relay: RelayHandle,
    task: tokio::task::JoinHandle<relay::RelayReport>,
    operator_port: u16,
    offer: SessionDescription,
    negotiated: Negotiated,
    operator_sdp: LocalSdp,
    /// The SDP answer sent to the operator with early media (`183`), repeated in the `200`.
    early_answer: Option<String>,
    answered: bool,
}

/// The outbound calls, by leg, and the operator's INVITE to leg.
#[derive(Default)]
pub(super) struct OutboundCalls {
    by_leg: HashMap<u64, Outbound>,
    by_call: HashMap<u64, u64>,
    /// Legs whose call ended while they were unanswered (cancelled): a crossing `200` gets
    /// a BYE.
    ended: std::collections::HashSet<u64>,
    next: u64,
}

impl Outbound {
    /// Points leg A of the relay at the PBX's SDP (an answer, or early media) and bridges;
    /// `false` when there is no SDP or it does not fit the operator's codec.
    async fn connect_pbx(&self, sdp: Option<&[u8]>) -> bool {
        let codec = self.negotiated.payloads.codec;
        let media = sdp
            .and_then(|a| SessionDescription::parse_bytes(a).ok())
            .and_then(|sdp| negotiate(&sdp, &[codec], Direction::SendRecv).ok());
        let Some(n) = media else {
            return false;
        };
        let _ = self
            .relay
            .send(Control::Configure(Leg::A, LegMedia::from(&n)))
            .await;
        let _ = self.relay.send(Control::Bridge).await;
        true
    }

    /// Homeline's SDP answer to the operator's offer.
    fn operator_answer(&mut self) -> String {
        self.operator_sdp
            .answer(&self.offer, &self.negotiated, self.operator_port)
    }
}

impl Calls {
    /// Takes the events of outbound calls; gives back the others.
    pub(super) async fn outbound_event(&mut self, ev: EdgeEvent) -> Option<EdgeEvent> {
        let leg = match &ev {
            EdgeEvent::Outbound {
                call,
                user,
                number,
                offer,
            } => {
                let (call, user, number) = (*call, user.clone(), number.clone());
                let offer = offer.clone();
                self.outbound_start(call, &user, &number, offer.as_deref())
                    .await;
                return None;
            }
            EdgeEvent::PbxGone { call } => {
                let Some(&leg) = self.outbound.by_call.get(&call.0) else {
                    return Some(ev);
                };
                let answered = self.outbound.by_leg.get(&leg).is_some_and(|o| o.answered);
                if answered {
                    self.edge.bye_agent(LegRef(leg)).await;
                } else {
                    self.outbound.ended.insert(leg);
                    self.edge.cancel_agent(LegRef(leg)).await;
                }
                self.outbound_end(leg);
                return None;
            }
            EdgeEvent::LegRinging { leg }
            | EdgeEvent::LegEarlyMedia { leg, .. }
            | EdgeEvent::LegAnswered { leg, .. }
            | EdgeEvent::LegRefused { leg, .. }
            | EdgeEvent::LegUnreachable { leg }
            | EdgeEvent::LegHungUp { leg } => leg.0,
            _ => return Some(ev),
        };
        if leg < FIRST_LEG {
            return Some(ev);
        }
        if self.outbound.ended.contains(&leg) {
            match ev {
                EdgeEvent::LegAnswered { .. } => self.edge.bye_agent(LegRef(leg)).await,
                EdgeEvent::LegRinging { .. } | EdgeEvent::LegEarlyMedia { .. } => return None,
                _ => {}
            }
            self.outbound.ended.remove(&leg);
            return None;
        }
        let o = self.outbound.by_leg.get_mut(&leg)?;
        let call = o.call;
        match ev {
            EdgeEvent::LegRinging { .. } => self.edge.ring_pbx(call).await,
            EdgeEvent::LegEarlyMedia { sdp, .. } => {
                // The PBX's ringback or announcement: heard by the operator at once (183 with
                // homeline's answer, which the 200 repeats).
                if !o.connect_pbx(Some(&sdp)).await {
                    debug!(leg, "early media without usable SDP: ringing only");
                    self.edge.ring_pbx(call).await;
                    return None;
                }
                let answer = o.operator_answer();
                o.early_answer = Some(answer.clone());
                debug!(call = call.0, leg, "outbound call: early media");
                self.edge.progress_pbx(call, answer.into_bytes()).await;
            }
            EdgeEvent::LegAnswered { answer, .. } => {
                if !o.connect_pbx(answer.as_deref()).await {
                    warn!(leg, "the PBX answered without usable SDP: hanging up");
                    self.edge.bye_agent(LegRef(leg)).await;
                    self.edge.reject_pbx(call, 488, None).await;
                    self.outbound_end(leg);
                    return None;
                }
                o.answered = true;
                // The answer given with early media, repeated (RFC 3261 §13.2.1).
                let sdp = match o.early_answer.take() {
                    Some(sdp) => sdp,
                    None => o.operator_answer(),
                };
                info!(call = call.0, leg, "outbound call answered");
                self.edge.answer_pbx(call, sdp.into_bytes()).await;
            }
            EdgeEvent::LegRefused { status, .. } => {
                info!(call = call.0, status, "outbound call refused");
                self.edge.reject_pbx(call, status, None).await;
                self.outbound_end(leg);
            }
            EdgeEvent::LegUnreachable { .. } => {
                info!(call = call.0, "outbound call: no answer from the trunk");
                self.edge.reject_pbx(call, 408, None).await;
                self.outbound_end(leg);
            }
            EdgeEvent::LegHungUp { .. } => {
                info!(call = call.0, "outbound call: the PBX hung up");
                self.edge.bye_pbx(call).await;
                self.outbound_end(leg);
            }
            _ => {}
        }
        None
    }

    async fn outbound_start(
        &mut self,
        call: CallRef,
        user: &str,
        number: &str,
        offer: Option<&[u8]>,
    ) {
        let Some(offer) = offer.and_then(|o| SessionDescription::parse_bytes(o).ok()) else {
            self.edge.reject_pbx(call, 488, None).await;
            return;
        };
        let negotiated = match negotiate(&offer, &Codec::ALL, Direction::SendRecv) {
            Ok(n) => n,
            Err(e) => {
                debug!(error = %e, "outbound call: no common codec with the operator");
                self.edge.reject_pbx(call, 488, None).await;
                return;
            }
        };
        let (pbx, operator) = match (self.ports.allocate(), self.ports.allocate()) {
            (Ok(p), Ok(a)) => (p, a),
            _ => {
                warn!("no free RTP ports: refusing the outbound call");
                self.edge.reject_pbx(call, 503, None).await;
                return;
            }
        };
        let (pbx_port, operator_port) = (pbx.port(), operator.port());
        self.seed = self.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let config = RelayConfig {
            a: None,
            b: Some(LegMedia::from(&negotiated)),
            seed: self.seed,
        };
        let (relay, task) = match relay::spawn(config, pbx, operator) {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "cannot start the media relay");
                self.edge.reject_pbx(call, 503, None).await;
                return;
            }
        };
        let ip = self.ports.ip();
        let mut pbx_sdp = LocalSdp::new(self.seed >> 2, ip);
        let codecs = [negotiated.payloads.codec];
        let pbx_offer = pbx_sdp.offer_codecs(pbx_port, &codecs, Direction::SendRecv);
        let agent = self.agent(user).filter(|&agent| {
            let now = self.now();
            let own = CallId(call.0);
            self.engine
                .handle(now, Input::OutboundStarted { agent, call: own });
            let tracked = self
                .engine
                .router()
                .agent_state(agent)
                .is_some_and(|(s, _)| *s == AgentState::OutboundCall { call: own });
            if !tracked {
                debug!(
                    call = call.0,
                    user, "outbound call of an operator not in routing"
                );
            }
            tracked
        });
        let leg = FIRST_LEG + self.outbound.next;
        self.outbound.next += 1;
        self.outbound.by_call.insert(call.0, leg);
        self.outbound.by_leg.insert(
            leg,
            Outbound {
                call,
                agent,
                relay,
                task,
                operator_port,
                offer,
                negotiated,
                operator_sdp: LocalSdp::new((self.seed >> 2) ^ 1, ip),
                early_answer: None,
                answered: false,
            },
        );
        let line = self
            .settings
            .outbound
            .get(user)
            .cloned()
            .unwrap_or_default();
        // An operator's own caller id is presented as is, as a caller passed on would be;
        // without one, the trunk's `caller_id` (else the operator's name) applies.
        let from = match &line.caller_id {
            Some(id) => OutboundFrom::Caller(id),
            None => OutboundFrom::Operator(user),
        };
        debug!(call = call.0, leg, number, trunk = ?line.trunk, "placing an outbound call");
        self.edge
            .invite_trunk(
                LegRef(leg),
                line.trunk.as_deref(),
                number,
                from,
                pbx_offer.into_bytes(),
            )
            .await;
    }

    /// Forgets the call, stops its media and gives the operator back to routing.
    fn outbound_end(&mut self, leg: u64) {
        let Some(o) = self.outbound.by_leg.remove(&leg) else {
            return;
        };
        self.outbound.by_call.remove(&o.call.0);
        if o.agent.is_some() {
            let now = self.now();
            let call = CallId(o.call.0);
            self.engine.handle(now, Input::OutboundEnded { call });
        }
        let relay = o.relay;
        let task = o.task;
        let call = o.call.0;
        tokio::spawn(async move {
            let _ = relay.send(Control::Stop).await;
            if let Ok(report) = task.await {
                super::log_media(call, &report, "outbound call media ended");
            }
        });
    }
}
