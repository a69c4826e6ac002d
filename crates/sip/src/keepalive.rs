//! The trunks' OPTIONS keepalive: each trunk with an `options_interval` gets an OPTIONS to
//! its PBX that often, over the trunk's transport (UDP from the listener of the PBX's address
//! family; TCP on the connection rsipstack's transport layer keeps to the PBX, shared with
//! outbound legs). A `401`/`407` is answered once with the trunk's credentials. Any final
//! response but `408`/`503` means up; `408`, `503`, no response or a transport error means
//! down. Changes between up and down are logged, and [`SipEdge::trunk_status`] reports the
//! last state; nothing else depends on it (calls are not steered by it).

use crate::edge::{Shared, SipEdge};
use crate::trunks::{TrunkSpec, TrunkTransport};
use rsipstack::platform::CancellationToken;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Method, StatusCodeKind, Uri};
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::make_tag;
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::SipAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// The last keepalive state of each trunk, in the order of the settings.
#[derive(Debug)]
pub(crate) struct TrunkStates(Vec<AtomicU8>);

impl TrunkStates {
    pub(crate) fn new(trunks: usize) -> TrunkStates {
        TrunkStates((0..trunks).map(|_| AtomicU8::new(UNKNOWN)).collect())
    }
}

/// Starts the keepalive task of every trunk that has an `options_interval`.
pub(crate) fn spawn(
    sh: &Arc<Shared>,
    token: &CancellationToken,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) {
    for (i, trunk) in sh.settings.trunks.iter().enumerate() {
        if let Some(every) = trunk.options_interval {
            let (sh, token) = (sh.clone(), token.clone());
            tasks.push(tokio::spawn(ping_every(sh, i, every, token)));
        }
    }
}

impl SipEdge {
    /// Each trunk with its keepalive state: `Some(true)` up, `Some(false)` down, `None` not
    /// known yet (or no keepalive).
    pub fn trunk_status(&self) -> Vec<(String, Option<bool>)> {
        let sh = &self.shared;
        sh.settings
            .trunks
            .iter()
            .zip(&sh.trunk_state.0)
            .map(|(t, s)| {
                let state = match s.load(Ordering::Relaxed) {
                    UP => Some(true),
                    DOWN => Some(false),
                    _ => None,
                };
                (t.name.clone(), state)
            })
            .collect()
    }
}

/// Pings trunk `i` with OPTIONS every `every`, logging changes between up and down.
async fn ping_every(sh: Arc<Shared>, i: usize, every: Duration, token: CancellationToken) {
    let trunk = &sh.settings.trunks[i];
    loop {
        let up = ping(&sh, trunk).await;
        let new = if up { UP } else { DOWN };
        let old = sh.trunk_state.0[i].swap(new, Ordering::Relaxed);
        if old != new {
            if up {
                tracing::info!(trunk = %trunk.name, pbx = %trunk.pbx, "trunk up");
            } else {
                tracing::warn!(trunk = %trunk.name, pbx = %trunk.pbx, "trunk down");
            }
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// One OPTIONS to a trunk's PBX: up if it answered anything but a timeout or failure.
async fn ping(sh: &Shared, trunk: &TrunkSpec) -> bool {
    match options_to(sh, trunk).await {
        Ok(code) => !matches!(code, 408 | 503),
        Err(e) => {
            tracing::debug!(trunk = %trunk.name, error = %e, "OPTIONS ping failed");
            false
        }
    }
}

/// One OPTIONS to a trunk's PBX, answering a digest challenge once with the trunk's
/// credentials; returns the final status.
async fn options_to(sh: &Shared, trunk: &TrunkSpec) -> rsipstack::Result<u16> {
    let (transport, suffix) = match trunk.transport {
        TrunkTransport::Udp => (rsipstack::sip::Transport::Udp, ""),
        TrunkTransport::Tcp => (rsipstack::sip::Transport::Tcp, ";transport=tcp"),
    };
    let v6 = trunk.pbx.is_ipv6();
    let local = sh
        .endpoint
        .transport_layer
        .get_listen_addrs()
        .into_iter()
        .find(|a| {
            a.r#type == Some(transport) && a.get_socketaddr().is_ok_and(|s| s.is_ipv6() == v6)
        })
        .ok_or_else(|| rsipstack::Error::Error("no listener for the trunk's transport".into()))?;
    let target = Uri::try_from(format!("sip:{}{suffix}", trunk.pbx).as_str())?;
    let from = rsipstack::sip::typed::From {
        display_name: None,
        uri: Uri::try_from(format!("sip:homeline@{}", local.addr).as_str())?,
        params: vec![rsipstack::sip::Param::Tag(make_tag())],
    };
    let to = rsipstack::sip::typed::To {
        display_name: None,
        uri: target.clone(),
        params: vec![],
    };
    let mut authorization: Option<Header> = None;
    let mut call_id = None;
    for cseq in 1..=2 {
        let via = sh.endpoint.get_via(Some(local.clone()), None)?;
        let mut req = sh.endpoint.make_request(
            Method::Options,
            target.clone(),
            via,
            from.clone(),
            to.clone(),
            cseq,
            call_id.clone(),
        );
        call_id = req.call_id_header().ok().cloned();
        if let Some(h) = authorization.take() {
            req.headers.push(h);
        }
        let key = TransactionKey::from_request(&req, TransactionRole::Client)?;
        let conn = match trunk.transport {
            TrunkTransport::Udp => sh.udp_listener(None, v6),
            TrunkTransport::Tcp => None,
        };
        let mut tx = Transaction::new_client(key, req, sh.endpoint.clone(), conn);
        tx.destination = Some(SipAddr::new(transport, trunk.pbx.into()));
        tx.send().await?;
        let mut last = None;
        while let Some(msg) = tx.receive().await {
            if let rsipstack::sip::SipMessage::Response(r) = msg
                && r.status_code.kind() != StatusCodeKind::Provisional
            {
                last = Some(r);
                break;
            }
        }
        let Some(r) = last else { break };
        let code = u16::from(r.status_code.clone());
        let challenge = r.headers.iter().find_map(|h| match h {
            Header::WwwAuthenticate(v) if code == 401 => Some((v.value().to_string(), false)),
            Header::ProxyAuthenticate(v) if code == 407 => Some((v.value().to_string(), true)),
            _ => None,
        });
        match (challenge, &trunk.credentials, cseq) {
            (Some((challenge, proxy)), Some((user, password)), 1) => {
                let cnonce = sh.next_cnonce();
                let uri = target.to_string();
                let Some(value) = crate::digest::answer_challenge(
                    &challenge, "OPTIONS", &uri, user, password, &cnonce, 1,
                ) else {
                    return Ok(code);
                };
                authorization = Some(if proxy {
                    Header::ProxyAuthorization(value.into())
                } else {
                    Header::Authorization(value.into())
                });
            }
            _ => return Ok(code),
        }
    }
    Err(rsipstack::Error::Error("no final response".into()))
}
