//! The branches of an operator leg (one INVITE per device, see `agent`) and the leg's one
//! outcome.
//!
//! Each branch is driven by its own task ([`run`]) over its client transaction; what the
//! branches learn meets in the leg's record, under the registry lock, so that the leg
//! reports each event once:
//! - `LegRinging` with the first `180`/`183` of any branch (`LegEarlyMedia` instead when it
//!   carries SDP; a later `18x` with SDP is reported as `LegEarlyMedia` once);
//! - `LegAnswered` with the first `2xx` of any branch, with that branch's SDP answer. The
//!   other branches are CANCELled (at once when they sent a provisional response, else
//!   with their first one, RFC 3261 §9.1). A `2xx` from another branch that crossed the
//!   CANCEL (or came after the leg ended) is ACKed by the transaction layer and hung up
//!   here with a BYE in its own dialog; it never gives a second `LegAnswered`;
//! - `LegRefused` or `LegUnreachable` once every branch failed. A branch is unreachable
//!   when it timed out, its transport failed or it answered `408`/`503` (as a single INVITE
//!   always counted, `sipmsg::classify`); the leg is unreachable when all its branches
//!   were, else refused with the status [`preferred`] picks among the refusals: a `6xx`
//!   first (a decline is the operator's answer on every device, as RFC 3261 §16.7 says),
//!   then `486 Busy Here`, then any other, `480 Temporarily Unavailable` last; among equals
//!   the first to come.
//!
//! Outbound legs (one branch, see `outbound`) share [`progress`] and [`answered`].

use crate::agent::{self, Cancel, LegPhase, Outgoing, cancel_branch, spawn_transact};
use crate::edge::Shared;
use crate::legs::{EdgeEvent, LegRef, Slot};
use crate::sipmsg::{self, DialogPath, Final};
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Response, SipMessage, StatusCodeKind};
use rsipstack::transaction::transaction::Transaction;
use std::sync::Arc;

/// What a provisional response asks the branch task to do.
#[derive(Debug)]
pub(crate) enum Progress {
    Nothing,
    /// Send the CANCEL that waited for a provisional response.
    Cancel(Box<Outgoing>),
    /// The leg is gone: cancel the branch if it was not.
    Gone,
}

/// What a `2xx` was for the leg.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The leg's answer (reported); CANCEL the other branches with these.
    Won(Vec<Outgoing>),
    /// A retransmission of the answer.
    Again,
    /// Another branch answered first, or the leg is gone: hang this dialog up.
    Lost,
}

/// Records a provisional response on `branch`: the leg's first ringing (`18x`) is reported;
/// returns the CANCEL that was waiting for a provisional response.
pub(crate) fn progress(
    sh: &Shared,
    leg: u64,
    branch: usize,
    resp: &Response,
    slot: Slot<'_>,
) -> Progress {
    let phase = if resp.status_code.code() == 100 {
        LegPhase::Proceeding
    } else {
        LegPhase::Early
    };
    let mut reg = sh.calls.lock();
    let Some(l) = reg.legs.get_mut(&leg) else {
        return Progress::Gone;
    };
    let early_sdp = phase == LegPhase::Early
        && !l.early_media
        && !resp.body.is_empty()
        && resp.headers.iter().any(|h| {
            matches!(h, Header::ContentType(c)
                if c.value().trim().to_ascii_lowercase().starts_with(sipmsg::SDP))
        });
    if early_sdp {
        // Ringing with media (instead of `LegRinging` when it is the first `18x`).
        l.early_media = true;
        slot.put(EdgeEvent::LegEarlyMedia {
            leg: LegRef(leg),
            sdp: resp.body.clone(),
        });
    } else if phase == LegPhase::Early && l.phase < LegPhase::Early {
        slot.put(EdgeEvent::LegRinging { leg: LegRef(leg) });
    }
    if l.phase < phase {
        l.phase = phase;
    }
    let Some(b) = l.branches.get_mut(branch) else {
        return Progress::Gone;
    };
    if b.phase < phase {
        b.phase = phase;
    }
    if b.cancel == Cancel::Wanted {
        b.cancel = Cancel::Sent;
        if let Some(out) = agent::cancel_request(sh, b) {
            return Progress::Cancel(Box::new(out));
        }
    }
    Progress::Nothing
}

