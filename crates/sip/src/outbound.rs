//! Operators' own calls out through a trunk: the UAC leg towards the PBX.
//!
//! The operator's INVITE is held like a PBX's (see `operator_calls`, [`EdgeEvent::Outbound`]);
//! the runtime then places this leg with [`crate::SipEdge::invite_trunk`]. It goes to the
//! trunk the runtime names (else the first configured trunk):
//! `INVITE sip:NUMBER@<pbx ip:port>` sent to the trunk's PBX address, From
//! `<sip:CALLERID@domain>` with the trunk's `caller_id` (else the operator's name) or, for a
//! caller passed on by a transfer or overflow, the caller's own number. One
//! `401`/`407` is answered with the trunk's credentials (a new INVITE, CSeq 2, same Call-ID
//! and From tag). Only UDP trunks are served yet: a TCP trunk makes the leg unreachable.
//!
//! The leg is an ordinary leg of the registry (same record as an operator leg, so CANCEL, BYE,
//! an in-dialog BYE from the PBX and re-INVITEs work unchanged) and reports the same `Leg*`
//! events.

use crate::agent::{self, AgentLeg, Cancel, LegPhase};
use crate::edge::Shared;
use crate::legs::{EdgeEvent, LegRef, Party};
use crate::sipmsg;
use crate::trunks::TrunkTransport;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{
    Header, Method, Param, Request, SipMessage, StatusCodeKind, Uri, headers, typed,
};
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::make_tag;
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::{SipAddr, SipConnection};
use std::sync::Arc;

/// What the INVITE is built from (kept to rebuild it with credentials).
struct Plan {
    target: Uri,
    from: typed::From,
    to: typed::To,
    conn: SipConnection,
    dest: SipAddr,
    contact: String,
    sdp: Vec<u8>,
    credentials: Option<(String, String)>,
}

/// Who an outbound leg presents itself as (the From user).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundFrom<'a> {
    /// An operator's own call: the trunk's `caller_id`, else the operator's name.
    Operator(&'a str),
    /// A caller passed on (a transfer or an overflow to an outside number): the caller's own
    /// number, so the target sees who is calling.
    Caller(&'a str),
}

/// Places leg `leg`: an INVITE for `number` through trunk `trunk` (`None`: the first
/// configured trunk), with `sdp`, From as `from` says. Progress comes back as `Leg*` events.
pub(crate) fn invite(
    sh: &Arc<Shared>,
    leg: u64,
    trunk: Option<&str>,
    number: &str,
    from: OutboundFrom<'_>,
    sdp: Vec<u8>,
) {
    if sh.calls.lock().legs.contains_key(&leg) {
        tracing::warn!(leg, "invite_trunk for a leg that is already live: ignored");
        return;
    }
    let sh = sh.clone();
    match plan(&sh, trunk, number, from, sdp) {
        Ok(plan) => {
            tokio::spawn(run(plan, sh, leg));
        }
        Err(why) => {
            tracing::info!(leg, why, "outbound call cannot be placed");
            tokio::spawn(async move {
                let ev = EdgeEvent::LegUnreachable { leg: LegRef(leg) };
                sh.events.send(ev).await;
            });
        }
    }
}

fn plan(
    sh: &Shared,
    trunk: Option<&str>,
    number: &str,
    from: OutboundFrom<'_>,
    sdp: Vec<u8>,
) -> Result<Plan, &'static str> {
    let trunk = match trunk {
        None => sh.settings.trunks.first().ok_or("no trunk")?,
        Some(name) => sh
            .settings
            .trunks
            .iter()
            .find(|t| t.name == name)
            .ok_or("no such trunk")?,
    };
    if trunk.transport != TrunkTransport::Udp {
        return Err("outbound calls over a TCP trunk are not supported yet");
    }
    let conn = sh
        .udp_listener(None, trunk.pbx.is_ipv6())
        .ok_or("no UDP listener for the trunk")?;
    let dest = SipAddr::new(rsipstack::sip::Transport::Udp, trunk.pbx.into());
    let target = sipmsg::user_uri(number, &trunk.pbx.to_string()).ok_or("bad number")?;
    let caller = match from {
        OutboundFrom::Operator(user) => trunk.caller_id.as_deref().unwrap_or(user),
        OutboundFrom::Caller(number) => number,
    };
    let from_uri = sipmsg::user_uri(caller, &sh.settings.domain).ok_or("bad domain")?;
    let from = typed::From {
        display_name: None,
        uri: from_uri,
        params: vec![Param::Tag(make_tag())],
    };
    let to = typed::To {
        display_name: None,
        uri: target.clone(),
        params: vec![],
    };
    let contact = sipmsg::our_contact(conn.get_addr());
    Ok(Plan {
        target,
        from,
        to,
        conn,
        dest,
        contact,
        sdp,
        credentials: trunk.credentials.clone(),
    })
}

/// The INVITE with `cseq`, `call_id` (none: a new one) and an `Authorization`.
fn build(
    sh: &Shared,
    p: &Plan,
    cseq: u32,
    call_id: Option<headers::CallId>,
    auth: Option<Header>,
) -> Option<Request> {
    let via = sh
        .endpoint
        .get_via(Some(p.conn.get_addr().clone()), None)
        .ok()?;
    let mut req = sh.endpoint.make_request(
        Method::Invite,
        p.target.clone(),
        via,
        p.from.clone(),
        p.to.clone(),
        cseq,
        call_id,
    );
    req.headers.push(Header::Contact(p.contact.clone().into()));
    req.headers.push(Header::Allow(crate::ALLOW.into()));
    if let Some(h) = auth {
        req.headers.push(h);
    }
    req.headers.push(Header::ContentType(sipmsg::SDP.into()));
    req.headers
        .push(Header::ContentLength((p.sdp.len() as u32).into()));
    req.body = p.sdp.clone();
    Some(req)
}

