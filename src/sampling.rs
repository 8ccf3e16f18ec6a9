//! `keel plot --sampling RUN`: a run's start distribution over training as a heat map.
//!
//! A trainer with a reset sampler that shows its distribution writes one line per iteration to
//! the run's `sampling.jsonl`. For adaptive trajectory sampling each line holds, per clip, the
//! weight of every start frame. The heat map has start frames (grouped into at most 12 bins) as
//! rows and at most 8 iterations, evenly spread over the run, as columns; each cell is the
//! probability of starting in that bin, shaded against the uniform one.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::chart::HeatMap;

/// The heat map of `run`'s sampling.jsonl (see the module docs).
pub fn heat_map(run: &Path) -> Result<HeatMap> {
    let path = run.join("sampling.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    // (iteration, frame weights of the first clip), for the lines that hold frame weights.
    let mut lines: Vec<(u64, String, Vec<f64>)> = Vec::new();
    for (k, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line).with_context(|| format!("{}: line {}", path.display(), k + 1))?;
        let clip = &v["distribution"]["clips"][0];
        let Some(weights) = clip["frame_weights"].as_array() else { continue };
        let weights: Vec<f64> = weights.iter().map(|w| w.as_f64().unwrap_or(f64::NAN)).collect();
        lines.push((v["iteration"].as_u64().unwrap_or(0), clip["clip"].as_str().unwrap_or("?").into(), weights));
    }
    if lines.is_empty() {
        bail!("{}: no frame weights (the run's sampler has no adaptive sampling)", path.display());
    }
    let columns = lines.len().min(8);
    let picked: Vec<&(u64, String, Vec<f64>)> =
        (0..columns).map(|c| &lines[if columns == 1 { 0 } else { c * (lines.len() - 1) / (columns - 1) }]).collect();
    let frames = picked[0].2.len();
    let bins = frames.min(12);
    let bin_of = |f: usize| f * bins / frames;
    let mut rows = Vec::new();
    for b in 0..bins {
        let members: Vec<usize> = (0..frames).filter(|&f| bin_of(f) == b).collect();
        rows.push(format!("{}-{}", members[0], members[members.len() - 1]));
    }
    let (mut shade, mut cells) = (vec![vec![f64::NAN; columns]; bins], vec![vec![String::new(); columns]; bins]);
    for (c, (_, _, weights)) in picked.iter().enumerate() {
        for b in 0..bins {
            let members: Vec<usize> = (0..frames.min(weights.len())).filter(|&f| bin_of(f) == b).collect();
            let p: f64 = members.iter().map(|&f| weights[f]).sum();
            let uniform = members.len() as f64 / frames as f64;
            // White at the uniform probability, red above (favoured), blue below.
            shade[b][c] = (0.5 + 0.5 * (p / uniform).log2() / 2.0).clamp(0.0, 1.0);
            cells[b][c] = format!("{:.1}%", 100.0 * p);
        }
    }
    Ok(HeatMap {
        title: format!("start distribution of `{}` over training ({})", picked[0].1, run.display()),
        row_label: "start frames".into(),
        column_label: "iteration".into(),
        rows,
        columns: picked.iter().map(|l| format!("it {}", l.0)).collect(),
        shade,
        text: cells,
        scale: ("1/4 of uniform".into(), "4x uniform".into()),
    })
}