/// Records a `2xx` on `branch`: the first one confirms the dialog and is reported with the
/// operator's SDP.
pub(crate) fn answered(
    sh: &Shared,
    leg: u64,
    branch: usize,
    resp: &Response,
    slot: Slot<'_>,
) -> Answer {
    let to = resp.to_header().ok();
    let tag = to
        .and_then(|t| t.tag().ok().flatten())
        .map(|t| t.value().to_string());
    let mut reg = sh.calls.lock();
    let Some(l) = reg.legs.get_mut(&leg) else {
        return Answer::Lost;
    };
    if l.phase == LegPhase::Confirmed {
        return if l.answered == branch && l.remote_tag == tag {
            Answer::Again
        } else {
            Answer::Lost
        };
    }
    let Some(b) = l.branches.get_mut(branch) else {
        return Answer::Lost;
    };
    b.phase = LegPhase::Confirmed;
    let target = sipmsg::contact_uri(&resp.headers).unwrap_or_else(|| b.invite.uri.clone());
    l.phase = LegPhase::Confirmed;
    l.answered = branch;
    l.remote_tag = tag;
    let mut route = sipmsg::record_route(&resp.headers);
    route.reverse();
    l.remote = to.map(|t| (t.value().to_string(), target, route));
    let answer = (!resp.body.is_empty()).then(|| resp.body.clone());
    slot.put(EdgeEvent::LegAnswered {
        leg: LegRef(leg),
        answer,
    });
    let cancels = l
        .branches
        .iter_mut()
        .enumerate()
        .filter(|(i, b)| *i != branch && b.failed.is_none())
        .filter_map(|(_, b)| cancel_branch(sh, b))
        .collect();
    Answer::Won(cancels)
}

/// Records that `branch` failed with `outcome`; when it was the last branch pending of an
/// unanswered leg, the leg ends with its outcome (see the module docs).
fn failed(sh: &Shared, leg: u64, branch: usize, outcome: Final, slot: Slot<'_>) {
    let mut reg = sh.calls.lock();
    let Some(l) = reg.legs.get_mut(&leg) else {
        return;
    };
    let Some(b) = l.branches.get_mut(branch) else {
        return;
    };
    if b.failed.is_some() {
        return;
    }
    b.failed = Some(outcome);
    if l.phase == LegPhase::Confirmed || l.branches.iter().any(|b| b.failed.is_none()) {
        return;
    }
    let ev = match preferred(l.branches.iter().filter_map(|b| b.failed)) {
        Final::Refused(status) => EdgeEvent::LegRefused {
            leg: LegRef(leg),
            status,
        },
        _ => EdgeEvent::LegUnreachable { leg: LegRef(leg) },
    };
    if reg.remove_leg(leg).is_some() {
        slot.put(ev);
    }
}

/// The leg's outcome from its branches' (see the module docs): `Unreachable` unless one
/// refused.
pub(crate) fn preferred(outcomes: impl IntoIterator<Item = Final>) -> Final {
    let rank = |status: u16| match status {
        600..=699 => 0,
        486 => 1,
        480 => 3,
        _ => 2,
    };
    let mut best = Final::Unreachable;
    for o in outcomes {
        best = match (best, o) {
            (Final::Refused(b), Final::Refused(s)) if rank(s) < rank(b) => o,
            (Final::Refused(_), _) => best,
            (_, Final::Refused(_)) => o,
            _ => best,
        };
    }
    best
}

