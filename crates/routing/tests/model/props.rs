//! The property tests: scenarios run against the reference model.

use crate::coverage::*;
use crate::ops::*;
use crate::reference::run;
use homeline_routing::Strategy as Policy;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use std::sync::atomic::Ordering::Relaxed;

fn config(default_cases: u32) -> Config {
    let mut c = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = default_cases;
    }
    if c.rng_seed == RngSeed::Random {
        c.rng_seed = RngSeed::Fixed(0x0005_EED0_F4CD);
    }
    c.failure_persistence = None;
    c
}

thread_local! {
    /// Set while proptest runs and shrinks cases on this thread: their panics are expected and
    /// reported once, with the minimal case, at the end.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn run_cases(cases: u32, g: Gen) {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                default(info)
            }
        }));
    });
    let mut runner = TestRunner::new(config(cases));
    QUIET.with(|q| q.set(true));
    let result = runner.run(&scenario_strategy(g), |s| {
        run(&s);
        Ok(())
    });
    QUIET.with(|q| q.set(false));
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Random strategies per queue, long sequences.
#[test]
fn model_mixed_strategies() {
    run_cases(96, BASIC);
}

/// Reconfigurations that change parameters of queues and operators at run time (strategy,
/// ring timeout, wrap-up, when-empty, max misses, overflow target, required skills,
/// operator skills, memberships and penalties).
#[test]
fn model_config_changes() {
    run_cases(
        96,
        Gen {
            mutations: true,
            ..BASIC
        },
    );
}

/// Queue 0 uses each strategy in turn.
#[test]
fn model_each_strategy() {
    for focus in Policy::ALL {
        run_cases(
            20,
            Gen {
                focus: Some(focus),
                max_ops: 200,
                ..BASIC
            },
        );
    }
}

/// Call ids re-used once the earlier call with that id has ended.
#[test]
fn model_reused_call_ids() {
    run_cases(
        96,
        Gen {
            reuse_ids: true,
            ..BASIC
        },
    );
}

/// Many short sequences, where the drain does most of the work.
#[test]
fn model_short_sequences() {
    run_cases(
        200,
        Gen {
            max_ops: 30,
            ..BASIC
        },
    );
}

/// The generator reaches every feature the properties are about (deterministic with the
/// fixed seed; a failure here means the generator changed, not the router).
#[test]
fn model_coverage() {
    run_cases(
        64,
        Gen {
            mutations: true,
            ..BASIC
        },
    );
    for focus in Policy::ALL {
        run_cases(
            4,
            Gen {
                focus: Some(focus),
                max_ops: 200,
                ..BASIC
            },
        );
    }
    let missing: Vec<&str> = COV_NAMES
        .iter()
        .zip(&COVERAGE)
        .filter(|(_, n)| n.load(Relaxed) == 0)
        .map(|(name, _)| *name)
        .collect();
    let report: Vec<String> = COV_NAMES
        .iter()
        .zip(&COVERAGE)
        .map(|(name, n)| format!("{name}={}", n.load(Relaxed)))
        .collect();
    println!("coverage: {}", report.join(" "));
    assert!(missing.is_empty(), "never exercised: {missing:?}");
}