/// Registers (or updates, for the authenticated retry) the leg and returns its transaction;
/// `None` when the leg went (cancelled before the retry) or the request is unusable.
fn start(sh: &Shared, leg: u64, p: &Plan, req: Request, cseq: u32) -> Option<Transaction> {
    let call_id = req.call_id_header().ok()?.value().to_string();
    let key = TransactionKey::from_request(&req, TransactionRole::Client).ok()?;
    let mut tx = Transaction::new_client(
        key.clone(),
        req.clone(),
        sh.endpoint.clone(),
        Some(p.conn.clone()),
    );
    tx.destination = Some(p.dest.clone());
    let local_tag = p.from.tag()?.value().to_string();
    let mut reg = sh.calls.lock();
    if cseq > 1 {
        let l = reg.legs.get_mut(&leg)?;
        if l.cancel != Cancel::No {
            return None;
        }
        l.invite = req;
        l.phase = LegPhase::Calling;
        l.tu = tx.tu_sender.clone();
        l.key = key;
        l.local_cseq = cseq;
        return Some(tx);
    }
    let record = AgentLeg {
        call_id: call_id.clone(),
        phase: LegPhase::Calling,
        cancel: Cancel::No,
        invite: req,
        local_tag,
        remote_tag: None,
        remote: None,
        contact: p.contact.clone(),
        tu: tx.tu_sender.clone(),
        key,
        conn: p.conn.clone(),
        dest: p.dest.clone(),
        flow: None,
        local_sdp: p.sdp.clone(),
        local_cseq: cseq,
    };
    reg.legs.insert(leg, record);
    reg.by_call_id.insert(call_id, Party::Agent(leg));
    Some(tx)
}

/// Reports the end of an unanswered leg (if it is still there).
async fn failed(sh: &Shared, leg: u64, status: Option<u16>) {
    // Every final status is passed on as it came (also `408`, `503`).
    let ev = match status {
        Some(status) => EdgeEvent::LegRefused {
            leg: LegRef(leg),
            status,
        },
        None => EdgeEvent::LegUnreachable { leg: LegRef(leg) },
    };
    let slot = sh.events.slot().await;
    if sh.calls.lock().remove_leg(leg).is_some() {
        tracing::debug!(leg, ?status, "outbound leg failed");
        slot.put(ev);
    }
}

async fn run(p: Plan, sh: Arc<Shared>, leg: u64) {
    let mut auth = None;
    let mut call_id = None;
    for cseq in 1..=2u32 {
        let Some(req) = build(&sh, &p, cseq, call_id.clone(), auth.take()) else {
            return failed(&sh, leg, None).await;
        };
        call_id = req.call_id_header().ok().cloned();
        let uri = req.uri.to_string();
        let Some(mut tx) = start(&sh, leg, &p, req, cseq) else {
            return failed(&sh, leg, Some(487)).await;
        };
        if let Err(e) = tx.send().await {
            tracing::warn!(leg, error = %e, "cannot send the outbound INVITE");
        }
        let mut last = None;
        while let Some(msg) = tx.receive().await {
            let SipMessage::Response(resp) = msg else {
                continue;
            };
            match resp.status_code.kind() {
                StatusCodeKind::Provisional => {
                    let slot = sh.events.slot().await;
                    if let Some((req, conn, dest)) = agent::progress(&sh, leg, &resp, slot) {
                        tokio::spawn(crate::legs::transact(sh.endpoint.clone(), req, conn, dest));
                    }
                }
                StatusCodeKind::Successful => {
                    let slot = sh.events.slot().await;
                    agent::answered(&sh, leg, &resp, slot);
                    last = Some(resp);
                }
                _ if last.is_some() => {}
                _ => last = Some(resp),
            }
        }
        let Some(resp) = last else {
            return failed(&sh, leg, None).await;
        };
        let code = resp.status_code.code();
        if resp.status_code.kind() == StatusCodeKind::Successful {
            return;
        }
        let challenge = resp.headers.iter().find_map(|h| match h {
            Header::WwwAuthenticate(v) if code == 401 => Some((v.value().to_string(), false)),
            Header::ProxyAuthenticate(v) if code == 407 => Some((v.value().to_string(), true)),
            _ => None,
        });
        let answer = match (challenge, &p.credentials, cseq) {
            (Some((challenge, proxy)), Some((user, password)), 1) => {
                let cnonce = sh.next_cnonce();
                crate::digest::answer_challenge(
                    &challenge, "INVITE", &uri, user, password, &cnonce, 1,
                )
                .map(|v| {
                    if proxy {
                        Header::ProxyAuthorization(v.into())
                    } else {
                        Header::Authorization(v.into())
                    }
                })
            }
            _ => None,
        };
        match answer {
            Some(h) => {
                tracing::debug!(leg, code, "trunk challenged the outbound INVITE");
                auth = Some(h);
            }
            None => return failed(&sh, leg, Some(code)).await,
        }
    }
}
