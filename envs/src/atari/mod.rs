//! The Atari 2600 games: `keel/<Game>-v5` for every ROM of ale-py 0.12.1, through ALE 0.12.1
//! ([`keel_ale_sys`], cargo feature `atari`, GPL-2.0), with observations as `uint8` from the
//! emulator to the batch.
//!
//! ## Description
//!
//! Without a preset, `keel/<Game>-v5` is Gymnasium's `ALE/<Game>-v5`: the RGB screen
//! (210×160×3), a frame skip of 4 done inside ALE, sticky actions with probability 0.25, the
//! minimal action set, a cap of 108,000 frames reported as truncation. The presets add the
//! preprocessing of the three libraries people train with, each reproducing that library's
//! choices (see `../shared/research/atari.md` §2 for the checklist they follow):
//!
//! | `preset` | what it reproduces |
//! |---|---|
//! | (none) | `gymnasium.make("ALE/<Game>-v5")` |
//! | `gymnasium` | `FrameStackObservation(AtariPreprocessing(gymnasium.make("ALE/<Game>-v5", frameskip=1)), 4)` |
//! | `cleanrl` | CleanRL `ppo_atari.py`: `<Game>NoFrameskip-v4` + SB3's `NoopResetEnv`, `MaxAndSkipEnv`, `EpisodicLifeEnv`, `FireResetEnv`, `ClipRewardEnv`, then `ResizeObservation(84)`, `GrayscaleObservation`, `FrameStackObservation(4)` |
//! | `envpool` | `envpool.make("<Game>-v5")` with its defaults |
//!
//! ## Observation
//!
//! `uint8`. No preset: `(210, 160, 3)` (`obs_type="rgb"`) or `(210, 160)` (`"grayscale"`).
//! Presets: `(stack_size, screen_size, screen_size)` when `grayscale_obs`, else
//! `(stack_size, screen_size, screen_size, 3)` (`envpool`: `(3 * stack_size, screen_size,
//! screen_size)`, as EnvPool lays it out).
//!
//! ## Actions
//!
//! `Discrete(n)`: index into the game's minimal action set (all 18 with
//! `full_action_space=true`). An index outside the set is an `InvalidAction` error.
//!
//! ## Reward
//!
//! The change of the game score over the step (summed over skipped frames); its sign with
//! `clip_reward`. The unclipped reward is the extra `raw_reward`.
//!
//! ## Starting state
//!
//! ALE's deterministic game start, then `1..=noop_max` no-op frames drawn uniformly
//! (`envpool`: EnvPool's `0..noop_max` draw), then FIRE with `fire_reset`. The reset option
//! `noops` (an integer) fixes the number of no-ops of one reset (golden tests use it to replay
//! a reference run).
//!
//! ## Episode end
//!
//! Termination: game over, and a lost life with `terminal_on_life_loss` (in the `gymnasium`
//! preset the next reset then starts a new game, as Gymnasium's `AtariPreprocessing`; in
//! `cleanrl` and `envpool` the game continues, as SB3's `EpisodicLifeEnv` and EnvPool's
//! `episodic_life`). Truncation: `max_num_frames_per_episode` frames (`envpool`: that many
//! frames divided by `frame_skip`, counted in agent steps as EnvPool does).
//!
//! Episode statistics (the vector engine's returns and lengths) count whole games: the
//! unclipped score across every life, and the agent steps of the game.
//!
//! ## Extras
//!
//! `lives`, `raw_reward` (unclipped reward of the step), `frame_number` (ALE frames since the
//! game started).
//!
//! ## Config
//!
//! Gymnasium's names (`repeat_action_probability`, `frameskip`, `full_action_space`,
//! `max_num_frames_per_episode`, `mode`, `difficulty`, `obs_type`) and `AtariPreprocessing`'s
//! (`noop_max`, `frame_skip`, `screen_size`, `terminal_on_life_loss`, `grayscale_obs`), plus
//! `stack_size`, `fire_reset`, `clip_reward` and `preset`. Keys left unset take the preset's
//! value; keys that a preset's pipeline does not have are errors naming them.
//!
//! ## ROMs
//!
//! Read from `$KEEL_ALE_ROMS` (set by `scripts/env.sh`; `scripts/setup.sh` unpacks them from
//! the ale-py 0.12.1 wheel and checks them), else from the folder the build saw.
//!
//! ## Version history
//!
//! * v5: first version, matching ale-py 0.12.1's `ALE/<Game>-v5`.

