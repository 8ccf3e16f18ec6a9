"""Golden data for Keel's Atari envs, from the reference libraries themselves.

Runs in the Atari venv (ale-py 0.12.1, gymnasium 1.4.0, opencv-python-headless, and
Stable-Baselines3 2.9.2 from Keel's environment):

    bash scripts/atari_venv.sh scripts/golden_atari.py

and writes envs/tests/fixtures/atari/*.json. The fixtures hold no ROM data: each observation is
kept as a 64-bit checksum (see `checksum`), next to the reward, flags and lives of the step.

- `gymnasium_<game>.json`: FrameStackObservation(AtariPreprocessing(gymnasium.make(
  "ALE/<Game>-v5", frameskip=1, repeat_action_probability=0)), 4) for 500 steps of seeded random
  actions, reset whenever an episode ends (as a NEXT_STEP vector env does).
- `cleanrl_<game>.json`: CleanRL ppo_atari.py's make_env on <Game>NoFrameskip-v4 (SB3's
  NoopResetEnv, MaxAndSkipEnv, EpisodicLifeEnv, FireResetEnv, ClipRewardEnv, then Gymnasium's
  ResizeObservation, GrayscaleObservation, FrameStackObservation).
- `resize.json`: cv2.resize(..., INTER_AREA) of procedurally generated images (the generator
  is `pattern`, written the same way in envs/tests/atari_golden.rs), as checksums.
- `emulator.json`: ale-py's own emulator on every ROM it ships, `EMULATOR_FRAMES` frames of
  legal actions from a fixed LCG (each held for 4 frames, game reset at game over), folded
  into one digest per game: every frame's screen (palette indices), RAM and reward. Keel
  compiles ALE itself, with one loop of the TIA rewritten, so this checks the emulator.

The number of no-ops each reset drew is recorded (`noops`), so Keel replays the same starts
through its `noops` reset option; everything else must match exactly.
"""

import json
import pathlib

import ale_py
import cv2
import gymnasium as gym
import numpy as np
from gymnasium.wrappers import (
    AtariPreprocessing,
    FrameStackObservation,
    GrayscaleObservation,
    ResizeObservation,
)
from stable_baselines3.common.atari_wrappers import (
    ClipRewardEnv,
    EpisodicLifeEnv,
    FireResetEnv,
    MaxAndSkipEnv,
    NoopResetEnv,
)

gym.register_envs(ale_py)
OUT = pathlib.Path(__file__).resolve().parent.parent / "envs" / "tests" / "fixtures" / "atari"
STEPS = 500
SEED = 7
MASK = (1 << 64) - 1


