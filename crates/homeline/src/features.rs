//! Feature codes dialled from a softphone (`*1` Ready, `*2` Not Ready, `*3` log out,
//! configurable in `[features]`): the SIP edge has authenticated the operator and holds the
//! INVITE ([`homeline_sip::EdgeEvent::FeatureCode`]); here it is answered, hears a short
//! confirmation tone, and is hung up. The state change itself is the routing core's
//! ([`request`] gives the engine input).
//!
//! The tone is played by an ordinary media relay whose operator-facing leg is the relay's
//! leg A (the second leg, also from the RTP port range, stays unused): 0.5 s of 880 Hz, then
//! BYE. The call is never handed to the engine, which ignores a `PbxGone` for it.

use homeline_engine::Input;
use homeline_engine::routing::{AgentId, Event, NotReadyReason};
use homeline_media::codec::Codec;
use homeline_media::relay::{self, Control, Leg, LegMedia, PortAllocator, RelayConfig};
use homeline_media::sdp::{Direction, LocalSdp, SessionDescription, negotiate};
use homeline_media::tone::ToneSpec;
use homeline_sip::{CallRef, Feature, SipEdge};
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, warn};

/// The confirmation: a short, clearly audible beep.
const CONFIRMATION: ToneSpec = ToneSpec::continuous(880.0, -10.0);
/// How long it plays before homeline hangs up.
const CONFIRMATION_LENGTH: Duration = Duration::from_millis(500);

/// The engine input a feature code asks for, for `agent`.
pub(crate) fn request(agent: AgentId, feature: Feature) -> Input {
    Input::AgentRequest(match feature {
        Feature::Ready => Event::Ready { agent },
        Feature::NotReady => Event::NotReady {
            agent,
            reason: NotReadyReason::User("feature code".into()),
        },
        Feature::Logout => Event::Logout { agent },
    })
}

/// Answers the held feature-code call `call` (SDP answer to `offer`), plays the confirmation
/// tone and hangs up, in the background. A call without a usable offer, or with no free RTP
/// ports, is answered `488`/`503` and changes nothing else: the state change is the caller's
/// to apply either way.
pub(crate) async fn confirm(
    edge: &Arc<SipEdge>,
    ports: &PortAllocator,
    seed: u64,
    call: CallRef,
    offer: Option<&[u8]>,
) {
    let Some(offer) = offer.and_then(|o| SessionDescription::parse_bytes(o).ok()) else {
        edge.reject_pbx(call, 488, None).await;
        return;
    };
    let negotiated = match negotiate(&offer, &Codec::ALL, Direction::SendRecv) {
        Ok(n) => n,
        Err(e) => {
            debug!(error = %e, "feature code call: no common codec");
            edge.reject_pbx(call, 488, None).await;
            return;
        }
    };
    let (near, unused) = match (ports.allocate(), ports.allocate()) {
        (Ok(a), Ok(b)) => (a, b),
        _ => {
            warn!("no free RTP ports for a feature code's tone: 503");
            edge.reject_pbx(call, 503, None).await;
            return;
        }
    };
    let port = near.port();
    let config = RelayConfig {
        a: Some(LegMedia::from(&negotiated)),
        b: None,
        seed,
    };
    let (relay, task) = match relay::spawn(config, near, unused) {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "cannot start the feature code's tone");
            edge.reject_pbx(call, 503, None).await;
            return;
        }
    };
    let sdp = LocalSdp::new(seed >> 1, ports.ip()).answer(&offer, &negotiated, port);
    edge.answer_pbx(call, sdp.into_bytes()).await;
    let _ = relay.send(Control::PlayTone(Leg::A, CONFIRMATION)).await;
    let edge = edge.clone();
    tokio::spawn(async move {
        tokio::time::sleep(CONFIRMATION_LENGTH).await;
        // Nothing happens if the operator hung up first.
        edge.bye_pbx(call).await;
        let _ = relay.send(Control::Stop).await;
        if let Ok(report) = task.await {
            info!(
                call = call.0,
                tone_packets = report.a.counters.tone_packets,
                "feature code confirmed"
            );
        }
    });
}
