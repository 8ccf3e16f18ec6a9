//! `keel clips` and `keel render`: the humanoid's motion clips, and GIFs of them.
//!
//! - `keel clips` lists the 15 DeepMimic clips with their frames, fps, length and whether they
//!   loop.
//! - `keel render --clip walk --out walk.gif` plays a clip kinematically (the clip library's
//!   forward kinematics, no physics).
//! - `keel render --run DIR --episodes N --out walk.gif` plays a run's policy (its latest
//!   checkpoint) in `keel/HumanoidTrack-v1`, the reference clip drawn as a translucent ghost.

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
    /// Play the policy of this run folder (trained on keel/HumanoidTrack-v1), its latest
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
    // Hyphen values reach the range check below: `-5x10` is a bad size, not an unknown flag.
    #[arg(long, default_value = "320x240", allow_hyphen_values = true)]
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

/// Most pixels one `keel render` draws and encodes (frames × width × height): 2^32, about
/// 19 minutes of 320x240 at 100 fps, or 2.6 s of 4096x4096 at 30 fps. GIF encoding runs at tens
/// of megapixels a second, so the limit keeps a render within minutes.
const MAX_PIXELS: u128 = 1 << 32;

/// Refuses a render of `frames` frames of `width` x `height` beyond [`MAX_PIXELS`].
fn check_pixels(frames: u128, width: usize, height: usize) -> Result<()> {
    let pixels = frames * width as u128 * height as u128;
    if pixels > MAX_PIXELS {
        bail!(
            "{frames} frames of {width}x{height} are {pixels} pixels, more than keel render draws ({MAX_PIXELS}); \
             lower --seconds, --fps, --episodes or --size"
        );
    }
    Ok(())
}

/// An animated GIF being written, one RGB frame at a time, into a temporary file beside `--out`
/// that [`Gif::finish`] renames onto it: an interrupted or failed render leaves no partial GIF
/// (the temporary file is removed when the `Gif` is dropped unfinished).
struct Gif {
    encoder: Option<gif::Encoder<std::io::BufWriter<std::fs::File>>>,
    width: u16,
    height: u16,
    /// Frame delay, hundredths of a second.
    delay: u16,
    frames: usize,
    tmp: PathBuf,
    path: PathBuf,
    bar: indicatif::ProgressBar,
}

impl Gif {
    /// Starts a GIF for `path` of `total` frames (the length of its progress bar).
    fn create(path: &std::path::Path, width: usize, height: usize, fps: u32, total: u64) -> Result<Self> {
        crate::checks::output_file(path, "--out")?;
        let tmp = keel_agents::checkpoint::temporary_sibling(path);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .with_context(|| format!("--out {}", path.display()))?;
        let (width, height) = (width as u16, height as u16);
        let delay = (100.0 / f64::from(fps)).round().max(1.0) as u16;
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} frames  [{elapsed_precise} < {eta_precise}]")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let mut gif = Self { encoder: None, width, height, delay, frames: 0, tmp, path: path.to_path_buf(), bar };
        let mut encoder = gif::Encoder::new(std::io::BufWriter::new(file), width, height, &[])?;
        encoder.set_repeat(gif::Repeat::Infinite)?;
        gif.encoder = Some(encoder);
        Ok(gif)
    }

    /// Appends a frame; stops with [`crate::interrupt::Interrupted`] once Ctrl-C was pressed.
    fn push(&mut self, rgb: &[u8]) -> Result<()> {
        crate::interrupt::check()?;
        let mut frame = gif::Frame::from_rgb_speed(self.width, self.height, rgb, 10);
        frame.delay = self.delay;
        if let Some(encoder) = self.encoder.as_mut() {
            encoder.write_frame(&frame)?;
        }
        self.frames += 1;
        self.bar.inc(1);
        Ok(())
    }

    /// Ends the GIF and moves it onto `--out`.
    fn finish(mut self) -> Result<usize> {
        self.bar.finish_and_clear();
        if let Some(encoder) = self.encoder.take() {
            let mut writer = encoder.into_inner()?;
            std::io::Write::flush(&mut writer)?;
        }
        std::fs::rename(&self.tmp, &self.path).with_context(|| format!("--out {}", self.path.display()))?;
        Ok(self.frames)
    }
}

impl Drop for Gif {
    fn drop(&mut self) {
        // Unfinished (an error or Ctrl-C): the temporary file goes; `--out` was never touched.
        if self.tmp.exists() {
            self.bar.finish_and_clear();
            drop(self.encoder.take());
            let _ = std::fs::remove_file(&self.tmp);
        }
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
    let frames_of = |seconds: f64| ((seconds * f64::from(args.fps)).round() as usize).max(1);
    // With --seconds the size is known before the clips load.
    if let Some(seconds) = args.seconds {
        check_pixels(frames_of(seconds) as u128, width, height)?;
    }
    let (model, library) = library()?;
    let clip = library.get(name)?;
    let seconds = args.seconds.unwrap_or(clip.duration());
    let frames = frames_of(seconds);
    check_pixels(frames as u128, width, height)?;
    crate::interrupt::install();
    let mut gif = Gif::create(&args.out, width, height, args.fps, frames as u64)?;
    let mut renderer = Renderer::new(width, height);
    let mut pose = vec![0.0; model.pose_len()];
    let mut bodies = vec![keel_physics::BodyState::default(); model.bodies().len()];
    for k in 0..frames {
        clip.write_pose_at(k as f64 / f64::from(args.fps), &mut pose)?;
        model.write_body_states(&pose, None, &mut bodies)?;
        renderer.draw(&model, &bodies, None);
        gif.push(&renderer.frame().rgb)?;
    }
    let written = gif.finish()?;
    out!(
        "keel render: {written} frames of `{name}` ({seconds:.2} s at {} fps) -> {}",
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
    let steps = (seconds * 30.0).round().max(1.0) as u64;
    let total = steps * args.episodes as u64;
    crate::interrupt::install();
    let options = keel_agents::eval::EvalOptions {
        episodes: args.episodes,
        deterministic: true,
        seed: args.seed,
        max_episode_steps: Some(steps),
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
            // The frame size is the run's `render_size`, known at the first frame.
            let created = check_pixels(u128::from(total), frame.width, frame.height)
                .and_then(|()| Gif::create(&args.out, frame.width, frame.height, args.fps, total));
            match created {
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
    let frames = match gif {
        Some(g) => g.finish()?,
        None => 0,
    };
    let falls = evaluation.episodes.iter().filter(|e| !e.truncated).count();
    out!(
        "keel render: {} episodes of {} ({frames} frames, {falls} ended by a fall) -> {}",
        evaluation.episodes.len(),
        run.display(),
        args.out.display()
    );
    Ok(())
}
