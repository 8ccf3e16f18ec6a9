//! `keel clips` and `keel render`: the humanoid's motion clips, and GIFs of them.
//!
//! - `keel clips` lists the 15 DeepMimic clips with their frames, fps, length and whether they
//!   loop.
//! - `keel render --clip walk --out walk.gif` plays a clip kinematically (the clip library's
//!   forward kinematics, no physics).
//! - `keel render --run DIR --episodes N --out walk.gif` plays a run's policy (its latest
//!   checkpoint) in `keel/HumanoidTrack-v0`, the reference clip drawn as a translucent ghost.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use keel_physics::render::Renderer;
use keel_physics::{ClipLibrary, DataDir, HumanoidModel};

/// `keel render`'s arguments.
#[derive(Args)]
pub struct RenderArgs {
    /// Play this clip kinematically (a name from `keel clips`).
    #[arg(long, conflicts_with = "run", required_unless_present = "run")]
    clip: Option<String>,
    /// Play the policy of this run folder (trained on keel/HumanoidTrack-v0), its latest
    /// checkpoint, deterministically.
    #[arg(long, value_name = "DIR")]
    run: Option<PathBuf>,
    /// Episodes of the run's policy, one after the other, from random clip phases.
    #[arg(long, default_value_t = 1, requires = "run", allow_negative_numbers = true)]
    episodes: usize,
    /// Seconds of motion to record (default: one pass of the clip; for a run, at most this per
    /// episode, 5 s by default).
    #[arg(long, allow_negative_numbers = true)]
    seconds: Option<f64>,
    /// Seed of the first episode of a run (episode k gets seed + k).
    #[arg(long, default_value_t = 1_000_000, allow_negative_numbers = true)]
    seed: u64,
    /// Frames per second of the GIF.
    #[arg(long, default_value_t = 30, allow_negative_numbers = true)]
    fps: u32,
    /// Frame size, pixels, as WIDTHxHEIGHT.
    #[arg(long, default_value = "320x240")]
    size: String,
    /// The GIF to write.
    #[arg(long, value_name = "FILE.gif")]
    out: PathBuf,
}

/// The model and clips from the Keel cache, or an error saying how to install them.
fn library() -> Result<(Arc<HumanoidModel>, ClipLibrary)> {
    let data = DataDir::locate()?;
    let model = Arc::new(HumanoidModel::load(&data)?);
    let clips = ClipLibrary::load(&data, &model)?;
    Ok((model, clips))
}

/// `keel clips`.
pub fn clips() -> Result<()> {
    let (_, library) = library()?;
    out!("{:<16} {:>7} {:>6} {:>9}  loops", "clip", "frames", "fps", "length s");
    for clip in library.clips() {
        out!(
            "{:<16} {:>7} {:>6.1} {:>9.3}  {}",
            clip.name(),
            clip.num_frames(),
            clip.fps(),
            clip.duration(),
            if clip.looping() { "yes" } else { "no" }
        );
    }
    Ok(())
}

fn parse_size(size: &str) -> Result<(usize, usize)> {
    let parse = || -> Option<(usize, usize)> {
        let (w, h) = size.split_once('x')?;
        Some((w.trim().parse().ok()?, h.trim().parse().ok()?))
    };
    match parse() {
        Some((w, h)) if (16..=4096).contains(&w) && (16..=4096).contains(&h) => Ok((w, h)),
        _ => bail!("--size {size:?}: expected WIDTHxHEIGHT, each side in 16..=4096"),
    }
}

/// An animated GIF being written, one RGB frame at a time.
struct Gif {
    encoder: gif::Encoder<std::io::BufWriter<std::fs::File>>,
    width: u16,
    height: u16,
    /// Frame delay, hundredths of a second.
    delay: u16,
    frames: usize,
}

impl Gif {
    fn create(path: &std::path::Path, width: usize, height: usize, fps: u32) -> Result<Self> {
        crate::checks::output_file(path, "--out")?;
        let file = std::fs::File::create(path).with_context(|| format!("--out {}", path.display()))?;
        let (width, height) = (width as u16, height as u16);
        let mut encoder = gif::Encoder::new(std::io::BufWriter::new(file), width, height, &[])?;
        encoder.set_repeat(gif::Repeat::Infinite)?;
        let delay = (100.0 / f64::from(fps)).round().max(1.0) as u16;
        Ok(Self { encoder, width, height, delay, frames: 0 })
    }