def splitmix(x):
    """SplitMix64 of a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


_weights = {}


def checksum(obs):
    """sum_i obs[i] * splitmix64(i) mod 2^64 over the C-order bytes, as 16 hex digits."""
    flat = np.ascontiguousarray(obs, dtype=np.uint8).reshape(-1)
    n = flat.size
    if n not in _weights:
        _weights[n] = splitmix(np.arange(n, dtype=np.uint64))
    with np.errstate(over="ignore"):
        total = np.sum(flat.astype(np.uint64) * _weights[n], dtype=np.uint64)
    return f"{int(total) & MASK:016x}"


def pattern(h, w, c, seed):
    """Deterministic test image: bytes of a 64-bit LCG, row-major (h, w, c)."""
    out = np.empty(h * w * c, dtype=np.uint8)
    x = seed & MASK
    for i in range(out.size):
        x = (x * 6364136223846793005 + 1442695040888963407) & MASK
        out[i] = (x >> 33) & 0xFF
    return out.reshape((h, w, c) if c > 1 else (h, w))


class NoopLog:
    """Stands in for the base env's np_random and records every integers() draw (the no-op
    counts of AtariPreprocessing and NoopResetEnv)."""

    def __init__(self, rng, log):
        self._rng, self._log = rng, log

    def integers(self, *args, **kwargs):
        value = self._rng.integers(*args, **kwargs)
        self._log.append(int(value))
        return value

    def __getattr__(self, name):
        return getattr(self._rng, name)


def record_noops(env, log):
    base = env.unwrapped
    original = base.seed_game

    def seed_game(seed=None):
        seeds = original(seed)
        base._np_random = NoopLog(base._np_random, log)
        return seeds

    base.seed_game = seed_game


def gymnasium_env(game):
    env = gym.make(f"ALE/{game}-v5", frameskip=1, repeat_action_probability=0.0)
    env = AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84, terminal_on_life_loss=False, grayscale_obs=True)
    return FrameStackObservation(env, 4)


def cleanrl_env(game):
    env = gym.make(f"{game}NoFrameskip-v4")
    env = NoopResetEnv(env, noop_max=30)
    env = MaxAndSkipEnv(env, skip=4)
    env = EpisodicLifeEnv(env)
    if "FIRE" in env.unwrapped.get_action_meanings():
        env = FireResetEnv(env)
    env = ClipRewardEnv(env)
    env = ResizeObservation(env, (84, 84))
    env = GrayscaleObservation(env)
    return FrameStackObservation(env, 4)


def rollout(env, preset, game):
    log = []
    record_noops(env, log)
    rng = np.random.default_rng(SEED)
    n = env.action_space.n
    obs, info = env.reset(seed=SEED)
    lives = env.unwrapped.ale.lives
    resets = [{"step": 0, "noops": log[:], "obs": checksum(obs), "lives": lives()}]
    del log[:]
    steps = []
    actions = rng.integers(0, n, size=STEPS)
    done = False
    for t, a in enumerate(actions):
        if done:
            obs, info = env.reset()
            resets.append({"step": t, "noops": log[:], "obs": checksum(obs), "lives": lives()})
            del log[:]
            done = False
            steps.append(None)
            continue
        obs, reward, terminated, truncated, info = env.step(int(a))
        steps.append({
            "action": int(a),
            "obs": checksum(obs),
            "reward": float(reward),
            "terminated": bool(terminated),
            "truncated": bool(truncated),
            "lives": lives(),
        })
        done = terminated or truncated
    return {
        "preset": preset,
        "game": game,
        "id": f"keel/{game}-v5",
        "config": {"preset": preset, "repeat_action_probability": 0.0},
        "seed": SEED,
        "actions": [int(a) for a in actions],
        "resets": resets,
        "steps": steps,
        "versions": {"ale_py": ale_py.__version__, "gymnasium": gym.__version__, "cv2": cv2.__version__},
    }


def resize_cases():
    cases = []
    for (h, w, c, oh, ow, seed) in [(210, 160, 1, 84, 84, 1), (210, 160, 3, 84, 84, 2), (210, 160, 1, 64, 48, 3), (210, 160, 1, 100, 100, 4), (210, 160, 3, 42, 42, 5)]:
        img = pattern(h, w, c, seed)
        out = cv2.resize(img, (ow, oh), interpolation=cv2.INTER_AREA)
        cases.append({"height": h, "width": w, "channels": c, "out_height": oh, "out_width": ow, "seed": seed,
                      "input": checksum(img), "output": checksum(out)})
    return {"cv2": cv2.__version__, "cases": cases}


EMULATOR_FRAMES = 1000


def splitmix_int(x):
    """SplitMix64 of one Python int."""
    z = (x + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def emulator_digests():
    """One digest per ROM: the fold `h = splitmix(h ^ x)` over every frame's screen checksum,
    RAM checksum and reward (two's complement), after `EMULATOR_FRAMES` frames."""
    games = {}
    for rom in sorted(ale_py.roms.get_all_rom_ids()):
        path = ale_py.roms.get_rom_path(rom)
        # A few shipped ROMs are not in ALE's list (ALE exits on them); Keel registers neither.
        if ale_py.ALEInterface.isSupportedROM(path) is None:
            continue
        ale = ale_py.ALEInterface()
        ale.setLoggerMode(ale_py.LoggerMode.Error)
        ale.setInt("random_seed", SEED)
        ale.setFloat("repeat_action_probability", 0.0)
        ale.loadROM(path)
        legal = ale.getLegalActionSet()
        state, digest, total, resets = 12345, 0, 0, 0
        for frame in range(EMULATOR_FRAMES):
            if frame % 4 == 0:
                state = (state * 1103515245 + 12345) & 0xFFFFFFFF
                action = legal[(state >> 16) % len(legal)]
            reward = ale.act(action)
            total += reward
            for x in (int(checksum(ale.getScreen()), 16), int(checksum(ale.getRAM()), 16), reward & MASK):
                digest = splitmix_int(digest ^ x)
            if ale.game_over():
                ale.reset_game()
                resets += 1
        games[rom] = {"digest": f"{digest:016x}", "reward": total, "resets": resets}
    return {"ale_py": ale_py.__version__, "frames": EMULATOR_FRAMES, "seed": SEED, "games": games}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    emulator = emulator_digests()
    (OUT / "emulator.json").write_text(json.dumps(emulator, indent=1) + "\n")
    print(f"emulator.json: {len(emulator['games'])} games")
    for game in ["Pong", "Breakout"]:
        for preset, make in [("gymnasium", gymnasium_env), ("cleanrl", cleanrl_env)]:
            data = rollout(make(game), preset, game)
            path = OUT / f"{preset}_{game.lower()}.json"
            path.write_text(json.dumps(data, separators=(",", ":")) + "\n")
            print(f"{path.name}: {len(data['resets'])} resets, reward sum {sum(s['reward'] for s in data['steps'] if s):.0f}")
    (OUT / "resize.json").write_text(json.dumps(resize_cases(), indent=1) + "\n")
    print("resize.json written")


if __name__ == "__main__":
    main()
