import sys, numpy as np, gymnasium as gym, keel
hz = float(sys.argv[1]); clip = sys.argv[2] if len(sys.argv) > 2 else "walk"
lengths, early_err = [], []
for seed in range(30):
    env = gym.make("keel/HumanoidTrack-v1", clip=clip, residual_actions=True, physics_hz=hz, max_episode_steps=150)
    obs, info = env.reset(seed=seed)
    zeros = np.zeros(env.action_space.shape, np.float32)
    errs = []
    for t in range(150):
        obs, r, term, trunc, info = env.step(zeros)
        errs.append(info["tracking_error"])
        if term or trunc: break
    lengths.append(t + 1); early_err.append(np.mean(errs[:10]))
    env.close()
lengths = np.array(lengths)
print(f"physics_hz {hz} {clip}: mean length {lengths.mean()/30:.2f} s, median {np.median(lengths)/30:.2f} s, fall-free {np.mean(lengths==150)*100:.0f}%, tracking error first 10 steps {np.mean(early_err):.4f} m")
