//! The stitched trajectory graph (STG), built offline over a clip set.
//!
//! For every clip `A`, every start frame `t` of it and every other clip `B` of the set, the graph
//! holds the frame `t'` of `B` most similar to `A@t` (`S` with the "graph" weights, see
//! [`crate::similarity`]) and that similarity; pairs with `S < 1e-10` are left out, the
//! official code's only threshold. `keel curricula stg --clips walk,run --out FILE` builds it and
//! writes it as JSON; a sampler loads it and checks that it was built for its own clip set.
//!
//! In training, with probability `switch_prob` a reset that sampled `A@t` keeps the physical
//! state of `A@t` and tracks `B` from `t'` instead (an edge drawn uniformly), the reference moved
//! onto the start; the first [`masked_steps`](crate::similarity::masked_steps)`(S)` steps are
//! masked, so the policy invents the bridge.

use std::path::Path;

use serde::{Deserialize, Serialize};

use keel_envs::config::FieldError;

use crate::CurriculumError;
use crate::similarity::{ClipFrames, SimilarityWeights};

/// The file format's version.
pub const FORMAT: u32 = 1;

/// Below this similarity two frames are not connected (the official threshold).
pub const MIN_SIMILARITY: f64 = 1e-10;

/// One edge: track `clip` from `frame`, with similarity `similarity` to the source frame.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    /// Index of the target clip in the graph's clip list.
    pub clip: usize,
    /// Target start frame.
    pub frame: usize,
    /// `S` between the source frame and the target frame.
    pub similarity: f64,
}

/// The graph (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stg {
    /// [`FORMAT`].
    pub format: u32,
    /// The clip set, in order.
    pub clips: Vec<String>,
    /// Start frames per clip.
    pub frames: Vec<usize>,
    /// The weights of `S` used.
    pub weights: SimilarityWeights,
    /// `edges[clip][frame]`: one edge per other clip, at most.
    pub edges: Vec<Vec<Vec<Edge>>>,
}

/// Settings of trajectory stitching in a sampler.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StgConfig {
    /// The graph file (`keel curricula stg`), built for the sampler's clip set.
    pub file: String,
    /// Probability that a reset switches to a stitched reference, in [0, 1] (default 0.1, the
    /// official scripts').
    pub switch_prob: f64,
}

impl Default for StgConfig {
    fn default() -> Self {
        Self { file: String::new(), switch_prob: 0.1 }
    }
}

impl StgConfig {
    /// Checks the settings; the error names the field (prefixed `stg.`).
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.file.is_empty() {
            return Err(FieldError::new("stg.file", "must name a graph file (build one with `keel curricula stg`)"));
        }
        if !(0.0..=1.0).contains(&self.switch_prob) {
            return Err(FieldError::new(
                "stg.switch_prob",
                format!("is a probability, must be in [0, 1], got {}", self.switch_prob),
            ));
        }
        Ok(())
    }
}

