"""Distributed data parallel training: one model over N processes, launched by torchrun.

    torchrun --standalone --nproc_per_node 2 scripts/train.py --data my_capture

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them (or with WORLD_SIZE=1) every helper here is a
no-op and training runs in one process exactly as before. Under torchrun:
  * the process group uses gloo on CPU and nccl on CUDA (one GPU per process: cuda:LOCAL_RANK);
  * every rank walks the same per-epoch permutation; each global batch of batch_size samples is split
    across ranks (rank r takes positions r, r + N, ...), so per-rank batches are batch_size / N and the
    global batch, hence the optimisation, matches a single-process run with the same batch_size;
  * gradients are averaged by DistributedDataParallel; the trainer scales each rank's loss by its share
    of the global batch so that an uneven split still gives the global batch's mean gradient;
  * BatchNorm becomes SyncBatchNorm on CUDA (batch statistics over the global batch). PyTorch's
    SyncBatchNorm has no CPU implementation, so on CPU each rank normalises with its own shard's
    statistics and the running statistics are rank 0's: a BN model then trains slightly differently
    from one process, a BN-free model ("mlp") matches it to rounding;
  * every rank validates (identical weights, identical numbers); only rank 0 writes run files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_info() -> DistInfo:
    """What torchrun asked for (RANK / WORLD_SIZE / LOCAL_RANK); a single process when unset."""
    try:
        return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                        int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError as e:
        raise RuntimeError(f"torchrun environment variables RANK/WORLD_SIZE/LOCAL_RANK are not integers: {e}") from None


def info() -> DistInfo:
    """The running process group's rank and size; a single process when none is initialised."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return DistInfo()


def setup(device: torch.device) -> tuple[DistInfo, torch.device]:
    """Join the process group torchrun describes (idempotent). Returns the rank info and the device this
    rank trains on: cuda:LOCAL_RANK on CUDA, the given device otherwise."""
    env = env_info()
    if not env.enabled:
        return env, device
    if device.type == "cuda":
        device = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        if device.type == "cuda":  # device_id binds NCCL to this rank's GPU (barriers need it)
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
    return info(), device


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard(idx: torch.Tensor, di: DistInfo) -> torch.Tensor:
    """This rank's part of a global batch of sample indices (all of it in one process)."""
    return idx[di.rank::di.world_size] if di.enabled else idx


def global_mean(value: float, n_local: int, n_global: int, device: torch.device, di: DistInfo) -> float:
    """The global batch's mean from each rank's mean over its n_local samples (value itself in one
    process). A collective: every rank must call it for every batch."""
    if not di.enabled:
        return value
    t = torch.tensor([value * n_local], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / n_global


def broadcast_object(obj, di: DistInfo):
    """Rank 0's obj on every rank (e.g. the run folder it created)."""
    if not di.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(di: DistInfo) -> None:
    if di.enabled:
        dist.barrier()


def sync_buffers(model: nn.Module, di: DistInfo) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank, so validation and checkpoints
    agree on all ranks even where each rank's BN saw only its shard."""
    if di.enabled:
        for b in model.buffers():
            dist.broadcast(b, src=0)


def convert_batchnorm(model: nn.Module, device: torch.device, di: DistInfo) -> nn.Module:
    """BatchNorm -> SyncBatchNorm where PyTorch supports it (CUDA). Parameters and buffers are reused, so
    an optimizer built before or after sees the same tensors and state_dict keys do not change."""
    if di.enabled and device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


class DataParallelModel(DistributedDataParallel):
    """DistributedDataParallel that keeps GazeModel.points reachable: the trainer calls model.points(out)."""

    def points(self, out: torch.Tensor) -> torch.Tensor:
        return self.module.points(out)


def wrap(model: nn.Module, device: torch.device, di: DistInfo) -> nn.Module:
    """The model wrapped for gradient averaging across ranks (the model itself in one process)."""
    if not di.enabled:
        return model
    return DataParallelModel(model, device_ids=[device.index] if device.type == "cuda" else None)
