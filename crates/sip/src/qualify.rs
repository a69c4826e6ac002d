//! Operator qualify: an OPTIONS to every registered device, as Asterisk's
//! `qualify_frequency` does, to find devices that went away without unregistering (a phone
//! switched off, a laptop closed, a home line down). It also keeps the home router's NAT
//! mapping open, so that INVITEs still reach a phone behind it.
//!
//! Every `qualify_interval` (`EdgeSettings::qualify_interval`; zero: off) after the previous
//! round ended, each binding gets one OPTIONS, the way an INVITE would reach it (over UDP
//! from the listener its REGISTER reached, to its source address; over TCP on its
//! connection), all at once. Any final response counts as alive, an error such as `404` or
//! `405` too, except a `408` or `503` without a To tag: rsipstack's own report of a timeout
//! or of a TCP write that failed. A device that gives no final response within
//! [`QUALIFY_TIMEOUT`] (5 s, or the transaction timeout 64×T1 when that is shorter) is
//! removed from the registrar, unless it registered again meanwhile; an operator left
//! without a binding is reported `Unregistered` (the runtime makes them Not Ready; their
//! next REGISTER brings `Registered` again). 5 s rather than 64×T1 (32 s by default): a
//! device that does not answer an OPTIONS within 5 s would not answer an INVITE in time
//! either, and the operator should stop being offered calls soon. TCP devices are also
//! removed when their connection closes (`registration`); a binding whose connection or
//! listener is gone is left to that.

use crate::agent;
use crate::edge::{Shared, lock};
use crate::registrar::Binding;
use crate::registration::{last_gone, report_unregistered};
use crate::sipmsg;
use rsipstack::platform::CancellationToken;
use rsipstack::sip::{Method, Param, SipMessage, StatusCodeKind, Uri, typed};
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::make_tag;
use rsipstack::transaction::transaction::Transaction;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// How long a device has to answer an OPTIONS (at most 64×T1).
pub(crate) const QUALIFY_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the qualify task, unless the interval is zero.
pub(crate) fn spawn(
    sh: &Arc<Shared>,
    token: &CancellationToken,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) {
    let every = sh.settings.qualify_interval;
    if every.is_zero() {
        return;
    }
    tasks.push(tokio::spawn(rounds(sh.clone(), every, token.clone())));
}

/// Qualifies every binding, `every` after the previous round ended, until `token` is
/// cancelled (the pings in flight are dropped with the round).
async fn rounds(sh: Arc<Shared>, every: Duration, token: CancellationToken) {
    let limit = QUALIFY_TIMEOUT.min(sh.settings.t1 * 64);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let mut round = JoinSet::new();
        for (user, b) in lock(&sh.registrar).all() {
            let sh = sh.clone();
            round.spawn(async move {
                let alive = ping(&sh, &user, &b, limit).await;
                (user, b, alive)
            });
        }
        let mut dead = Vec::new();
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                done = round.join_next() => match done {
                    Some(Ok((user, b, false))) => dead.push((user, b)),
                    Some(_) => {}
                    None => break,
                },
            }
        }
        if dead.is_empty() {
            continue;
        }
        let gone = {
            let mut reg = lock(&sh.registrar);
            let mut gone = Vec::new();
            for (user, b) in dead {
                if let Some(removed) = reg.remove_stale(&user, &b.uri, b.updated) {
                    tracing::info!(
                        user,
                        transport = removed.transport.as_str(),
                        "unregistered: no answer to OPTIONS"
                    );
                    gone.push((user, removed));
                }
            }
            last_gone(&reg, gone)
        };
        report_unregistered(&sh, gone).await;
    }
}

/// One OPTIONS to binding `b` of `user`: whether it answered within `limit` (see the
/// module docs). `true` when it cannot be sent there at all (nothing to judge it by).
async fn ping(sh: &Shared, user: &str, b: &Binding, limit: Duration) -> bool {
    let Ok((conn, dest, _)) = agent::route(sh, b) else {
        return true;
    };
    let domain = &sh.settings.domain;
    let (Ok(target), Some(from_uri)) = (
        Uri::try_from(b.uri.as_str()),
        sipmsg::user_uri("homeline", domain),
    ) else {
        return true;
    };
    let Ok(via) = sh.endpoint.get_via(Some(conn.get_addr().clone()), None) else {
        return true;
    };
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
    let req = sh
        .endpoint
        .make_request(Method::Options, target, via, from, to, 1, None);
    let Ok(key) = TransactionKey::from_request(&req, TransactionRole::Client) else {
        return true;
    };
    let mut tx = Transaction::new_client(key, req, sh.endpoint.clone(), Some(conn));
    tx.destination = Some(dest);
    let answer = tokio::time::timeout(limit, async {
        tx.send().await.ok()?;
        while let Some(msg) = tx.receive().await {
            if let SipMessage::Response(r) = msg
                && r.status_code.kind() != StatusCodeKind::Provisional
            {
                return Some(r);
            }
        }
        None
    })
    .await;
    match answer {
        Ok(Some(r)) => {
            let status = r.status_code.code();
            let local = matches!(status, 408 | 503) && sipmsg::to_tag(&r).is_none();
            tracing::debug!(user, status, local, "OPTIONS to an operator answered");
            !local
        }
        _ => {
            tracing::debug!(user, source = %b.source, "no answer to OPTIONS");
            false
        }
    }
}