mod config;
mod env;
mod palette;
mod resize;
mod rom;

pub use config::{AtariConfig, ObsType, Preset};
pub use env::AtariEnv;
pub use resize::AreaResize;
pub use rom::rom_dir;

use std::marker::PhantomData;

use serde_json::{Map, Value};

use crate::env::{Env, EnvSpec, EpisodeCount, Registered, ResetOptions, Step};
use crate::error::Result;
use crate::obs::ObsMut;
use crate::registry;
use crate::space::Action;
use env::FrameSizes;

/// Heap bytes of one env besides its frame buffers and resize tables: ALE's emulator (console,
/// cartridge, TIA frame buffers) and the spec; `tests/atari_memory.rs` measures about 0.7 MiB.
const EMULATOR_BYTES: u64 = 768 << 10;

/// A game: its ROM file name and its id.
pub trait Game: Send + 'static {
    /// ROM file name without `.bin` (ALE's snake-case name).
    const ROM: &'static str;
    /// `keel/<Game>-v5`.
    const ID: &'static str;
    /// One line for `keel list`.
    const DESCRIPTION: &'static str;
}

/// `keel/<Game>-v5` for game `G`: an [`AtariEnv`] under the game's id.
pub struct Atari<G: Game> {
    env: AtariEnv,
    _game: PhantomData<G>,
}

impl<G: Game> Atari<G> {
    /// The env inside.
    pub fn inner(&self) -> &AtariEnv {
        &self.env
    }
}

impl<G: Game> Registered for Atari<G> {
    const ID: &'static str = G::ID;
    const DESCRIPTION: &'static str = G::DESCRIPTION;
    const MAX_EPISODE_STEPS: Option<u64> = None;
    type Config = AtariConfig;

    fn spec(config: &AtariConfig) -> Result<EnvSpec> {
        AtariEnv::spec_for(G::ID, G::ROM, config)
    }

    fn new(config: AtariConfig) -> Result<Self> {
        Ok(Self { env: AtariEnv::new(G::ID, G::ROM, &config)?, _game: PhantomData })
    }

    fn memory_estimate(config: &AtariConfig) -> u64 {
        // The emulator and the spec (its observation bounds are two scalars), plus the frame
        // buffers and resize tables the settings make.
        let frames = config.settings().map_or(0, |s| FrameSizes::heap_bytes(&s) as u64);
        EMULATOR_BYTES + frames
    }
}

impl<G: Game> Env for Atari<G> {
    fn spec(&self) -> &EnvSpec {
        self.env.spec()
    }
    fn reset(&mut self, seed: Option<u64>, options: &ResetOptions, obs: ObsMut<'_>) -> Result<()> {
        self.env.reset(seed, options, obs)
    }
    fn step(&mut self, action: Action<'_>, obs: ObsMut<'_>) -> Result<Step> {
        self.env.step(action, obs)
    }
    fn write_extras(&self, out: &mut [f64]) {
        self.env.write_extras(out)
    }
    fn episode_count(&self) -> EpisodeCount {
        self.env.episode_count()
    }
    fn set_params(&mut self, params: &Map<String, Value>) -> Result<()> {
        self.env.set_params(params)
    }
    fn params(&self) -> Value {
        self.env.params()
    }
}

macro_rules! games {
    ($($name:ident => $rom:literal,)+) => {
        /// One marker type per game of ale-py 0.12.1 (ids follow ale-py: `rom.title()` without
        /// underscores). The wheel's four multiplayer-only ROMs (combat, joust, maze_craze,
        /// warlords) are not games of ALE's single-agent interface and have no id.
        pub mod games {
            $(
                #[doc = concat!("`keel/", stringify!($name), "-v5` (ROM `", $rom, ".bin`).")]
                pub struct $name;
                impl super::Game for $name {
                    const ROM: &'static str = $rom;
                    const ID: &'static str = concat!("keel/", stringify!($name), "-v5");
                    const DESCRIPTION: &'static str =
                        concat!("Atari 2600 ", stringify!($name), " (ALE 0.12.1; preset= gymnasium, cleanrl, envpool)");
                }
            )+
        }

        /// The registry lines of every game.
        pub fn entries() -> Vec<registry::Registration> {
            vec![$(registry::entry::<Atari<games::$name>>()),+]
        }

        /// Every game's ROM name, in id order.
        pub const ROMS: &[&str] = &[$($rom),+];
    };
}

