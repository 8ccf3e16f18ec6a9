"""Starts a local multi-node Ray cluster on this machine (`ray.cluster_utils.Cluster`), runs a
command with RAY_ADDRESS set to it (`{address}` in the command is replaced by the address), and
shuts the cluster down however the command ends. Used by Keel's Ray test; also a quick way to
try `keel sweep --ray` without a real cluster:

    bash scripts/ray_venv.sh scripts/ray_cluster.py --nodes 2 -- \\
        target/keel sweep configs/sweeps/smoke.toml --out runs/smoke-ray --ray {address}
"""

import argparse
import os
import subprocess
import sys

from ray.cluster_utils import Cluster


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--cpus-per-node", type=int, default=1)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": args.cpus_per_node})
    rc = 1
    try:
        for _ in range(args.nodes - 1):
            cluster.add_node(num_cpus=args.cpus_per_node)
        cluster.wait_for_nodes()
        print(f"ray cluster: {args.nodes} nodes at {cluster.address}", file=sys.stderr, flush=True)
        command = [part.replace("{address}", cluster.address) for part in command]
        rc = subprocess.call(command, env=dict(os.environ, RAY_ADDRESS=cluster.address))
    finally:
        cluster.shutdown()
    sys.exit(rc)


if __name__ == "__main__":
    main()
