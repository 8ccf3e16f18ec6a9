//! `keel bench`: a measured rate.

use crate::common::{keel, stderr, stdout};

#[test]
fn bench_prints_a_rate() {
    let out = keel(&[
        "bench",
        "--env",
        "keel/Pendulum-v1",
        "--num-envs",
        "4",
        "--workers",
        "2",
        "--steps",
        "100",
        "--repeats",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("| keel/Pendulum-v1 |"), "{}", stdout(&out));
}
