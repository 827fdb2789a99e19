"""All-gather of per-sample losses for HR under ``torch.distributed`` (DDP).

HR weights depend on the whole batch, so each rank's losses are gathered, the program is solved once on the
global batch (identically on every rank), and each rank keeps its own slice.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def gather_rows(rows: Tensor) -> tuple[Tensor, int, int]:
    """Concatenate every rank's rows in rank order.

    Computes [rows_0; rows_1; …; rows_{W−1}] and this rank's offset Σ_{k<rank} n_k; ranks may hold different
    numbers of rows (a short last batch).

    Args:
        rows: This rank's (n, k) float64 rows (losses, and an inclusion mask when there is one).

    Returns:
        The global rows (N, k) on this rank's collective device, this rank's offset, and the world size W.

    Raises:
        RuntimeError: If ``torch.distributed`` is unavailable or its process group is not initialised.
    """
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "distributed=True needs an initialised torch.distributed process group "
            "(torch.distributed.init_process_group) before the first loss is computed."
        )
    world = dist.get_world_size()
    rank = dist.get_rank()
    # NCCL gathers CUDA tensors only; gloo and the others gather on the host.
    device = rows.device if dist.get_backend() == "nccl" else torch.device("cpu")
    local = rows.to(device)
    size = torch.tensor([local.shape[0]], dtype=torch.int64, device=device)
    sizes = [torch.empty_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    counts = [int(s.item()) for s in sizes]
    longest = max(counts)
    padded = torch.zeros((longest, local.shape[1]), dtype=local.dtype, device=device)
    padded[: local.shape[0]] = local
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    merged = torch.cat([block[:count] for block, count in zip(gathered, counts, strict=True)])
    return merged, sum(counts[:rank]), world
