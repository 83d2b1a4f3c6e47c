"""A distributed PyTorch job for the launcher tests: an all-reduce over every rank (gloo, CPU).

FAIL_RANK=N makes rank N raise before the all-reduce, so the others are left waiting on it;
HOLD=1 makes every rank wait (for a stop signal) after it.
"""

import os
import time

import torch
import torch.distributed as dist


def say(line: str) -> None:
    os.write(1, f"{line}\n".encode())


dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
if os.environ.get("FAIL_RANK") == str(rank):
    raise ValueError(f"corrupt shard on rank {rank}")
value = torch.tensor([float(rank + 1)])
dist.all_reduce(value)
# One write per line: torchrun runs the ranks unbuffered (`python -u`), where print()
# writes the text and its newline apart, and two ranks' lines could end up as one.
say(f"rank {rank} of {world} on {os.environ.get('SM_CURRENT_HOST')}: sum {value.item():g}")
if os.environ.get("HOLD"):
    say(f"rank {rank} holding pid {os.getpid()}")
    time.sleep(600)
if rank == 0:
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "sum.txt"), "w") as handle:
        handle.write(f"{value.item():g}")
dist.destroy_process_group()
