"""val/swd and val/hist_w1 do not depend on the number of processes: two gloo ranks, each
holding a DistributedSampler shard of the real set (padded with a repeat), give the one-process
values."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DistributedSampler

from diffrendergan.metrics.realism import GreyLevelW1, SlicedWasserstein, histogram_distance, swd

pytestmark = pytest.mark.ddp
N_REAL = 11  # odd: the sampler pads rank 1's shard with a repeat of patch 0


def _sets() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    real = torch.rand(N_REAL, 1, 32, 32, generator=g)
    fake = (real[:6] * 0.8 + 0.1).clone()
    return real, fake


def _rank(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        real, fake = _sets()
        shard = torch.tensor(list(DistributedSampler(range(N_REAL), world, rank, shuffle=False)))
        values = {}
        for name, metric in (("swd", SlicedWasserstein(seed=0)), ("hist", GreyLevelW1())):
            metric.update(real[shard], real=True, ids=shard)
            metric.update(fake, real=False)  # every rank renders the same evaluation images
            value = metric.compute()
            values[name] = value["mean"] if isinstance(value, dict) else value
        torch.save({**values, "shard": shard}, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_give_the_one_process_value(tmp_path: Path) -> None:
    mp.spawn(_rank, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert len(results[1]["shard"]) == len(results[0]["shard"]) == 6  # 11 padded to 12
    real, fake = _sets()
    shard = results[0]["shard"]
    for name, one_shot in (("swd", lambda a, b: swd(a, b, seed=0)["mean"]), ("hist", histogram_distance)):
        single = one_shot(real, fake)
        assert one_shot(real[shard], fake) != pytest.approx(single, rel=1e-3)  # one rank alone differs
        for r in results:
            assert float(r[name]) == pytest.approx(single, rel=1e-6), name