/// Sends branch `branch`'s INVITE and reports its progress until its transaction ends. Each
/// event is sent under the registry lock with the state change it reports (see [`Slot`]).
pub(crate) async fn run(mut tx: Transaction, sh: Arc<Shared>, leg: u64, branch: usize) {
    if let Err(e) = tx.send().await {
        tracing::warn!(leg, branch, error = %e, "cannot send the INVITE");
    }
    let mut finished = false;
    let mut cancelled = false;
    // The To tags of the `2xx` this branch lost and hung up.
    let mut hung_up: Vec<Option<String>> = Vec::new();
    while let Some(msg) = tx.receive().await {
        let SipMessage::Response(resp) = msg else {
            continue;
        };
        match resp.status_code.kind() {
            StatusCodeKind::Provisional => {
                let slot = sh.events.slot().await;
                match progress(&sh, leg, branch, &resp, slot) {
                    Progress::Cancel(out) => {
                        let (req, conn, dest) = *out;
                        cancelled = true;
                        spawn_transact(&sh, req, conn, dest, "CANCEL");
                    }
                    Progress::Gone if !cancelled && !finished => {
                        cancelled = true;
                        if let Some(out) = own_cancel(&sh, &tx) {
                            let (req, conn, dest) = out;
                            spawn_transact(&sh, req, conn, dest, "CANCEL");
                        }
                    }
                    _ => {}
                }
            }
            StatusCodeKind::Successful => {
                finished = true;
                let slot = sh.events.slot().await;
                match answered(&sh, leg, branch, &resp, slot) {
                    Answer::Won(cancels) => {
                        for (req, conn, dest) in cancels {
                            spawn_transact(&sh, req, conn, dest, "CANCEL");
                        }
                    }
                    Answer::Again => {}
                    Answer::Lost => {
                        let tag = sipmsg::to_tag(&resp);
                        if !hung_up.contains(&tag) {
                            hung_up.push(tag);
                            tracing::debug!(leg, branch, "a second answer of a forked leg: BYE");
                            hang_up_lost(&sh, &tx, &resp);
                        }
                    }
                }
            }
            _ if finished => {}
            _ => {
                finished = true;
                let status = resp.status_code.code();
                tracing::debug!(leg, branch, status, "operator leg branch failed");
                let slot = sh.events.slot().await;
                failed(&sh, leg, branch, sipmsg::classify(status), slot);
            }
        }
    }
    if !finished {
        tracing::debug!(
            leg,
            branch,
            "operator INVITE ended without a final response"
        );
        let slot = sh.events.slot().await;
        failed(&sh, leg, branch, Final::Unreachable, slot);
    }
}

/// The CANCEL of the transaction's INVITE, on its own connection.
fn own_cancel(sh: &Shared, tx: &Transaction) -> Option<Outgoing> {
    let req = sipmsg::cancel_of(&tx.original, &sh.settings.user_agent)?;
    Some((req, tx.connection.clone()?, tx.destination.clone()?))
}

/// BYE for the dialog a lost `2xx` (`resp`) set up, on the branch's own connection.
fn hang_up_lost(sh: &Shared, tx: &Transaction, resp: &Response) {
    let invite = &tx.original;
    let (Some(conn), Some(dest)) = (tx.connection.clone(), tx.destination.clone()) else {
        return;
    };
    let built = (|| {
        let mut route = sipmsg::record_route(&resp.headers);
        route.reverse();
        let path = DialogPath {
            call_id: invite.call_id_header().ok()?.value().to_string(),
            local: invite.from_header().ok()?.value().to_string(),
            remote: resp.to_header().ok()?.value().to_string(),
            target: sipmsg::contact_uri(&resp.headers).unwrap_or_else(|| invite.uri.clone()),
            route,
        };
        let cseq = invite.cseq_header().ok()?.seq().ok()? + 1;
        let contact = sipmsg::our_contact(conn.get_addr());
        agent::bye_on(sh, &path, cseq, &conn, &contact)
    })();
    match built {
        Some(req) => spawn_transact(sh, req, conn, dest, "BYE"),
        None => tracing::warn!("cannot build the BYE of a lost answer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declines_beat_busy_beat_others_beat_unavailable_and_unreachable() {
        use Final::{Refused, Unreachable};
        assert_eq!(preferred([Unreachable, Unreachable]), Unreachable);
        assert_eq!(preferred([]), Unreachable);
        assert_eq!(preferred([Refused(486)]), Refused(486));
        assert_eq!(preferred([Refused(486), Refused(603)]), Refused(603));
        assert_eq!(preferred([Refused(603), Refused(486)]), Refused(603));
        assert_eq!(preferred([Refused(480), Refused(486)]), Refused(486));
        assert_eq!(preferred([Unreachable, Refused(480)]), Refused(480));
        assert_eq!(preferred([Refused(480), Refused(404)]), Refused(404));
        assert_eq!(preferred([Refused(487), Refused(487)]), Refused(487));
        assert_eq!(preferred([Refused(600), Refused(603)]), Refused(600));
        assert_eq!(preferred([Refused(487), Unreachable]), Refused(487));
    }
}
