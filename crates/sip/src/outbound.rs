//! Operators' own calls out through a trunk: the UAC leg towards the PBX.
//!
//! The operator's INVITE is held like a PBX's (see `operator_calls`, [`EdgeEvent::Outbound`]);
//! the runtime then places this leg with [`crate::SipEdge::invite_trunk`]. It goes to the
//! trunk the runtime names (else the first configured trunk):
//! `INVITE sip:NUMBER@<pbx ip:port>` sent to the trunk's PBX address, From
//! `<sip:CALLERID@domain>` with the trunk's `caller_id` (else the operator's name) or, for a
//! caller passed on by a transfer or overflow, the caller's own number. One
//! `401`/`407` is answered with the trunk's credentials (a new INVITE, CSeq 2, same Call-ID
//! and From tag).
//!
//! The leg is an ordinary leg of the registry (same record as an operator leg, so CANCEL, BYE,
//! an in-dialog BYE from the PBX and re-INVITEs work unchanged) and reports the same `Leg*`
//! events. From [`crate::SipEdge::invite_trunk`] until the INVITE is built the leg is
//! *dialing* (`Registry::dialing`): a `cancel_agent` or `bye_agent` meanwhile is remembered,
//! and the leg ends as `LegRefused` `487` without an INVITE.
//!
//! ## Transports
//! - **UDP**: from the UDP listener of the PBX's address family, to the PBX's address.
//! - **TCP**: on a connection from homeline to the PBX's address, opened by rsipstack's
//!   transport layer (`TransportLayer::lookup` of a `TCP` `SipAddr`: it dials
//!   (`TcpConnection::connect`, at most 64×T1 here), caches the connection by the PBX's
//!   address and serves it like an accepted one). Later calls, and the trunk's OPTIONS
//!   keepalive, reuse it while it is open; once it closed, the next call dials anew. Via
//!   (`;alias`, RFC 5923) carries the connection's local address, so the PBX answers on it;
//!   Contact (`;transport=TCP`) is homeline's TCP listener (of the PBX's address family), so
//!   in-dialog requests (BYE, re-INVITE) come back on the connection (stacks that reuse
//!   connections by remote address) or on a new one to the listener; either way they
//!   reach the usual request handlers and are matched to the leg by Call-ID and tags
//!   (`legs::match_dialog`), whichever connection they come on. The ACK of a `2xx` goes on
//!   the connection the `2xx` came on (rsipstack reuses a reliable one); our CANCEL and BYE
//!   on the leg's connection. If the connection closes before the PBX answered, the leg is
//!   unreachable at once (`agent::flow_closed`).
//!
//!   Limits: rsipstack closes a
//!   stream that received nothing for its idle timeout (`sip.max_expires` + 2 min, set in
//!   `edge`); the trunk's OPTIONS keepalive rides the same connection and keeps it busy.
//!   With the keepalive off, an answered call that outlives the timeout loses its
//!   connection, and its BYE (either side's) cannot be delivered.
//!
//! A `180`/`183` without SDP is reported as `LegRinging`; the first one with SDP (early
//! media: the PBX's ringback or an announcement) as `LegEarlyMedia` with that SDP (see
//! `fork`), and the runtime may answer its own side with `183` too
//! ([`crate::SipEdge::progress_pbx`]).

use crate::agent::{AgentLeg, Branch, Cancel, LegPhase};
use crate::edge::Shared;
use crate::edge::{flow_id, flow_key};
use crate::fork::{self, Progress};
use crate::legs::{EdgeEvent, LegRef, Party};
use crate::registrar::FlowId;
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
use std::net::SocketAddr;
use std::sync::Arc;

/// What the INVITE is built from (kept to rebuild it with credentials).
struct Plan {
    target: Uri,
    from: typed::From,
    to: typed::To,
    transport: TrunkTransport,
    pbx: SocketAddr,
    sdp: Vec<u8>,
    credentials: Option<(String, String)>,
}

/// How the INVITE reaches the PBX: the connection (a UDP listener or a TCP connection to the
/// PBX), the destination, our Contact on it, and the TCP connection's flow.
struct Path {
    conn: SipConnection,
    dest: SipAddr,
    contact: String,
    flow: Option<FlowId>,
}

