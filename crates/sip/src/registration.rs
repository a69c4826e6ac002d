//! Registrations at run time: the REGISTER handler (digest check, then the pure
//! `registrar`, then events), and the housekeeping task that removes bindings whose TCP
//! connection closed or whose registration expired. `Registered` is sent when an operator's
//! first binding appears, `Unregistered` when the last one goes, each decided under the
//! registrar's lock so that the two come in the order of the changes.

use crate::agent;
use crate::edge::{Shared, flow_id, flow_key, lock, refuse, source_of};
use crate::legs::EdgeEvent;
use crate::registrar::{
    Binding, ContactSpec, Contacts, RegisterError, RegisterRequest, Registrar, Transport,
};
use crate::stats::SipStats;
use rsipstack::platform::CancellationToken;
use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
use rsipstack::sip::{Header, StatusCode};
use rsipstack::transaction::transaction::Transaction;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Removes the bindings of connections that closed (keys from the transport inspector)
/// and, every second, the expired ones; until `token` is cancelled.
pub(crate) async fn housekeeping(
    sh: Arc<Shared>,
    mut closed_rx: mpsc::UnboundedReceiver<String>,
    token: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            key = closed_rx.recv() => {
                let Some(key) = key else { break };
                let flow = flow_id(&key);
                lock(&sh.flows).remove(&flow);
                agent::flow_closed(&sh, flow);
                let gone = {
                    let mut reg = lock(&sh.registrar);
                    let gone = reg.remove_flow(flow);
                    for (user, b) in &gone {
                        tracing::info!(user, transport = b.transport.as_str(), "unregistered: connection closed");
                    }
                    last_gone(&reg, gone)
                };
                report_unregistered(&sh, gone).await;
            }
            _ = tick.tick() => {
                let gone = {
                    let mut reg = lock(&sh.registrar);
                    let gone = reg.expire(Instant::now());
                    for (user, b) in &gone {
                        tracing::info!(user, transport = b.transport.as_str(), "registration expired");
                    }
                    last_gone(&reg, gone)
                };
                report_unregistered(&sh, gone).await;
            }
        }
    }
}

/// The users among `gone` left with no binding.
pub(crate) fn last_gone(reg: &Registrar, gone: Vec<(String, Binding)>) -> Vec<String> {
    let mut users: Vec<String> = gone.into_iter().map(|(u, _)| u).collect();
    users.sort();
    users.dedup();
    users.retain(|u| reg.lookup(u).is_empty());
    users
}

/// Reports `users` unregistered, each unless it registered again meanwhile (the event is
/// decided under the registrar's lock, in order with `Registered`).
pub(crate) async fn report_unregistered(sh: &Shared, users: Vec<String>) {
    for user in users {
        let slot = sh.events.slot().await;
        let reg = lock(&sh.registrar);
        if reg.lookup(&user).is_empty() {
            slot.put(EdgeEvent::Unregistered { user });
        }
    }
}

pub(crate) async fn register(tx: &mut Transaction, sh: &Shared) -> rsipstack::Result<()> {
    let req = &tx.original;
    let header = req.authorization_header().map(|h| h.value().to_string());
    let verified = sh.verify_user("REGISTER", header.as_deref());
    let (user, algorithm) = match verified {
        Ok(v) => v,
        Err(e) => return refuse(tx, sh, e).await,
    };
    let to_user = req
        .to_header()
        .ok()
        .and_then(|t| t.typed().ok())
        .and_then(|t| t.uri.user().map(str::to_string));
    if to_user.as_deref() != Some(user.as_str()) {
        SipStats::bump(&sh.stats.auth_failures);
        return tx.reply(StatusCode::Forbidden).await;
    }
    let Some(parsed) = parse_register(tx) else {
        crate::guard::note_malformed(
            &sh.stats,
            source_of(tx).map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |s| s.0),
            "bad REGISTER",
        );
        return tx.reply(StatusCode::BadRequest).await;
    };
    let now = Instant::now();
    let flow = match (parsed.transport, source_of(tx)) {
        (Transport::Tcp, Some((_, _, conn))) => {
            conn.get_remote_addr().map(|r| (flow_key(r), conn.clone()))
        }
        _ => None,
    };
    let slot = sh.events.slot().await;
    let result = {
        let mut reg = lock(&sh.registrar);
        let before = !reg.lookup(&user).is_empty();
        let result = reg.register(&user, &parsed, now);
        let after = !reg.lookup(&user).is_empty();
        // The flow before the event: the runtime may call the operator at once.
        if result.is_ok()
            && let Some((key, conn)) = flow
        {
            lock(&sh.flows).insert(flow_id(&key), conn);
        }
        if !before && after {
            slot.put(EdgeEvent::Registered { user: user.clone() });
        } else if before && !after {
            slot.put(EdgeEvent::Unregistered { user: user.clone() });
        }
        result
    };
    match result {
        Err(RegisterError::IntervalTooBrief { min_secs }) => {
            let h = vec![Header::MinExpires(min_secs.to_string().into())];
            tx.reply_with(StatusCode::IntervalTooBrief, h, None).await
        }
        Err(RegisterError::BadRequest(_)) => tx.reply(StatusCode::BadRequest).await,
        Err(RegisterError::OutOfOrder) => tx.reply(StatusCode::ServerInternalError).await,
        Ok(changes) => {
            SipStats::bump(&sh.stats.registrations);
            for b in changes.added.iter().chain(&changes.refreshed) {
                let expires = b.expires_at.saturating_duration_since(now).as_secs();
                tracing::info!(
                    user,
                    algorithm = algorithm.token(),
                    transport = b.transport.as_str(),
                    expires,
                    "registered"
                );
            }
            for b in &changes.removed {
                tracing::info!(user, transport = b.transport.as_str(), "unregistered");
            }
            let bindings: Vec<Header> = lock(&sh.registrar)
                .lookup(&user)
                .iter()
                .map(|b| {
                    let left = b.expires_at.saturating_duration_since(now).as_secs();
                    Header::Contact(format!("<{}>;expires={left}", b.uri).into())
                })
                .collect();
            tx.reply_with(StatusCode::OK, bindings, None).await
        }
    }
}

/// The registrar's view of a REGISTER; `None` if it is malformed.
fn parse_register(tx: &Transaction) -> Option<RegisterRequest> {
    let req = &tx.original;
    let (source, transport, conn) = source_of(tx)?;
    let raw: Vec<&str> = req
        .headers
        .iter()
        .filter_map(|h| match h {
            Header::Contact(c) => Some(c.value()),
            _ => None,
        })
        .collect();
    let contacts = if raw.is_empty() {
        Contacts::Query
    } else if raw.len() == 1 && raw[0].trim() == "*" {
        Contacts::Wildcard
    } else {
        let list = req.typed_contact_headers().ok()?;
        Contacts::List(
            list.iter()
                .map(|c| ContactSpec {
                    uri: c.uri.to_string(),
                    expires: c.expires(),
                })
                .collect(),
        )
    };
    let expires = match req.expires_header() {
        Some(h) => Some(h.value().trim().parse::<u32>().ok()?),
        None => None,
    };
    let call_id = req.call_id_header().ok()?.value().to_string();
    let cseq = req.cseq_header().ok()?.seq().ok()?;
    let flow = match transport {
        Transport::Udp => 0,
        Transport::Tcp => flow_id(&flow_key(conn.get_remote_addr()?)),
    };
    let local = conn.get_addr().get_socketaddr().ok();
    Some(RegisterRequest {
        contacts,
        expires,
        call_id,
        cseq,
        source,
        transport,
        flow,
        local,
    })
}
