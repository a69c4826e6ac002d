//! The call task: owns the engine (and through it the routing core), feeds it the SIP edge's
//! events and the clock, and carries out its outputs with the SIP edge and the media relays.
//! This is wiring only: decisions are the engine's, SIP is the edge's, media the relays'.

use homeline_engine::routing::{AgentId, CallId, QueueId, SplitMix64, Time};
use homeline_engine::{AnswerMode, Engine, Input, LegId, Output};
use homeline_media::codec::Codec;
use homeline_media::dtmf::{self, DtmfEvent};
use homeline_media::relay::{
    self, Control, Leg, LegMedia, PortAllocator, RelayConfig, RelayHandle,
};
use homeline_media::sdp::{Direction, LocalSdp, Negotiated, SessionDescription, negotiate};
use homeline_media::tone::ToneSpec;
use homeline_sip::{CallRef, EdgeEvent, LegRef, SipEdge};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

mod hold;
mod outbound;
mod outside;

pub(crate) use outbound::OperatorOutbound;

/// What the call task needs from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct CallSettings {
    /// Queue name to id and answer mode.
    pub queues: HashMap<String, (QueueId, AnswerMode)>,
    /// Operator name to `ready_on_register`.
    pub ready_on_register: HashMap<String, bool>,
    /// Operator name to the trunk and caller id of their own outbound calls.
    pub outbound: HashMap<String, OperatorOutbound>,
}

/// Music on hold: a soft, slow two-second pattern (a generated tone; a WAV comes later).
const MUSIC_ON_HOLD: ToneSpec = ToneSpec::cadenced(440.0, -18.0, 400, 1600);

/// The media of one call: the relay and what its SDP needs.
struct CallMedia {
    relay: RelayHandle,
    task: tokio::task::JoinHandle<relay::RelayReport>,
    pbx_port: u16,
    agent_port: u16,
    offer: SessionDescription,
    negotiated: Negotiated,
    pbx_sdp: LocalSdp,
    agent_sdp: LocalSdp,
    caller: String,
    /// The trunk the call came in on (outside legs go out through it).
    trunk: String,
    /// The operator leg's media, once it answered (to tell a re-INVITE's new address).
    agent_media: Option<LegMedia>,
    /// The PBX put the call on hold (re-INVITE `sendonly`/`inactive`).
    pbx_held: bool,
    /// The operator put the caller on hold.
    agent_held: bool,
}

struct Calls {
    engine: Engine<SplitMix64>,
    edge: Arc<SipEdge>,
    settings: CallSettings,
    ports: PortAllocator,
    media: HashMap<CallId, CallMedia>,
    legs: HashMap<LegId, CallId>,
    started: Instant,
    seed: u64,
    outbound: outbound::OutboundCalls,
}

/// Runs until `stop` turns true or the edge's event stream ends.
pub(crate) async fn run(
    engine: Engine<SplitMix64>,
    edge: Arc<SipEdge>,
    mut events: mpsc::Receiver<EdgeEvent>,
    settings: CallSettings,
    ports: PortAllocator,
    seed: u64,
    mut stop: watch::Receiver<bool>,
) {
    let mut calls = Calls {
        engine,
        edge,
        settings,
        ports,
        media: HashMap::new(),
        legs: HashMap::new(),
        started: Instant::now(),
        seed,
        outbound: outbound::OutboundCalls::default(),
    };
    loop {
        let deadline = calls
            .engine
            .poll_timeout()
            .map(|t| calls.started + Duration::from_nanos(t.as_nanos()));
        let far = Instant::now() + Duration::from_secs(3600);
        let sleep = tokio::time::sleep_until(deadline.unwrap_or(far).into());
        tokio::select! {
            ev = events.recv() => match ev {
                Some(ev) => calls.on_event(ev).await,
                None => break,
            },
            _ = sleep => {
                let now = calls.now();
                calls.engine.handle_timeout(now);
            }
            _ = stop.changed() => break,
        }
        calls.carry_out().await;
    }
    info!(calls = calls.media.len(), "call task stopping");
}