/// Who an outbound leg presents itself as (the From user).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundFrom<'a> {
    /// An operator's own call: the trunk's `caller_id`, else the operator's name.
    Operator(&'a str),
    /// This number as it is: a caller passed on (a transfer or an overflow to an outside
    /// number: the caller's own number, so the target sees who is calling), or an operator's
    /// own `caller_id` (which comes before the trunk's).
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
    let sh = sh.clone();
    match plan(&sh, trunk, number, from, sdp) {
        Ok(plan) => {
            {
                let mut reg = sh.calls.lock();
                if reg.legs.contains_key(&leg) || reg.dialing.contains_key(&leg) {
                    tracing::warn!(leg, "invite_trunk for a leg that is already live: ignored");
                    return;
                }
                reg.dialing.insert(leg, false);
            }
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
    Ok(Plan {
        target,
        from,
        to,
        transport: trunk.transport,
        pbx: trunk.pbx,
        sdp,
        credentials: trunk.credentials.clone(),
    })
}

/// Where the PBX can reach us over TCP: our TCP listener of the PBX's address family (its
/// address, or the connection's local IP when it listens on all addresses), so that a PBX
/// that opens a new connection for its in-dialog requests finds one; the connection's own
/// address when there is no such listener.
fn tcp_contact(sh: &Shared, conn: &SipConnection, pbx: SocketAddr) -> SipAddr {
    let local = conn.get_addr().get_socketaddr().ok();
    let listener = sh
        .settings
        .tcp
        .iter()
        .find(|l| l.is_ipv6() == pbx.is_ipv6());
    match (listener, local) {
        (Some(l), Some(local)) => {
            let ip = if l.ip().is_unspecified() {
                local.ip()
            } else {
                l.ip()
            };
            SipAddr::new(
                rsipstack::sip::Transport::Tcp,
                SocketAddr::new(ip, l.port()).into(),
            )
        }
        _ => conn.get_addr().clone(),
    }
}

/// The way to the trunk's PBX: over TCP, an open connection to it (reused) or a new one.
async fn connect(sh: &Shared, p: &Plan) -> Result<Path, String> {
    let (conn, dest, flow) = match p.transport {
        TrunkTransport::Udp => {
            let conn = sh
                .udp_listener(None, p.pbx.is_ipv6())
                .ok_or("no UDP listener for the trunk")?;
            let dest = SipAddr::new(rsipstack::sip::Transport::Udp, p.pbx.into());
            (conn, dest, None)
        }
        TrunkTransport::Tcp => {
            let target = SipAddr::new(rsipstack::sip::Transport::Tcp, p.pbx.into());
            let limit = sh.settings.t1 * 64;
            let lookup = sh.endpoint.transport_layer.lookup(&target, None);
            let (conn, dest) = tokio::time::timeout(limit, lookup)
                .await
                .map_err(|_| format!("no TCP connection to the PBX within {limit:?}"))?
                .map_err(|e| format!("cannot connect to the PBX: {e}"))?;
            if !conn.is_reliable() {
                return Err("the transport layer gave no TCP connection".into());
            }
            let flow = conn.get_remote_addr().map(|r| flow_id(&flow_key(r)));
            (conn, dest, flow)
        }
    };
    let contact = match p.transport {
        TrunkTransport::Udp => sipmsg::our_contact(conn.get_addr()),
        TrunkTransport::Tcp => sipmsg::our_contact(&tcp_contact(sh, &conn, p.pbx)),
    };
    Ok(Path {
        conn,
        dest,
        contact,
        flow,
    })
}

/// The INVITE with `cseq`, `call_id` (none: a new one) and an `Authorization`.
fn build(
    sh: &Shared,
    p: &Plan,
    path: &Path,
    cseq: u32,
    call_id: Option<headers::CallId>,
    auth: Option<Header>,
) -> Option<Request> {
    let via = sh
        .endpoint
        .get_via(Some(path.conn.get_addr().clone()), None)
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
    req.headers
        .push(Header::Contact(path.contact.clone().into()));
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
/// `None` when the leg went (cancelled while dialing or before the retry) or the request is
/// unusable.
fn start(
    sh: &Shared,
    leg: u64,
    p: &Plan,
    path: &Path,
    req: Request,
    cseq: u32,
) -> Option<Transaction> {
    let call_id = req.call_id_header().ok()?.value().to_string();
    let key = TransactionKey::from_request(&req, TransactionRole::Client).ok()?;
    let mut tx = Transaction::new_client(
        key.clone(),
        req.clone(),
        sh.endpoint.clone(),
        Some(path.conn.clone()),
    );
    tx.destination = Some(path.dest.clone());
    let local_tag = p.from.tag()?.value().to_string();
    let mut reg = sh.calls.lock();
    if cseq > 1 {
        let l = reg.legs.get_mut(&leg)?;
        let b = l.branches.first_mut()?;
        if b.cancel != Cancel::No {
            return None;
        }
        b.invite = req;
        b.phase = LegPhase::Calling;
        b.tu = tx.tu_sender.clone();
        b.key = key;
        l.phase = LegPhase::Calling;
        l.local_cseq = cseq;
        return Some(tx);
    }
    if reg.dialing.get(&leg) != Some(&false) {
        return None;
    }
    reg.dialing.remove(&leg);
    let branch = Branch::new(&tx, path.contact.clone(), path.flow)?;
    let record = AgentLeg::new(
        call_id.clone(),
        local_tag,
        vec![branch],
        p.sdp.clone(),
        cseq,
    );
    reg.legs.insert(leg, record);
    reg.by_call_id.insert(call_id, Party::Agent(leg));
    Some(tx)
}

/// Reports the end of an unanswered (or still dialing) leg, if it is still there.
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
    let mut reg = sh.calls.lock();
    if reg.remove_leg(leg).is_some() || reg.dialing.remove(&leg).is_some() {
        tracing::debug!(leg, ?status, "outbound leg failed");
        slot.put(ev);
    }
}

async fn run(p: Plan, sh: Arc<Shared>, leg: u64) {
    let path = match connect(&sh, &p).await {
        Ok(path) => path,
        Err(why) => {
            tracing::info!(leg, error = %why, "outbound call cannot be placed");
            return failed(&sh, leg, None).await;
        }
    };
    let mut auth = None;
    let mut call_id = None;
    for cseq in 1..=2u32 {
        let Some(req) = build(&sh, &p, &path, cseq, call_id.clone(), auth.take()) else {
            return failed(&sh, leg, None).await;
        };
        call_id = req.call_id_header().ok().cloned();
        let uri = req.uri.to_string();
        let Some(mut tx) = start(&sh, leg, &p, &path, req, cseq) else {
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
                    if let Progress::Cancel(out) = fork::progress(&sh, leg, 0, &resp, slot) {
                        let (req, conn, dest) = *out;
                        tokio::spawn(crate::legs::transact(sh.endpoint.clone(), req, conn, dest));
                    }
                }
                StatusCodeKind::Successful => {
                    let slot = sh.events.slot().await;
                    // One branch: a retransmission or a leg already gone changes nothing.
                    let _ = fork::answered(&sh, leg, 0, &resp, slot);
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
