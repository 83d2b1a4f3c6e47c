"""An MPI job for the launcher tests: each rank says who and where it is (no MPI library needed).

Each rank writes model/rank-N.txt with its network namespace (the "host" it runs on), so the
test can tell which host ran which rank. FAIL_RANK=N makes rank N raise; HOLD=1 makes every
rank write model/rank-N.pid and wait for a stop signal.
"""

import os
import time

rank = int(os.environ["OMPI_COMM_WORLD_RANK"])
size = int(os.environ["OMPI_COMM_WORLD_SIZE"])
model = os.environ["SM_MODEL_DIR"]
print(f"rank {rank} of {size}, local rank {os.environ['OMPI_COMM_WORLD_LOCAL_RANK']}",
      flush=True)
if os.environ.get("FAIL_RANK") == str(rank):
    raise ValueError(f"corrupt shard on rank {rank}")
with open(os.path.join(model, f"rank-{rank}.txt"), "w") as handle:
    handle.write(os.readlink("/proc/self/ns/net"))
if os.environ.get("HOLD"):
    with open(os.path.join(model, f"rank-{rank}.pid"), "w") as handle:
        handle.write(str(os.getpid()))
    time.sleep(600)