impl Calls {
    /// The one place the call path reads the clock.
    fn now(&self) -> Time {
        Time::from_nanos(u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn agent(&self, name: &str) -> Option<AgentId> {
        self.engine.router().agent_id(name)
    }

    async fn on_event(&mut self, ev: EdgeEvent) {
        let Some(ev) = self.outbound_event(ev).await else {
            return;
        };
        let Some(ev) = self.outside_event(ev).await else {
            return;
        };
        let now = self.now();
        let input = match ev {
            EdgeEvent::Inbound {
                call,
                queue,
                caller,
                offer,
                trunk,
                ..
            } => match self
                .admit(call, &queue, caller, trunk, offer.as_deref())
                .await
            {
                Some(input) => input,
                None => return,
            },
            EdgeEvent::PbxGone { call } => Input::PbxGone {
                call: CallId(call.0),
            },
            // An operator's phone sending early media is ringing as far as the call goes.
            EdgeEvent::LegRinging { leg } | EdgeEvent::LegEarlyMedia { leg, .. } => {
                Input::AgentRinging { leg: LegId(leg.0) }
            }
            EdgeEvent::LegAnswered { leg, answer } => {
                let leg = LegId(leg.0);
                // A late 200 (the leg was cancelled) is hung up, its media not used.
                if self.engine.awaits_answer(leg) {
                    self.configure_far_media(leg, answer.as_deref(), Control::Configure)
                        .await;
                }
                Input::AgentAnswered { leg }
            }
            EdgeEvent::LegRefused { leg, .. } => Input::AgentRefused { leg: LegId(leg.0) },
            EdgeEvent::LegUnreachable { leg } => Input::AgentUnreachable { leg: LegId(leg.0) },
            EdgeEvent::LegHungUp { leg } => Input::AgentHungUp { leg: LegId(leg.0) },
            EdgeEvent::LegTransfer { leg, queue } => match self.settings.queues.get(&queue) {
                Some(&(queue, _)) => Input::AgentTransfer {
                    leg: LegId(leg.0),
                    queue,
                },
                None => {
                    warn!(%queue, "transfer to a queue the routing core does not have");
                    self.edge.notify_transfer(leg, 404).await;
                    return;
                }
            },
            EdgeEvent::LegDtmf {
                leg,
                digit,
                duration_ms,
            } => {
                if let Some(&call) = self.legs.get(&LegId(leg.0)) {
                    self.send_dtmf(call, Leg::A, digit, duration_ms).await;
                }
                return;
            }
            EdgeEvent::PbxDtmf {
                call,
                digit,
                duration_ms,
            } => {
                self.send_dtmf(CallId(call.0), Leg::B, digit, duration_ms)
                    .await;
                return;
            }
            EdgeEvent::FeatureCode {
                call,
                user,
                feature,
                offer,
            } => {
                self.seed = self.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
                crate::features::confirm(
                    &self.edge,
                    &self.ports,
                    self.seed,
                    call,
                    offer.as_deref(),
                )
                .await;
                let Some(agent) = self.agent(&user) else {
                    return;
                };
                crate::features::request(agent, feature)
            }
            // Taken by `outbound_event` and `outside_event`.
            EdgeEvent::Outbound { .. } | EdgeEvent::LegTransferOut { .. } => return,
            EdgeEvent::PbxHold { call, held, offer } => {
                self.pbx_hold(call, held, &offer).await;
                return;
            }
            EdgeEvent::LegHold { leg, held, offer } => {
                self.leg_hold(leg, held, &offer).await;
                return;
            }
            EdgeEvent::Registered { user } => {
                let Some(agent) = self.agent(&user) else {
                    return;
                };
                let ready = self
                    .settings
                    .ready_on_register
                    .get(&user)
                    .copied()
                    .unwrap_or(false);
                Input::AgentOnline { agent, ready }
            }
            EdgeEvent::Unregistered { user } => {
                let Some(agent) = self.agent(&user) else {
                    return;
                };
                Input::AgentOffline { agent }
            }
        };
        self.engine.handle(now, input);
    }

    /// Sets up media for an inbound call; refuses it (and returns `None`) when it cannot be.
    async fn admit(
        &mut self,
        call: CallRef,
        queue: &str,
        caller: String,
        trunk: String,
        offer: Option<&[u8]>,
    ) -> Option<Input> {
        let Some(&(queue_id, answer)) = self.settings.queues.get(queue) else {
            warn!(
                queue,
                "inbound call for a queue the routing core does not have"
            );
            self.edge.reject_pbx(call, 404, None).await;
            return None;
        };
        let Some(offer) = offer.and_then(|o| SessionDescription::parse_bytes(o).ok()) else {
            // No (usable) SDP offer: offerless INVITEs are not supported yet.
            self.edge.reject_pbx(call, 488, None).await;
            return None;
        };
        let negotiated = match negotiate(&offer, &Codec::ALL, Direction::SendRecv) {
            Ok(n) => n,
            Err(e) => {
                debug!(error = %e, "no common codec with the PBX");
                self.edge.reject_pbx(call, 488, None).await;
                return None;
            }
        };
        let (pbx, agent) = match (self.ports.allocate(), self.ports.allocate()) {
            (Ok(p), Ok(a)) => (p, a),
            _ => {
                warn!("no free RTP ports: refusing the call");
                self.edge.reject_pbx(call, 503, None).await;
                return None;
            }
        };
        let (pbx_port, agent_port) = (pbx.port(), agent.port());
        self.seed = self.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let config = RelayConfig {
            a: Some(LegMedia::from(&negotiated)),
            b: None,
            seed: self.seed,
        };
        let (relay, task) = match relay::spawn(config, pbx, agent) {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "cannot start the media relay");
                self.edge.reject_pbx(call, 503, None).await;
                return None;
            }
        };
        let ip = self.ports.ip();
        self.media.insert(
            CallId(call.0),
            CallMedia {
                relay,
                task,
                pbx_port,
                agent_port,
                offer,
                negotiated,
                pbx_sdp: LocalSdp::new(self.seed >> 2, ip),
                agent_sdp: LocalSdp::new((self.seed >> 2) ^ 1, ip),
                caller,
                trunk,
                agent_media: None,
                pbx_held: false,
                agent_held: false,
            },
        );
        Some(Input::Inbound {
            call: CallId(call.0),
            queue: queue_id,
            priority: 0,
            answer,
        })
    }

