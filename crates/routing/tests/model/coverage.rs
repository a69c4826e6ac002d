//! Coverage: what the generated scenarios actually exercised (asserted by `model_coverage`, so
//! the generator cannot silently stop reaching a feature).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Clone, Copy, Debug)]
pub(crate) enum Cov {
    Answered,
    Abandoned,
    OverflowQueue,
    OverflowExternal,
    OverflowNone,
    Transferred,
    RejectNoAgents,
    RejectQueueClosed,
    RingTimeout,
    Declined,
    NoAnswer1,
    NoAnswer2,
    AnsweredElsewhere,
    RelaxedOffer,
    WrapUpTimeout,
    Reconfigured,
    ExpectedError,
    LateTimeout,
    TransferConnected,
    NotOffered,
    Mutated,
    OwnCall,
    OwnCallWhileRinging,
    OwnCallBackToWrapUp,
    OwnCallThenLogout,
}

pub(crate) const COV_NAMES: [&str; 25] = [
    "answered",
    "abandoned",
    "overflow-queue",
    "overflow-external",
    "overflow-none",
    "transferred",
    "reject-no-agents",
    "reject-queue-closed",
    "ring-timeout",
    "declined",
    "no-answer(max_misses=1)",
    "no-answer(max_misses=2)",
    "answered-elsewhere",
    "offer-after-relax",
    "wrap-up-timeout",
    "reconfigured",
    "expected-error",
    "late-timeout",
    "transfer-connected",
    "not-offered-error",
    "config-changed",
    "own-call",
    "own-call-while-ringing",
    "own-call-back-to-wrap-up",
    "own-call-then-logout",
];

pub(crate) static COVERAGE: [AtomicU64; 25] = [const { AtomicU64::new(0) }; 25];

pub(crate) fn cov(c: Cov) {
    COVERAGE[c as usize].fetch_add(1, Relaxed);
}
