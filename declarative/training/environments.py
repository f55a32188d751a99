"""Who this process is in a multi-process run: read from what torchrun or SLURM set, never guessed.

    torchrun / torch.distributed's elastic agent   RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
                                                   GROUP_RANK, MASTER_ADDR, MASTER_PORT
    SLURM (`srun`)                                 SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID,
                                                   SLURM_NODEID, SLURM_NODELIST, SLURM_JOB_ID

`dtrain run` with `trainer.devices: N` on one machine starts the N processes itself through the
elastic agent (declarative/training/launcher.py), so each of them finds the torchrun variables.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Mapping

__all__ = ["ClusterEnvironment", "detect_environment", "slurm_hosts"]


@dataclass(frozen=True)
class ClusterEnvironment:
    """This process's place in a run of several processes, and where their rendezvous is."""

    source: str  # "torchrun" or "slurm"
    world_size: int
    global_rank: int
    local_rank: int
    local_world_size: int
    node_rank: int
    main_address: str
    main_port: int

    def export(self) -> None:
        """Set the variables torch.distributed's `env://` initialisation reads."""
        os.environ.update(MASTER_ADDR=self.main_address, MASTER_PORT=str(self.main_port),
                          RANK=str(self.global_rank), WORLD_SIZE=str(self.world_size),
                          LOCAL_RANK=str(self.local_rank))


_TORCHRUN = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def detect_environment(env: Mapping[str, str] | None = None) -> ClusterEnvironment | None:
    """The launcher's description of this process, or None when no launcher started it."""
    env = os.environ if env is None else env
    if all(key in env for key in _TORCHRUN):
        local_world_size = int(env.get("LOCAL_WORLD_SIZE", env["WORLD_SIZE"]))
        return ClusterEnvironment(
            "torchrun", int(env["WORLD_SIZE"]), int(env["RANK"]), int(env["LOCAL_RANK"]), local_world_size,
            int(env.get("GROUP_RANK", int(env["RANK"]) // max(local_world_size, 1))),
            env["MASTER_ADDR"], int(env["MASTER_PORT"]))
    if "SLURM_NTASKS" in env and "SLURM_PROCID" in env and env.get("SLURM_JOB_NAME") not in ("bash", "interactive"):
        world_size = int(env["SLURM_NTASKS"])
        if world_size < 2:
            return None
        hosts = slurm_hosts(env.get("SLURM_NODELIST", env.get("SLURM_JOB_NODELIST", "")))
        nodes = max(int(env.get("SLURM_NNODES", len(hosts) or 1)), 1)
        job_id = env.get("SLURM_JOB_ID", "0")
        # Lightning's rule: a port from the job id, so every task of the job computes the same one.
        port = int(env.get("MASTER_PORT", 15000 + int(re.sub(r"\D", "", job_id)[-4:] or 0)))
        return ClusterEnvironment(
            "slurm", world_size, int(env["SLURM_PROCID"]), int(env.get("SLURM_LOCALID", 0)),
            int(env.get("SLURM_NTASKS_PER_NODE", "").split("(")[0] or world_size // nodes),
            int(env.get("SLURM_NODEID", 0)), env.get("MASTER_ADDR", hosts[0] if hosts else "127.0.0.1"), port)
    return None


def slurm_hosts(nodelist: str) -> list[str]:
    """SLURM's compressed host list expanded: `node[01-03,07],gpu5` → node01, node02, node03, node07, gpu5."""
    hosts: list[str] = []
    for prefix, ranges, plain in re.findall(r"([^,\[]+)\[([^\]]+)\]|([^,\[\]]+)", nodelist):
        if plain:
            hosts.append(plain)
            continue
        for part in ranges.split(","):
            if "-" in part:
                start, end = part.split("-", 1)
                hosts.extend(f"{prefix}{i:0{len(start)}d}" for i in range(int(start), int(end) + 1))
            else:
                hosts.append(prefix + part)
    return hosts