    /// A digit received as SIP INFO from one side: the relay sends it to leg `to` as RFC 4733
    /// events, if that leg negotiated telephone-event (the operator's leg is checked by the
    /// relay, which counts what it drops).
    async fn send_dtmf(&self, call: CallId, to: Leg, digit: char, duration_ms: Option<u32>) {
        let Some(m) = self.media.get(&call) else {
            return;
        };
        let Some(event) = DtmfEvent::from_digit(digit) else {
            return;
        };
        if to == Leg::A && m.negotiated.payloads.telephone_event_pt.is_none() {
            info!(
                call = call.0,
                "DTMF from the operator dropped: the PBX did not negotiate telephone-event"
            );
            return;
        }
        let duration_ms = duration_ms.unwrap_or(dtmf::DEFAULT_DURATION_MS);
        debug!(call = call.0, ?to, %event, duration_ms, "DTMF by SIP INFO sent as RFC 4733");
        let _ = m
            .relay
            .send(Control::SendDtmf(to, event, duration_ms))
            .await;
    }

    /// The SDP answer of leg `leg` (an operator's, or an outside target's): leg B of the
    /// call's relay now faces it, configured by `control` (`Configure`: latched from the
    /// first packet; `ConfigureFixed`: the SDP's address at once). `false` when the answer
    /// is missing or does not fit the call's codec (the relay is left as it was).
    async fn configure_far_media(
        &mut self,
        leg: LegId,
        answer: Option<&[u8]>,
        control: fn(Leg, LegMedia) -> Control,
    ) -> bool {
        let Some(m) = self.legs.get(&leg).and_then(|c| self.media.get_mut(c)) else {
            return false;
        };
        let Some(sdp) = answer.and_then(|a| SessionDescription::parse_bytes(a).ok()) else {
            warn!(leg = leg.0, "answered without usable SDP");
            return false;
        };
        match negotiate(&sdp, &[m.negotiated.payloads.codec], Direction::SendRecv) {
            Ok(n) => {
                let media = LegMedia::from(&n);
                m.agent_media = Some(media);
                let _ = m.relay.send(control(Leg::B, media)).await;
                true
            }
            Err(e) => {
                warn!(leg = leg.0, error = %e, "SDP answer does not fit the call's codec");
                false
            }
        }
    }

    /// Carries out every pending engine output.
    async fn carry_out(&mut self) {
        while let Some(out) = self.engine.poll_output() {
            self.perform(out).await;
        }
    }