games! {
    Adventure => "adventure",
    AirRaid => "air_raid",
    Alien => "alien",
    Amidar => "amidar",
    Assault => "assault",
    Asterix => "asterix",
    Asteroids => "asteroids",
    Atlantis => "atlantis",
    Atlantis2 => "atlantis2",
    Backgammon => "backgammon",
    BankHeist => "bank_heist",
    BasicMath => "basic_math",
    BattleZone => "battle_zone",
    BeamRider => "beam_rider",
    Berzerk => "berzerk",
    Blackjack => "blackjack",
    Bowling => "bowling",
    Boxing => "boxing",
    Breakout => "breakout",
    Carnival => "carnival",
    Casino => "casino",
    Centipede => "centipede",
    ChopperCommand => "chopper_command",
    CrazyClimber => "crazy_climber",
    Crossbow => "crossbow",
    Darkchambers => "darkchambers",
    Defender => "defender",
    DemonAttack => "demon_attack",
    DonkeyKong => "donkey_kong",
    DoubleDunk => "double_dunk",
    Earthworld => "earthworld",
    ElevatorAction => "elevator_action",
    Enduro => "enduro",
    Entombed => "entombed",
    Et => "et",
    FishingDerby => "fishing_derby",
    FlagCapture => "flag_capture",
    Freeway => "freeway",
    Frogger => "frogger",
    Frostbite => "frostbite",
    Galaxian => "galaxian",
    Gopher => "gopher",
    Gravitar => "gravitar",
    Hangman => "hangman",
    HauntedHouse => "haunted_house",
    Hero => "hero",
    HumanCannonball => "human_cannonball",
    IceHockey => "ice_hockey",
    Jamesbond => "jamesbond",
    JourneyEscape => "journey_escape",
    Kaboom => "kaboom",
    Kangaroo => "kangaroo",
    KeystoneKapers => "keystone_kapers",
    KingKong => "king_kong",
    Klax => "klax",
    Koolaid => "koolaid",
    Krull => "krull",
    KungFuMaster => "kung_fu_master",
    LaserGates => "laser_gates",
    LostLuggage => "lost_luggage",
    MarioBros => "mario_bros",
    MiniatureGolf => "miniature_golf",
    MontezumaRevenge => "montezuma_revenge",
    MrDo => "mr_do",
    MsPacman => "ms_pacman",
    NameThisGame => "name_this_game",
    Othello => "othello",
    Pacman => "pacman",
    Phoenix => "phoenix",
    Pitfall => "pitfall",
    Pitfall2 => "pitfall2",
    Pong => "pong",
    Pooyan => "pooyan",
    PrivateEye => "private_eye",
    Qbert => "qbert",
    Riverraid => "riverraid",
    RoadRunner => "road_runner",
    Robotank => "robotank",
    Seaquest => "seaquest",
    SirLancelot => "sir_lancelot",
    Skiing => "skiing",
    Solaris => "solaris",
    SpaceInvaders => "space_invaders",
    SpaceWar => "space_war",
    StarGunner => "star_gunner",
    Superman => "superman",
    Surround => "surround",
    Tennis => "tennis",
    Tetris => "tetris",
    TicTacToe3D => "tic_tac_toe_3d",
    TimePilot => "time_pilot",
    Trondead => "trondead",
    Turmoil => "turmoil",
    Tutankham => "tutankham",
    UpNDown => "up_n_down",
    Venture => "venture",
    VideoCheckers => "video_checkers",
    VideoChess => "video_chess",
    VideoCube => "video_cube",
    VideoPinball => "video_pinball",
    WizardOfWor => "wizard_of_wor",
    WordZapper => "word_zapper",
    YarsRevenge => "yars_revenge",
    Zaxxon => "zaxxon",
}

/// Registers `keel/<Game>-v5` for every game (the command line and the Python module call it at
/// start-up; calling it again is harmless).
pub fn register() -> Result<()> {
    entries().into_iter().try_for_each(registry::register)
}
