//! Hold and resume by re-INVITE, from either side (the routing core is not involved: the
//! operator stays on the call and neither leg is hung up).
//!
//! - The operator holds (its re-INVITE is `sendonly`/`inactive`): nothing is sent to the
//!   operator, and the caller (the PBX leg) hears [`MUSIC_ON_HOLD`] instead of the operator.
//!   Resume: the tone stops and the legs are relayed again.
//! - The PBX holds: nothing is sent to the PBX, and the operator hears music on hold.
//!
//! Each re-INVITE is answered with a real SDP answer from the leg's [`LocalSdp`] (our port,
//! the negotiated direction, a new `o=` version), and a new remote address re-configures the
//! relay for that leg.

use super::{Calls, MUSIC_ON_HOLD};
use homeline_engine::LegId;
use homeline_engine::routing::CallId;
use homeline_media::relay::{Control, Leg, LegMedia};
use homeline_media::sdp::{Direction, Negotiated, SessionDescription, negotiate};
use homeline_sip::{CallRef, LegRef};
use tracing::{debug, info};

impl Calls {
    /// A re-INVITE from the PBX.
    pub(super) async fn pbx_hold(&mut self, call: CallRef, held: bool, offer: &[u8]) {
        let Some(m) = self.media.get_mut(&CallId(call.0)) else {
            self.edge.answer_pbx_reoffer(call, None).await;
            return;
        };
        let Some((sdp, n)) = reoffer(offer, &m.negotiated) else {
            self.edge.answer_pbx_reoffer(call, None).await;
            return;
        };
        let answer = m.pbx_sdp.answer(&sdp, &n, m.pbx_port);
        self.edge
            .answer_pbx_reoffer(call, Some(answer.into_bytes()))
            .await;
        let media = LegMedia::from(&n);
        if n.remote_rtp.is_some() && media != LegMedia::from(&m.negotiated) {
            let _ = m.relay.send(Control::Configure(Leg::A, media)).await;
        }
        m.offer = sdp;
        m.negotiated = n;
        if held == m.pbx_held {
            return;
        }
        m.pbx_held = held;
        info!(call = call.0, held, "PBX hold");
        let operator = m.agent_media.is_some();
        if held {
            let _ = m.relay.send(Control::Hold(Leg::A)).await;
            if operator {
                let _ = m.relay.send(Control::PlayTone(Leg::B, MUSIC_ON_HOLD)).await;
            }
        } else {
            let _ = m.relay.send(Control::Resume(Leg::A)).await;
            let _ = m.relay.send(Control::StopTone(Leg::B)).await;
        }
    }

    /// A re-INVITE from the operator.
    pub(super) async fn leg_hold(&mut self, leg: LegRef, held: bool, offer: &[u8]) {
        let Some(m) = self
            .legs
            .get(&LegId(leg.0))
            .and_then(|call| self.media.get_mut(call))
        else {
            self.edge.answer_leg_reoffer(leg, None).await;
            return;
        };
        let Some((sdp, n)) = reoffer(offer, &m.negotiated) else {
            self.edge.answer_leg_reoffer(leg, None).await;
            return;
        };
        let answer = m.agent_sdp.answer(&sdp, &n, m.agent_port);
        self.edge
            .answer_leg_reoffer(leg, Some(answer.into_bytes()))
            .await;
        let media = LegMedia::from(&n);
        if n.remote_rtp.is_some() && Some(media) != m.agent_media {
            let _ = m.relay.send(Control::Configure(Leg::B, media)).await;
            m.agent_media = Some(media);
        }
        if held == m.agent_held {
            return;
        }
        m.agent_held = held;
        info!(leg = leg.0, held, "operator hold");
        if held {
            let _ = m.relay.send(Control::Hold(Leg::B)).await;
            let _ = m.relay.send(Control::PlayTone(Leg::A, MUSIC_ON_HOLD)).await;
        } else {
            let _ = m.relay.send(Control::Resume(Leg::B)).await;
            let _ = m.relay.send(Control::StopTone(Leg::A)).await;
        }
    }
}

/// The new offer and its negotiation, keeping the call's codec (the relay does not
/// transcode); `None` when it does not fit.
fn reoffer(offer: &[u8], current: &Negotiated) -> Option<(SessionDescription, Negotiated)> {
    let sdp = SessionDescription::parse_bytes(offer).ok()?;
    match negotiate(&sdp, &[current.payloads.codec], Direction::SendRecv) {
        Ok(n) => Some((sdp, n)),
        Err(e) => {
            debug!(error = %e, "re-INVITE offer refused");
            None
        }
    }
}
