//! Re-INVITEs with an SDP offer in a confirmed dialog (hold, resume, a new media address):
//! the runtime is told ([`EdgeEvent::PbxHold`], [`EdgeEvent::LegHold`]) and builds the SDP
//! answer (it owns the ports and the `o=` versions); the re-INVITE's task waits for it and
//! answers `200` with it, or `488` when the runtime cannot accept the offer.
//!
//! - An offer that does not parse or has no usable audio stream is answered `488` at once.
//! - A second re-INVITE while one waits in the same dialog is answered `491` (RFC 3261
//!   §14.2).
//! - Without an answer from the runtime within [`REOFFER_WAIT`] (or when nobody took the
//!   events), the re-INVITE gets `200` with our last SDP, as before this module.

use crate::edge::{Shared, lock};
use crate::legs::{CallRef, EdgeEvent, LegRef, Party, match_dialog};
use crate::sipmsg;
use crate::{SipEdge, agent::LegPhase, pbx::PbxPhase};
use homeline_media::codec::Codec;
use homeline_media::sdp::{Direction, SessionDescription, negotiate};
use rsipstack::sip::Request;
use rsipstack::transaction::transaction::Transaction;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::oneshot;

/// How long a re-INVITE waits for the runtime's SDP answer.
pub(crate) const REOFFER_WAIT: Duration = Duration::from_secs(2);

/// The runtime's answer to a re-offer: our SDP, or `None` to refuse it (`488`).
type Answer = Option<Vec<u8>>;

/// Re-INVITEs waiting for the runtime, by dialog.
#[derive(Debug, Default)]
pub(crate) struct Reoffers(Mutex<HashMap<Party, oneshot::Sender<Answer>>>);

impl Reoffers {
    fn answer(&self, party: Party, sdp: Answer) {
        if let Some(tx) = lock(&self.0).remove(&party) {
            let _ = tx.send(sdp);
        }
    }
}

/// The re-offer API.
impl SipEdge {
    /// Answers the PBX's re-INVITE announced by [`EdgeEvent::PbxHold`]: `200` with `sdp`, or
    /// `488` with `None`. Nothing happens if it is no longer waiting.
    pub async fn answer_pbx_reoffer(&self, call: CallRef, sdp: Option<Vec<u8>>) {
        self.shared.calls.reoffers.answer(Party::Pbx(call.0), sdp);
    }

    /// Answers the operator's re-INVITE announced by [`EdgeEvent::LegHold`]; as
    /// [`SipEdge::answer_pbx_reoffer`].
    pub async fn answer_leg_reoffer(&self, leg: LegRef, sdp: Option<Vec<u8>>) {
        self.shared.calls.reoffers.answer(Party::Agent(leg.0), sdp);
    }
}

/// Whether the request carries a body (an SDP offer).
pub(crate) fn has_offer(req: &Request) -> bool {
    !req.body.iter().all(u8::is_ascii_whitespace)
}

/// Whether `offer` puts us on hold (the remote does not want our media); `None` when it is
/// not an acceptable offer.
pub(crate) fn held(offer: &[u8]) -> Option<bool> {
    let sdp = SessionDescription::parse_bytes(offer).ok()?;
    let n = negotiate(&sdp, &Codec::ALL, Direction::SendRecv).ok()?;
    Some(!n.remote_direction.receives())
}

/// Answers a re-INVITE with an offer inside a leg's dialog. `None`: no such dialog (`481`).
pub(crate) async fn reinvite(tx: &mut Transaction, sh: &Shared) -> Option<rsipstack::Result<()>> {
    let offer = tx.original.body.clone();
    let held = held(&offer);
    let slot = sh.events.slot().await;
    let ua = sh.settings.user_agent.clone();
    let refuse = |status: u16| sipmsg::response(&tx.original, status, "", &ua, None, None);
    let decided = {
        let reg = sh.calls.lock();
        let party = match_dialog(&reg, &tx.original)?;
        let confirmed = match party {
            Party::Pbx(id) => reg
                .pbx
                .get(&id)
                .filter(|c| c.phase == PbxPhase::Confirmed)
                .map(|c| (c.local_sdp.clone(), c.contact.clone())),
            Party::Agent(id) => reg
                .legs
                .get(&id)
                .filter(|l| l.phase == LegPhase::Confirmed)
                .map(|l| (l.local_sdp.clone(), l.dialog().contact.clone())),
        };
        let refusal = match (&confirmed, held) {
            (None, _) => Some(491),
            (Some(_), None) => Some(488),
            _ => None,
        };
        let mut waiting = lock(&sh.calls.reoffers.0);
        let refusal = refusal.or(waiting.contains_key(&party).then_some(491));
        match (confirmed, held, refusal) {
            (Some((last, contact)), Some(held), None) => {
                let rx = sh.events.taken().then(|| {
                    let (otx, orx) = oneshot::channel();
                    waiting.insert(party, otx);
                    let offer = offer.clone();
                    slot.put(match party {
                        Party::Pbx(id) => EdgeEvent::PbxHold {
                            call: CallRef(id),
                            held,
                            offer,
                        },
                        Party::Agent(id) => EdgeEvent::LegHold {
                            leg: LegRef(id),
                            held,
                            offer,
                        },
                    });
                    orx
                });
                Ok((party, contact, last, rx))
            }
            (_, _, status) => Err(status.unwrap_or(500)),
        }
    };
    let (party, contact, last, rx) = match decided {
        Ok(d) => d,
        Err(status) => {
            let resp = refuse(status);
            return Some(tx.respond(resp).await);
        }
    };
    let answer = match rx {
        None => Some(last),
        Some(rx) => match tokio::time::timeout(REOFFER_WAIT, rx).await {
            Ok(Ok(answer)) => answer,
            _ => {
                tracing::debug!(?party, "no SDP answer from the runtime: last SDP sent");
                lock(&sh.calls.reoffers.0).remove(&party);
                Some(last)
            }
        },
    };
    let resp = match answer {
        Some(sdp) => {
            {
                let mut reg = sh.calls.lock();
                match party {
                    Party::Pbx(id) => {
                        if let Some(c) = reg.pbx.get_mut(&id) {
                            c.local_sdp = sdp.clone();
                        }
                    }
                    Party::Agent(id) => {
                        if let Some(l) = reg.legs.get_mut(&id) {
                            l.local_sdp = sdp.clone();
                        }
                    }
                }
            }
            sipmsg::response(&tx.original, 200, "", &ua, Some(&contact), Some(&sdp))
        }
        None => refuse(488),
    };
    Some(tx.respond(resp).await)
}

#[cfg(test)]
mod tests {
    use super::held;

    fn offer(extra: &str) -> Vec<u8> {
        format!(
            "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
             m=audio 4000 RTP/AVP 0\r\n{extra}"
        )
        .into_bytes()
    }

    #[test]
    fn hold_is_read_from_the_offer() {
        assert_eq!(held(&offer("")), Some(false));
        assert_eq!(held(&offer("a=sendrecv\r\n")), Some(false));
        assert_eq!(held(&offer("a=sendonly\r\n")), Some(true));
        assert_eq!(held(&offer("a=inactive\r\n")), Some(true));
        assert_eq!(held(&offer("a=recvonly\r\n")), Some(false));
        let old_style = b"v=0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n";
        assert_eq!(held(old_style), Some(true));
        assert_eq!(held(b"not sdp"), None);
        assert_eq!(
            held(b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5 RTP/AVP 9\r\n"),
            None
        );
    }
}