    async fn perform(&mut self, out: Output) {
        match out {
            Output::AnswerPbx { call, moh } => {
                let Some(m) = self.media.get_mut(&call) else {
                    return;
                };
                let sdp = m.pbx_sdp.answer(&m.offer, &m.negotiated, m.pbx_port);
                if moh {
                    let _ = m.relay.send(Control::PlayTone(Leg::A, MUSIC_ON_HOLD)).await;
                }
                self.edge
                    .answer_pbx(CallRef(call.0), sdp.into_bytes())
                    .await;
            }
            Output::RingPbx { call } => self.edge.ring_pbx(CallRef(call.0)).await,
            Output::RejectPbx {
                call,
                status,
                target,
            } => {
                let contact = target.map(|t| t.to_string());
                self.edge.reject_pbx(CallRef(call.0), status, contact).await;
            }
            Output::HangUpPbx { call } => self.edge.bye_pbx(CallRef(call.0)).await,
            Output::CallAgent {
                call, leg, agent, ..
            } => {
                let name = self
                    .engine
                    .router()
                    .agent_name(agent)
                    .unwrap_or_default()
                    .to_string();
                let Some(m) = self.media.get_mut(&call) else {
                    return;
                };
                self.legs.insert(leg, call);
                let codecs = [m.negotiated.payloads.codec];
                let sdp = m
                    .agent_sdp
                    .offer_codecs(m.agent_port, &codecs, Direction::SendRecv);
                let caller = m.caller.clone();
                self.edge
                    .invite_agent(LegRef(leg.0), &name, sdp.into_bytes(), &caller)
                    .await;
            }
            Output::CancelAgent { leg } => self.edge.cancel_agent(LegRef(leg.0)).await,
            Output::HangUpAgent { leg } => {
                self.legs.remove(&leg);
                self.edge.bye_agent(LegRef(leg.0)).await;
            }
            Output::Bridge { call, leg } => self.bridge(call, leg).await,
            Output::CallOutside { call, leg, number } => {
                self.call_outside(call, leg, &number).await
            }
            Output::CallDone { call } => {
                self.legs.retain(|_, c| *c != call);
                if let Some(m) = self.media.remove(&call) {
                    let _ = m.relay.send(Control::Stop).await;
                    tokio::spawn(async move {
                        if let Ok(report) = m.task.await {
                            log_media(call.0, &report, "call media ended");
                        }
                    });
                }
            }
            Output::AgentState { agent, state } => {
                let name = self.engine.router().agent_name(agent).unwrap_or_default();
                info!(
                    agent = name,
                    state = state.kind().as_str(),
                    "operator state"
                );
            }
            Output::Requeued { call } => {
                if let Some(m) = self.media.get(&call) {
                    let _ = m.relay.send(Control::Unbridge).await;
                    let _ = m.relay.send(Control::PlayTone(Leg::A, MUSIC_ON_HOLD)).await;
                }
            }
            Output::TransferResult { leg, status } => {
                if (200..300).contains(&status) {
                    self.legs.remove(&leg);
                }
                self.edge.notify_transfer(LegRef(leg.0), status).await;
            }
            Output::Record(o) => {
                let queue = self.engine.router().queue_name(o.queue).unwrap_or_default();
                info!(
                    call = o.call.0,
                    queue,
                    outcome = ?o.outcome,
                    wait_ms = o.wait.as_millis() as u64,
                    talk_ms = o.talk.as_millis() as u64,
                    "call outcome"
                );
            }
        }
    }
}

/// Logs a relay's final report: per leg (`pbx_` faces the PBX, `agent_` the operator or the
/// outside target) packets received, lost, jitter, the MOS estimate and packets forwarded
/// to the other leg, then the whole report as `media` (Debug text, for detail).
pub(crate) fn log_media(call: u64, r: &relay::RelayReport, what: &'static str) {
    let (a, b) = (&r.a, &r.b);
    info!(
        call,
        pbx_packets = a.stats.packets,
        pbx_lost = a.stats.lost,
        pbx_jitter_ms = a.stats.jitter_ms,
        pbx_mos = a.stats.mos,
        pbx_forwarded = a.counters.forwarded,
        agent_packets = b.stats.packets,
        agent_lost = b.stats.lost,
        agent_jitter_ms = b.stats.jitter_ms,
        agent_mos = b.stats.mos,
        agent_forwarded = b.counters.forwarded,
        media = ?r,
        "{what}"
    );
}
