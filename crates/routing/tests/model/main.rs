//! Model-based property tests of the routing core.
//!
//! Random event sequences (logins, readiness, arrivals with priorities and skills, accepts and
//! declines by offered and by unrelated operators, hang-ups, call ends, wrap-up, connection
//! losses, transfers, operators' own calls out and their ends, time advancing through the
//! router's deadlines, and reconfigurations that add or remove an operator or a queue) are
//! applied to small random configurations. After every step:
//!
//! - `Router::check_invariants` must hold;
//! - a reference model, built only from the emitted `Command`s (and the events we sent), must
//!   agree with what the router reports through its public API: agent states, queue figures,
//!   calls in progress;
//! - events the model knows are invalid must come back as the exact `EventError` and produce
//!   no command.
//!
//! At the end every call is hung up or ended, every deadline is run out, and each call must
//! have had exactly one `Outcome` per queue visit.
//!
//! Reproduce a failure with `PROPTEST_RNG_SEED=<seed>`; scale with `PROPTEST_CASES=<n>`
//! (cases per test).
//!
//! Files: `ops` (scenarios and their generators), `reference` (the model and the harness that
//! drives the router with it, a file per part of a step), `coverage` (what the scenarios
//! reached), `props` (the property tests), `regressions` (minimal scenarios of core bugs these
//! tests found).

mod coverage;
mod ops;
mod props;
mod reference;
mod regressions;

const SKILLS: [&str; 3] = ["en", "fr", "de"];
/// Ids far beyond anything the router hands out, for "unknown" inputs.
const UNKNOWN: u32 = 10_000;

fn qname(i: usize) -> String {
    format!("q{i}")
}

fn aname(i: usize) -> String {
    format!("a{i}")
}