    fn push(&mut self, rgb: &[u8]) -> Result<()> {
        let mut frame = gif::Frame::from_rgb_speed(self.width, self.height, rgb, 10);
        frame.delay = self.delay;
        self.encoder.write_frame(&frame)?;
        self.frames += 1;
        Ok(())
    }
}

/// `keel render`.
pub fn render(args: &RenderArgs) -> Result<()> {
    if !(1..=100).contains(&args.fps) {
        bail!("--fps {}: must be in 1..=100", args.fps);
    }
    if let Some(seconds) = args.seconds {
        if !(seconds.is_finite() && seconds > 0.0 && seconds <= 600.0) {
            bail!("--seconds {seconds}: must be in (0, 600]");
        }
    }
    let (width, height) = parse_size(&args.size)?;
    if args.run.is_some() && args.size != "320x240" {
        bail!(
            "--size applies to --clip; a run's frames have its env's `render_size` (set it with `--set env_config.render_size=[W,H]` when training)"
        );
    }
    match (&args.clip, &args.run) {
        (Some(clip), _) => render_clip(args, clip, width, height),
        (None, Some(run)) => render_run(args, run),
        (None, None) => bail!("give --clip NAME or --run DIR"),
    }
}

fn render_clip(args: &RenderArgs, name: &str, width: usize, height: usize) -> Result<()> {
    let (model, library) = library()?;
    let clip = library.get(name)?;
    let seconds = args.seconds.unwrap_or(clip.duration());
    let frames = ((seconds * f64::from(args.fps)).round() as usize).max(1);
    let mut gif = Gif::create(&args.out, width, height, args.fps)?;
    let mut renderer = Renderer::new(width, height);
    let mut pose = vec![0.0; model.pose_len()];
    let mut bodies = vec![keel_physics::BodyState::default(); model.bodies().len()];
    for k in 0..frames {
        clip.write_pose_at(k as f64 / f64::from(args.fps), &mut pose)?;
        model.write_body_states(&pose, None, &mut bodies)?;
        renderer.draw(&model, &bodies, None);
        gif.push(&renderer.frame().rgb)?;
    }
    out!(
        "keel render: {} frames of `{name}` ({seconds:.2} s at {} fps) -> {}",
        gif.frames,
        args.fps,
        args.out.display()
    );
    Ok(())
}

fn render_run(args: &RenderArgs, run: &std::path::Path) -> Result<()> {
    if !(1..=100).contains(&args.episodes) {
        bail!("--episodes {}: must be in 1..=100", args.episodes);
    }
    crate::checks::output_file(&args.out, "--out")?;
    let seconds = args.seconds.unwrap_or(5.0);
    let options = keel_agents::eval::EvalOptions {
        episodes: args.episodes,
        deterministic: true,
        seed: args.seed,
        max_episode_steps: Some((seconds * 30.0).round().max(1.0) as u64),
    };
    let mut gif: Option<Gif> = None;
    let mut failure: Option<anyhow::Error> = None;
    let evaluation = crate::train::play_run(run, &options, &mut |env, _| {
        let frame = match env.render() {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                failure =
                    Some(anyhow::anyhow!("{} does not render; keel render --run needs a humanoid run", env.spec().id));
                return false;
            }
            Err(e) => {
                failure = Some(e.into());
                return false;
            }
        };
        if gif.is_none() {
            match Gif::create(&args.out, frame.width, frame.height, args.fps) {
                Ok(created) => gif = Some(created),
                Err(e) => {
                    failure = Some(e);
                    return false;
                }
            }
        }
        let pushed = gif.as_mut().map_or(Ok(()), |g| g.push(&frame.rgb));
        if let Err(e) = pushed {
            failure = Some(e);
            return false;
        }
        true
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    let frames = gif.map_or(0, |g| g.frames);
    let falls = evaluation.episodes.iter().filter(|e| !e.truncated).count();
    out!(
        "keel render: {} episodes of {} ({frames} frames, {falls} ended by a fall) -> {}",
        evaluation.episodes.len(),
        run.display(),
        args.out.display()
    );
    Ok(())
}
