//! docs/training.md's "Training from Rust" example is `examples/train.rs`, which `cargo test` builds:
//! the two must not drift apart.

#[test]
fn the_guide_shows_the_example_that_is_built() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("../docs/training.md")).unwrap_or_default();
    let section = guide.split("## Training from Rust").nth(1).unwrap_or_default();
    let shown = section.split("```rust,ignore\n").nth(1).and_then(|s| s.split("```").next()).unwrap_or_default();
    let example = std::fs::read_to_string(root.join("examples/train.rs")).unwrap_or_default();
    let code: String =
        example.lines().skip_while(|l| l.starts_with("//!") || l.is_empty()).map(|l| format!("{l}\n")).collect();
    assert!(!shown.is_empty(), "no rust,ignore block under \"Training from Rust\" in docs/training.md");
    assert_eq!(shown, code, "docs/training.md's example differs from agents/examples/train.rs");
}
