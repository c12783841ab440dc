"""Processes under `torchrun`: rank, world size, device, and the collective operations the
training loop needs (gloo on CPU, NCCL on GPUs). Without torchrun: one process, no-ops. Also
`cuda_math`, the process's CUDA arithmetic settings during a run."""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist

# How long a collective operation may wait: gloo's default, also for NCCL (whose own is 10
# minutes), since process 0 alone writes image grids and videos and scores config.metrics
# (the reals' features of a large metrics.images, the first time), while the others wait for
# it in their next collective.
PROCESS_GROUP_TIMEOUT = datetime.timedelta(minutes=30)


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @classmethod
    def join(cls) -> Distributed:
        """Join the process group when launched by torchrun (WORLD_SIZE > 1), before the device
        is chosen (CPU tensors go through gloo, CUDA ones through NCCL where there is CUDA), so
        that the processes can agree on a refusal of the config that chooses it
        (`first_failure`). The device is the CPU until `setup`."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        if world > 1 and not dist.is_initialized():
            # torch._dynamo (which the first optimizer imports) must come first: imported after
            # the group exists, it keeps gloo's threads alive past destroy_process_group (torch
            # 2.13), to be torn down at interpreter exit, where they sometimes abort the process
            # ("terminate called without an active exception").
            import torch._dynamo  # noqa: F401

            dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo",
                                    timeout=PROCESS_GROUP_TIMEOUT)
        return cls(rank, world, local_rank)

    @classmethod
    def setup(cls, device: str = "auto") -> Distributed:
        """`join`, then take this process's device: "auto" (CUDA where there is, one GPU per
        process by LOCAL_RANK), "cuda" or "cpu"."""
        joined = cls.join()
        use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("train: config.device: expected a usable device, got 'cuda', but "
                             "torch.cuda.is_available() is False")
        joined.device = torch.device("cuda", joined.local_rank) if use_cuda else torch.device("cpu")
        if use_cuda:
            torch.cuda.set_device(joined.device)
        return joined

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a tensor over processes (a no-op alone)."""
        if self.world == 1:
            return value
        value = value.clone()
        dist.all_reduce(value)
        return value / self.world

    def any(self, flag: bool) -> bool:
        """True if `flag` is set in any process (one tiny all-reduce; a no-op alone)."""
        if self.world == 1:
            return flag
        value = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def first_failure(self, error: Exception | None) -> str | None:
        """The outcome of a check that every process makes on its own, agreed by all: None when
        it passed everywhere, else the message of the lowest rank that failed it, naming that
        process and its machine when it is not process 0. Every process must call it."""
        if self.world == 1:
            return None if error is None else str(error)
        outcomes = [None] * self.world
        dist.all_gather_object(outcomes, None if error is None else (str(error), socket.gethostname()))
        failed = [(rank, outcome) for rank, outcome in enumerate(outcomes) if outcome is not None]
        if not failed:
            return None
        rank, (message, host) = failed[0]
        return message if rank == 0 else f"{message} (said by process {rank} of {self.world}, on {host})"

    def gather(self, value) -> list | None:
        """Every process's `value` (any picklable object), by rank, in process 0; None in the
        others. Every process must call it."""
        if self.world == 1:
            return [value]
        gathered = [None] * self.world if self.main else None
        dist.gather_object(value, gathered, dst=0)
        return gathered

    def share(self, count: int) -> range:
        """This process's share of items 0..count-1 when every process takes one (unequal when
        world does not divide count): rank, rank + world, ..."""
        return range(self.rank, count, self.world)

    def gather_shares(self, items: list, count: int) -> list | None:
        """The `items` every process made for its `share` of 0..count-1, in process 0 back in
        the order of 0..count-1; None in the others. Every process must call it."""
        parts = self.gather(list(items))
        return None if parts is None else [parts[i % self.world][i // self.world] for i in range(count)]

    def average_gradients(self, module: torch.nn.Module) -> None:
        """Average the parameters' gradients over processes in one all-reduce (as StyleGAN2-ADA
        and EG3D do instead of wrapping in DDP, which the phased G/D steps would fight);
        missing gradients count as zero."""
        if self.world == 1:
            return
        params = [p for p in module.parameters() if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.flatten() for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        for p, g in zip(params, flat.split([p.numel() for p in params])):
            p.grad = g.reshape(p.shape)

    def average_buffers(self, module: torch.nn.Module) -> None:
        """Average floating-point buffers over processes: running statistics updated from each
        process's slice of the batch (the mapping network's w_avg, a linear EMA) become those
        of the global batch; buffers that agree everywhere stay as they are."""
        if self.world == 1:
            return
        for buffer in module.buffers():
            if buffer.is_floating_point():
                dist.all_reduce(buffer.data)
                buffer.data /= self.world

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every process."""
        if self.world > 1:
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor.data, src=0)

    def gather_rng(self, *, local: bool = False) -> dict[str, torch.Tensor]:
        """Every process's torch RNG states (the in-model randomness: render jitter, noise):
        ``{"cpu": [world, bytes]}`` plus ``"cuda"`` on GPUs. local: this process's alone
        (``[1, bytes]``), with no collective operation (an interrupted process cannot count on
        the others)."""
        states = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            states["cuda"] = torch.cuda.get_rng_state(self.device)
        if self.world == 1 or local:
            return {k: v[None] for k, v in states.items()}
        gathered = [None] * self.world
        dist.all_gather_object(gathered, states)
        return {k: torch.stack([g[k] for g in gathered]) for k in states}

    def restore_rng(self, states: dict[str, torch.Tensor]) -> bool:
        """Set this process's RNG states from `gather_rng`'s output; False (nothing set) when it
        was saved by a different number of processes."""
        if len(states["cpu"]) != self.world:
            return False
        # A row of the stacked states is a view at a storage offset, and torch.set_rng_state
        # crashes the process (SIGSEGV, torch 2.13) on any row but the first: give it a copy.
        torch.set_rng_state(states["cpu"][self.rank].clone())
        if "cuda" in states and self.device.type == "cuda":
            torch.cuda.set_rng_state(states["cuda"][self.rank].clone(), self.device)
        return True

    def finish(self) -> None:
        """Leave the process group once every process has come here (the end of a run, or a
        stop after the same step in all)."""
        if self.world > 1:
            dist.barrier()
        self.close()

    def close(self) -> None:
        """Leave the process group (after a refusal agreed by all, or an error)."""
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


@contextlib.contextmanager
def cuda_math(device: torch.device, *, cudnn_benchmark: bool, tf32: bool):
    """torch's process-wide CUDA arithmetic while a run on a CUDA `device` trains (the config's
    `cudnn_benchmark` and `tf32`), as it was afterwards; on the CPU, nothing."""
    if device.type != "cuda":
        yield
        return
    settings = ((torch.backends.cudnn, "benchmark", cudnn_benchmark),
                (torch.backends.cudnn, "allow_tf32", tf32),
                (torch.backends.cuda.matmul, "allow_tf32", tf32))
    before = [getattr(owner, name) for owner, name, _ in settings]
    for owner, name, value in settings:
        setattr(owner, name, value)
    try:
        yield
    finally:
        for (owner, name, _), value in zip(settings, before):
            setattr(owner, name, value)
