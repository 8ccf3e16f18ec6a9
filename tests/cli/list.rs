//! `keel list`: every registered env, as text and as JSON.

use serde_json::Value;

use crate::common::{keel, stderr, stdout};

#[test]
fn list_shows_every_env() {
    // The command line registers the humanoid and differentiable-physics families at start-up;
    // so does this test.
    assert!(keel_envs::humanoid::register().is_ok());
    keel_envs::diff::register().unwrap_or_else(|e| panic!("{e}"));
    assert!(keel_envs::registry::ids().contains(&"keel/DiffHopper-v0"));
    // The binary registers the Atari games at start-up in the `atari` build; so does this test.
    #[cfg(feature = "atari")]
    assert!(keel_envs::atari::register().is_ok());
    let out = keel(&["list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for id in keel_envs::registry::ids() {
        assert!(stdout(&out).contains(id), "{id} missing from keel list");
    }
    let json = keel(&["list", "--json"]);
    let parsed: Value = serde_json::from_str(&stdout(&json)).unwrap_or(Value::Null);
    assert_eq!(parsed.as_array().map(Vec::len), Some(keel_envs::registry::ids().len()));
    let entry = |id: &str| parsed.as_array().into_iter().flatten().find(|e| e["id"] == id).cloned();
    let burgers = entry("keel/Burgers-v0").unwrap_or_default();
    assert_eq!(burgers["extras"], serde_json::json!(["state_cost", "action_cost", "state_norm", "diverged"]));
    assert_eq!(burgers["spec"]["observation_space"]["dtype"], "float64");
    assert_eq!(entry("keel/CartPole-v1").unwrap_or_default()["extras"], serde_json::json!([]));
    let humanoid = entry("keel/HumanoidTrack-v1").unwrap_or_default();
    assert_eq!(humanoid["extras"][0], "reward_pose", "{humanoid}");
}