impl Stg {
    /// Builds the graph over `clips` (at least 2) with weights `weights`.
    pub fn build(clips: &[ClipFrames], weights: SimilarityWeights) -> Self {
        let edges = clips
            .iter()
            .enumerate()
            .map(|(a, source)| {
                source
                    .features
                    .iter()
                    .map(|x| {
                        clips
                            .iter()
                            .enumerate()
                            .filter(|(b, _)| *b != a)
                            .filter_map(|(b, target)| {
                                let (frame, similarity) = target.most_similar(x, &weights);
                                (similarity >= MIN_SIMILARITY).then_some(Edge { clip: b, frame, similarity })
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        Self {
            format: FORMAT,
            clips: clips.iter().map(|c| c.name.clone()).collect(),
            frames: clips.iter().map(ClipFrames::len).collect(),
            weights,
            edges,
        }
    }

    /// Writes the graph as JSON.
    pub fn save(&self, path: &Path) -> Result<(), CurriculumError> {
        let text = serde_json::to_string(self).map_err(|e| CurriculumError::Graph(e.to_string()))?;
        std::fs::write(path, text).map_err(|e| CurriculumError::Io(format!("writing {}: {e}", path.display())))
    }

    /// Reads a graph written by [`Stg::save`], checking its shape.
    pub fn load(path: &Path) -> Result<Self, CurriculumError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CurriculumError::Io(format!("reading the graph file {}: {e}", path.display())))?;
        let graph: Self = serde_json::from_str(&text)
            .map_err(|e| CurriculumError::Graph(format!("{} is not a trajectory graph: {e}", path.display())))?;
        graph.check_shape().map_err(|why| CurriculumError::Graph(format!("{}: {why}", path.display())))?;
        Ok(graph)
    }

    fn check_shape(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!("format {} (this Keel reads {FORMAT})", self.format));
        }
        if self.clips.len() != self.frames.len() || self.edges.len() != self.clips.len() {
            return Err("clips, frames and edges differ in length".into());
        }
        for (c, (rows, &n)) in self.edges.iter().zip(&self.frames).enumerate() {
            if rows.len() != n {
                return Err(format!("clip {} has {} rows of edges for {n} frames", self.clips[c], rows.len()));
            }
            for e in rows.iter().flatten() {
                if e.clip >= self.clips.len() || e.frame >= self.frames[e.clip] || !(e.similarity.is_finite()) {
                    return Err(format!("an edge of clip {} points outside the graph: {e:?}", self.clips[c]));
                }
            }
        }
        Ok(())
    }

    /// Checks that the graph was built for exactly this clip set (names in order, and frame
    /// counts).
    pub fn check_fits(&self, clips: &[String], frames: &[usize], file: &str) -> Result<(), CurriculumError> {
        if self.clips != clips {
            return Err(CurriculumError::Graph(format!(
                "the graph file {file} was built for the clips [{}], but the sampler tracks [{}]; \
                 rebuild it with `keel curricula stg --clips {}`",
                self.clips.join(", "),
                clips.join(", "),
                clips.join(",")
            )));
        }
        if self.frames != frames {
            return Err(CurriculumError::Graph(format!(
                "the graph file {file} has {:?} frames per clip, the clips have {frames:?} (other clip data?); rebuild it",
                self.frames
            )));
        }
        Ok(())
    }

    /// Edges out of `clip`'s `frame`.
    pub fn edges(&self, clip: usize, frame: usize) -> &[Edge] {
        self.edges.get(clip).and_then(|rows| rows.get(frame)).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::similarity::tests::library;

    #[test]
    fn the_graph_links_each_frame_to_its_best_match_in_every_other_clip_and_survives_a_file() {
        let Some((_, library)) = library() else { return };
        let clips: Vec<ClipFrames> =
            ["walk", "run"].iter().map(|n| ClipFrames::new(library.get(n).unwrap()).unwrap()).collect();
        let graph = Stg::build(&clips, SimilarityWeights::graph());
        assert_eq!(graph.clips, ["walk", "run"]);
        assert_eq!(graph.frames, [38, 24]);
        for (a, rows) in graph.edges.iter().enumerate() {
            for (t, edges) in rows.iter().enumerate() {
                for e in edges {
                    assert_ne!(e.clip, a, "no edge within a clip");
                    // The edge is the argmax over the target clip.
                    let best = clips[e.clip].most_similar(&clips[a].features[t], &graph.weights);
                    assert_eq!((e.frame, e.similarity), best);
                }
            }
        }
        assert!(graph.edges.iter().flatten().any(|edges| !edges.is_empty()), "walk and run connect somewhere");
        let dir = std::env::temp_dir().join(format!("keel-stg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("graph.json");
        graph.save(&path).unwrap();
        let back = Stg::load(&path).unwrap();
        assert_eq!((&back.clips, &back.frames, back.weights), (&graph.clips, &graph.frames, graph.weights));
        for (x, y) in back.edges.iter().flatten().flatten().zip(graph.edges.iter().flatten().flatten()) {
            assert!(x.clip == y.clip && x.frame == y.frame && (x.similarity - y.similarity).abs() < 1e-15);
        }
        // Another clip set, or other frame counts, is refused naming both sets.
        let err = back.check_fits(&["walk".into(), "jump".into()], &[38, 106], "g.json").unwrap_err().to_string();
        assert!(err.contains("[walk, run]") && err.contains("[walk, jump]"), "{err}");
        assert!(back.check_fits(&["walk".into(), "run".into()], &[38, 24], "g.json").is_ok());
        assert!(back.check_fits(&["walk".into(), "run".into()], &[38, 20], "g.json").is_err());
        // A file that is not a graph, or a damaged one.
        std::fs::write(&path, "{\"format\": 1}").unwrap();
        assert!(Stg::load(&path).unwrap_err().to_string().contains("not a trajectory graph"));
        let mut broken = graph.clone();
        broken.edges[0][0] = vec![Edge { clip: 7, frame: 0, similarity: 0.5 }];
        broken.save(&path).unwrap();
        assert!(Stg::load(&path).unwrap_err().to_string().contains("outside the graph"));
        assert!(Stg::load(&dir.join("missing.json")).unwrap_err().to_string().contains("missing.json"));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn settings_are_validated_naming_the_field() {
        let ok = StgConfig { file: "g.json".into(), ..Default::default() };
        assert!(ok.validate().is_ok());
        assert_eq!(StgConfig::default().validate().err().map(|e| e.field), Some("stg.file"));
        let bad = StgConfig { switch_prob: 1.5, ..ok };
        assert_eq!(bad.validate().err().map(|e| e.field), Some("stg.switch_prob"));
    }
}
