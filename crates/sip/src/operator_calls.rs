//! Calls from operators: an INVITE from a registered operator's softphone rather than from a
//! trunk. It is authenticated by digest exactly like a REGISTER (challenged `401` with the
//! configured algorithms, checked against the operator's credentials, and the From user must
//! be the authenticated user). Then its Request-URI user decides:
//!
//! - a feature code ([`FeatureCodes`]): the INVITE is held as a call (like a PBX's, see
//!   `pbx`) and handed to the runtime as [`EdgeEvent::FeatureCode`]; the runtime answers it
//!   with a short tone and hangs up (`answer_pbx`, `bye_pbx` on its [`crate::CallRef`]);
//! - a number (digits, `+`, `*`, `#`) when a trunk is configured: an outbound call, held
//!   the same way and handed over as [`EdgeEvent::Outbound`]; the runtime places the leg
//!   towards the trunk (`invite_trunk`, see `outbound`) and answers or refuses the
//!   operator's INVITE with its outcome;
//! - anything else: `404`.
//!
//! An INVITE is taken for an operator's when no trunk accepts its source alone, or when it
//! comes from the very address an operator registered from (a softphone on a trunk's
//! network, e.g. on loopback).

use crate::digest::AuthError;
use crate::edge::{self, Shared, lock};
use crate::legs::{CallRef, EdgeEvent};
use crate::pbx;
use crate::sipmsg;
use crate::stats::SipStats;
use rsipstack::sip::StatusCode;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::transaction::transaction::Transaction;
use std::net::SocketAddr;

/// What a feature code asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    /// Go Ready.
    Ready,
    /// Go Not Ready.
    NotReady,
    /// Log out.
    Logout,
}

impl Feature {
    pub fn as_str(self) -> &'static str {
        match self {
            Feature::Ready => "ready",
            Feature::NotReady => "not_ready",
            Feature::Logout => "logout",
        }
    }
}

/// The codes operators dial for each [`Feature`] (the user part of the Request-URI,
/// compared after percent-decoding, so `#` may come as `%23`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureCodes {
    pub ready: String,
    pub not_ready: String,
    pub logout: String,
}

impl Default for FeatureCodes {
    /// `*1`, `*2`, `*3`.
    fn default() -> Self {
        FeatureCodes {
            ready: "*1".into(),
            not_ready: "*2".into(),
            logout: "*3".into(),
        }
    }
}

impl FeatureCodes {
    /// The feature `dialled` (already decoded) names, if any.
    pub fn feature(&self, dialled: &str) -> Option<Feature> {
        [
            (&self.ready, Feature::Ready),
            (&self.not_ready, Feature::NotReady),
            (&self.logout, Feature::Logout),
        ]
        .into_iter()
        .find(|(code, _)| !code.is_empty() && code.as_str() == dialled)
        .map(|(_, f)| f)
    }
}

/// Whether `number` may be sent to a trunk: digits, `+`, `*`, `#` (1 to 32 of them).
fn dialable(number: &str) -> bool {
    (1..=32).contains(&number.len())
        && number
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '*' | '#'))
}

/// Whether `source` is where `user` (the From user) registered from: the INVITE is then an
/// operator's even if a trunk's network holds that address.
pub(crate) fn from_a_binding(sh: &Shared, req_from_user: &str, source: SocketAddr) -> bool {
    lock(&sh.registrar)
        .lookup(req_from_user)
        .iter()
        .any(|b| b.source == source)
}

/// An INVITE from an operator (`100 Trying` already sent): `Some(call)` when it is held and
/// the runtime has it (drive it with `pbx::run`), `None` when answered here.
pub(crate) async fn invite(
    tx: &mut Transaction,
    sh: &Shared,
    source: SocketAddr,
) -> rsipstack::Result<Option<u64>> {
    let header = tx
        .original
        .authorization_header()
        .map(|h| h.value().to_string());
    let verified = sh.verify_user("INVITE", header.as_deref());
    let user = match verified {
        Ok((user, _)) => user,
        Err(e) => {
            if e == AuthError::Rejected {
                let total = SipStats::bump(&sh.stats.forbidden_source);
                tracing::warn!(total, from = %source.ip(), "INVITE from no trunk or operator");
            }
            return edge::refuse(tx, sh, e).await.map(|()| None);
        }
    };
    let from_user = sipmsg::caller_user(&tx.original);
    if from_user != user {
        SipStats::bump(&sh.stats.auth_failures);
        SipStats::bump(&sh.stats.forbidden_source);
        tracing::info!(user, "operator INVITE with another user in From: 403");
        return tx.reply(StatusCode::Forbidden).await.map(|()| None);
    }
    if lock(&sh.registrar).lookup(&user).is_empty() {
        SipStats::bump(&sh.stats.forbidden_source);
        tracing::info!(user, "INVITE from an operator who is not registered: 403");
        return tx.reply(StatusCode::Forbidden).await.map(|()| None);
    }
    let dialled = sipmsg::unescape(tx.original.uri.user().unwrap_or_default());
    let feature = sh.settings.features.feature(&dialled);
    if feature.is_none() && (sh.settings.trunks.is_empty() || !dialable(&dialled)) {
        tracing::info!(
            user,
            "operator dialled a number homeline does not serve: 404"
        );
        return tx.reply(StatusCode::NotFound).await.map(|()| None);
    }
    if !sh.events.taken() {
        return pbx::refuse(tx, sh, 480).await;
    }
    let Some(id) = pbx::hold(tx, sh) else {
        return pbx::refuse(tx, sh, 400).await;
    };
    let offer = (!tx.original.body.is_empty()).then(|| tx.original.body.clone());
    let Some(feature) = feature else {
        tracing::info!(user, call = id, "operator places an outbound call");
        let ev = EdgeEvent::Outbound {
            call: CallRef(id),
            user,
            number: dialled,
            offer,
        };
        return pbx::offer(tx, sh, id, ev).await;
    };
    tracing::info!(
        user,
        feature = feature.as_str(),
        call = id,
        "feature code dialled"
    );
    let ev = EdgeEvent::FeatureCode {
        call: CallRef(id),
        user,
        feature,
        offer,
    };
    pbx::offer(tx, sh, id, ev).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_name_their_feature() {
        let codes = FeatureCodes {
            ready: "*1".into(),
            not_ready: "#72".into(),
            logout: "*3".into(),
        };
        assert_eq!(codes.feature("*1"), Some(Feature::Ready));
        assert_eq!(codes.feature("#72"), Some(Feature::NotReady));
        assert_eq!(codes.feature("*3"), Some(Feature::Logout));
        assert_eq!(codes.feature("*2"), None);
        assert_eq!(codes.feature(""), None);
        assert_eq!(Feature::NotReady.as_str(), "not_ready");
        let empty = FeatureCodes {
            ready: String::new(),
            ..FeatureCodes::default()
        };
        assert_eq!(empty.feature(""), None, "an empty code matches nothing");
    }
}
