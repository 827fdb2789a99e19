"""HRLoss(distributed=True) under DDP on 2 gloo processes equals one process on the concatenated batch."""

from __future__ import annotations

import copy
import datetime
import socket

import pytest
from frameworks import require

torch = require("torch")

import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402

from hrcore.adapters.torch import HRLoss  # noqa: E402

SHARDS = (slice(0, 7), slice(7, 11))  # unequal shards: a short batch on rank 1


def batch():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(11, 5, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 3, (11,), generator=generator)
    y[9] = -100  # ignored on rank 1 only: it must not consume α on either rank
    return x, y


def worker(rank: int, port: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=2,
        timeout=datetime.timedelta(seconds=30),
    )
    try:
        torch.manual_seed(1)
        model = nn.Linear(5, 3).double()
        reference = copy.deepcopy(model)
        x, y = batch()
        criterion = HRLoss(nn.CrossEntropyLoss(reduction="none"), alpha=0.2, r=0.3, distributed=True)
        ddp = DistributedDataParallel(model)  # kept alive: its reducer averages the gradients in backward
        local = criterion(ddp(x[SHARDS[rank]]), y[SHARDS[rank]])
        local.backward()

        single = HRLoss(nn.CrossEntropyLoss(reduction="none"), alpha=0.2, r=0.3)
        expected = single(reference(x), y)
        expected.backward()
        for got, want in zip(model.parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(got.grad, want.grad, rtol=1e-10, atol=1e-12)
        mean = local.detach().clone()
        dist.all_reduce(mean)
        torch.testing.assert_close(mean / 2, expected.detach(), rtol=1e-10, atol=1e-12)
        assert abs(criterion.last_solution.value - expected.item()) < 1e-10
        # Both ranks done before teardown, and DDP's reducer (it holds the group and gloo work) gone before
        # the group: tearing down under a live reducer intermittently aborted a rank ("terminate called").
        dist.barrier()
        del ddp
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process_on_the_global_batch():
    if not dist.is_available():
        pytest.fail("torch.distributed is unavailable in this PyTorch build")
    mp.spawn(worker, args=(free_port(),), nprocs=2, join=True)


def test_distributed_without_a_process_group_says_how_to_fix_it():
    criterion = HRLoss(nn.CrossEntropyLoss(reduction="none"), distributed=True)
    with pytest.raises(RuntimeError, match="init_process_group"):
        criterion(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))
