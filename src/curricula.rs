//! `keel curricula`: offline parts of the curricula.
//!
//! - `keel curricula stg --clips walk,run --out FILE`: builds SkillMimic-V2's stitched
//!   trajectory graph over a clip set (see `keel_curricula::stg`) and writes it as JSON, for a
//!   `[sampler.stg]` table's `file`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use keel_curricula::similarity::{ClipFrames, SimilarityWeights};
use keel_curricula::stg::Stg;
use keel_physics::{ClipLibrary, DataDir, HumanoidModel};

/// `keel curricula`'s arguments.
#[derive(Args)]
pub struct CurriculaArgs {
    #[command(subcommand)]
    command: CurriculaCommand,
}

#[derive(Subcommand)]
enum CurriculaCommand {
    /// Build a stitched trajectory graph over clips (every frame of each clip linked to its most
    /// similar frame in every other clip) and write it as JSON.
    Stg {
        /// The clip set, comma separated, in the order the sampler's `clips` will name them.
        #[arg(long, value_delimiter = ',', required = true)]
        clips: Vec<String>,
        /// The graph file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// Runs `keel curricula`.
pub fn run(args: &CurriculaArgs) -> Result<()> {
    match &args.command {
        CurriculaCommand::Stg { clips, out } => stg(clips, out),
    }
}

fn stg(names: &[String], out: &std::path::Path) -> Result<()> {
    let names: Vec<&str> = names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()).collect();
    if names.len() < 2 {
        bail!("--clips: a trajectory graph needs at least two clips, got {}", names.len());
    }
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            bail!("--clips: `{n}` is named twice");
        }
    }
    crate::checks::output_file(out, "--out")?;
    let data = DataDir::locate()?;
    let model = Arc::new(HumanoidModel::load(&data)?);
    let library = ClipLibrary::load(&data, &model)?;
    let frames = names
        .iter()
        .map(|n| Ok(ClipFrames::new(library.get(n).with_context(|| "--clips".to_string())?)?))
        .collect::<Result<Vec<_>>>()?;
    let graph = Stg::build(&frames, SimilarityWeights::graph());
    graph.save(out)?;
    let edges: usize = graph.edges.iter().flatten().map(Vec::len).sum();
    let best = graph.edges.iter().flatten().flatten().map(|e| e.similarity).fold(0.0, f64::max);
    out!(
        "keel curricula stg: {} clips ({}), {} frames, {edges} edges, best similarity {best:.3}: {}",
        names.len(),
        names.join(", "),
        graph.frames.iter().sum::<usize>(),
        out.display()
    );
    Ok(())
}
