//! Outside legs in the runtime: a call transferred by its operator to an outside number
//! ([`EdgeEvent::LegTransferOut`]) or overflowing to the queue's external target goes out
//! through the trunk it came in on ([`Output::CallOutside`]). The leg uses the operator side
//! of the call's relay (leg B), offering the codec the PBX leg uses, with the caller's
//! number as From; its answer re-points leg B at the target and the engine bridges it. The
//! engine decides everything else (see `homeline_engine`'s `outside` module).
//!
//! [`Output::CallOutside`]: homeline_engine::Output::CallOutside

use super::{Calls, MUSIC_ON_HOLD};
use homeline_engine::routing::CallId;
use homeline_engine::{Input, LegId};
use homeline_media::relay::{Control, Leg};
use homeline_media::sdp::Direction;
use homeline_sip::{EdgeEvent, LegRef, OutboundFrom};
use tracing::{debug, info, warn};

impl Calls {
    /// Takes the events of outside legs and outside transfers; gives back the others.
    pub(super) async fn outside_event(&mut self, ev: EdgeEvent) -> Option<EdgeEvent> {
        let outside = |leg: &LegRef| self.engine.is_outside(LegId(leg.0));
        let (input, ended) = match ev {
            EdgeEvent::LegTransferOut { leg, number } => (
                Input::AgentTransferOut {
                    leg: LegId(leg.0),
                    number: number.into(),
                },
                None,
            ),
            // The caller keeps music on hold while the target rings (its early media is not
            // passed on: leg B still faces the transferring operator).
            EdgeEvent::LegRinging { leg } | EdgeEvent::LegEarlyMedia { leg, .. }
                if outside(&leg) =>
            {
                debug!(leg = leg.0, "outside target ringing");
                return None;
            }
            EdgeEvent::LegAnswered { leg, answer } if outside(&leg) => {
                let leg = LegId(leg.0);
                if !self.engine.awaits_answer(leg)
                    || self
                        .configure_far_media(leg, answer.as_deref(), Control::ConfigureFixed)
                        .await
                {
                    // (an answer not awaited any more is hung up by the engine)
                    (Input::OutsideAnswered { leg }, None)
                } else {
                    self.edge.bye_agent(LegRef(leg.0)).await;
                    (Input::OutsideFailed { leg, status: 488 }, Some(leg))
                }
            }
            EdgeEvent::LegRefused { leg, status } if outside(&leg) => {
                let leg = LegId(leg.0);
                (Input::OutsideFailed { leg, status }, Some(leg))
            }
            EdgeEvent::LegUnreachable { leg } if outside(&leg) => {
                let leg = LegId(leg.0);
                (Input::OutsideFailed { leg, status: 480 }, Some(leg))
            }
            EdgeEvent::LegHungUp { leg } if outside(&leg) => {
                let leg = LegId(leg.0);
                (Input::OutsideHungUp { leg }, Some(leg))
            }
            other => return Some(other),
        };
        if let Input::OutsideFailed { leg, status } = &input {
            info!(leg = leg.0, status, "outside target did not take the call");
        }
        let now = self.now();
        self.engine.handle(now, input);
        if let Some(leg) = ended {
            self.legs.remove(&leg);
        }
        None
    }

    /// Places outside leg `leg` of `call` to `target` (a number, or the user part of a
    /// `sip:`/`tel:` URI from an overflow target).
    pub(super) async fn call_outside(&mut self, call: CallId, leg: LegId, target: &str) {
        let number = if target.contains(':') {
            homeline_sip::uri_user(target)
        } else {
            Some(target.to_owned())
        };
        let Some(m) = self.media.get_mut(&call) else {
            return;
        };
        let Some(number) = number else {
            warn!(call = call.0, "outside target has no number to dial");
            let now = self.now();
            self.engine
                .handle(now, Input::OutsideFailed { leg, status: 404 });
            return;
        };
        self.legs.insert(leg, call);
        let codecs = [m.negotiated.payloads.codec];
        let sdp = m
            .agent_sdp
            .offer_codecs(m.agent_port, &codecs, Direction::SendRecv);
        let (trunk, caller) = (m.trunk.clone(), m.caller.clone());
        info!(
            call = call.0,
            leg = leg.0,
            trunk,
            "calling an outside target"
        );
        debug!(call = call.0, number, "outside number");
        self.edge
            .invite_trunk(
                LegRef(leg.0),
                Some(&trunk),
                &number,
                OutboundFrom::Caller(&caller),
                sdp.into_bytes(),
            )
            .await;
    }

    /// Connects the call's PBX media to leg `leg` (an operator's or an outside target's).
    pub(super) async fn bridge(&mut self, call: CallId, leg: LegId) {
        let outside = self.engine.is_outside(leg);
        let Some(m) = self.media.get_mut(&call) else {
            return;
        };
        if outside && m.agent_held {
            // The operator's hold ended with their part in the call.
            m.agent_held = false;
            let _ = m.relay.send(Control::Resume(Leg::B)).await;
        }
        let _ = m.relay.send(Control::Bridge).await;
        if !outside && m.agent_held {
            // Back to an operator who still holds the call (a failed transfer).
            let _ = m.relay.send(Control::PlayTone(Leg::A, MUSIC_ON_HOLD)).await;
        }
    }
}
