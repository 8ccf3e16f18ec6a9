//! The conformance suite, over every registered env: a new env is covered by its registry line.

use keel_envs::registry::ids;
use keel_envs::testing::{self, CheckResult, Data};

/// Whether env `id` can be made here. Envs whose data is not installed (the linear systems read
/// from controlgym's package) are skipped with a note, unless `KEEL_REQUIRE_CONTROLGYM_DATA=1`
/// (set by `scripts/test.sh`, so CI runs them).
fn available(id: &str) -> bool {
    let data = if id == "keel/HumanoidTrack-v1" { Data::Humanoid } else { Data::Controlgym };
    !data.missing(id, &keel_envs::make(id, &serde_json::Map::new()))
}

fn run_over_registry(check: fn(&str) -> CheckResult) {
    // With the `humanoid` feature (the workspace build turns it on), the humanoid family too.
    #[cfg(feature = "humanoid")]
    keel_envs::humanoid::register().expect("the humanoid registers");
    // With the `diff` feature (the workspace build turns it on), the differentiable-physics family.
    #[cfg(feature = "diff")]
    keel_envs::diff::register().expect("the diff family registers");
    let failures: Vec<String> = ids()
        .into_iter()
        .filter(|id| available(id))
        .filter_map(|id| match std::panic::catch_unwind(|| check(id)) {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(format!("{id}: panicked")),
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { run_over_registry(testing::$name); })*
        /// The checks this file runs, by function name.
        const RUN_HERE: &[&str] = &[$(stringify!($name)),*];
    };
}

conformance!(
    check_seed_determinism,
    check_observations_in_space,
    check_vector_matches_single,
    check_worker_counts,
    check_autoreset_modes,
    check_bad_actions,
    check_explicit_state,
    check_snapshot_restore,
    check_masked_reset,
    check_extras,
);

#[test]
fn every_check_is_run() {
    // Keeps the macro's list in step with `testing::CHECKS`: each check once, none missing.
    let mut listed: Vec<String> = testing::CHECKS.iter().map(|(name, _)| format!("check_{name}")).collect();
    let mut run: Vec<String> = RUN_HERE.iter().map(|name| name.to_string()).collect();
    listed.sort();
    run.sort();
    assert_eq!(run, listed);
}
