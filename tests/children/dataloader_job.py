"""Test child: a SageMaker-style PyTorch training script (CPU) with DataLoader workers.

It trains a small MLP for many epochs on synthetic data loaded by a
DataLoader with worker processes (each item takes a little time, as if read
and decoded from disk). SIGTERM, what SageMaker sends when a job is stopped or
a spot instance is reclaimed, only sets a flag: the loop notices it after the
current batch, saves a checkpoint (model, optimizer, epoch, step; fsynced,
then renamed into place) and exits 0. A checkpoint left by an earlier run is
resumed from.

The model has ~2 M parameters on purpose: saving it takes tens of
milliseconds, like a real checkpoint and unlike a toy one. When the workers
get SIGTERM too, torch's SIGCHLD handler in this process raises
"DataLoader worker (pid N) is killed by signal: Terminated" a few
milliseconds later; a toy checkpoint is written and the process gone before
that (about 1 run in 5 then exits 0), a real-sized one is not.

Lines for the tests to sync on (stdout, flushed):
    training started pid <pid> workers <pid>,<pid>   once the first batch arrived
    stop requested at step <step> workers alive <n>  the loop saw the SIGTERM flag
    checkpoint saved step <step> path <file>
    training complete step <step>                    (only if never stopped)

argv: [--checkpoint-dir DIR] [--model-dir DIR] [--epochs N] [--workers N] [--batch-size N]
      [--hidden N] [--item-delay SECONDS]
Checkpoints go to --checkpoint-dir, else $SM_CHECKPOINT_DIR, else
/opt/ml/checkpoints (the local path SageMaker syncs to S3); the final model
to $SM_MODEL_DIR (which `sm-entry train` exports), else /opt/ml/model.
"""

import argparse
import os
import signal
import sys
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

stop_requested = False


def on_sigterm(signum, frame):
    # Only a flag: raising here could interrupt torch mid-step or mid-save.
    global stop_requested
    stop_requested = True


class SyntheticRegression(Dataset):
    """y = x . w + 0.5, generated per index so every worker sees the same data."""

    def __init__(self, size, features, item_delay):
        self.size = size
        self.features = features
        self.item_delay = item_delay
        self.weights = torch.arange(1, features + 1, dtype=torch.float32) / features

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        time.sleep(self.item_delay)  # the I/O and decoding of a real sample
        generator = torch.Generator().manual_seed(index)
        x = torch.randn(self.features, generator=generator)
        y = (x @ self.weights + 0.5).unsqueeze(0)
        return x, y


def worker_pids(loader_iter):
    """The DataLoader's worker processes: from the iterator, else our children in /proc."""
    workers = getattr(loader_iter, "_workers", None)
    if workers:
        return [w.pid for w in workers]
    pid = os.getpid()
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def alive(pid):
    """Whether a process runs (read from /proc: waiting for it would reap it under torch)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def save_checkpoint(path, model, optimizer, epoch, step):
    """Written whole or not at all, and on disk before we exit (the instance may go away)."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "epoch": epoch, "step": step}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint-dir",
                        default=os.environ.get("SM_CHECKPOINT_DIR", "/opt/ml/checkpoints"))
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--item-delay", type=float, default=0.005)
    args, _ = parser.parse_known_args()  # SageMaker may pass hyperparameters we do not use

    signal.signal(signal.SIGTERM, on_sigterm)
    torch.manual_seed(0)
    torch.set_num_threads(1)

    os.makedirs(args.checkpoint_dir, exist_ok=True)
    checkpoint = os.path.join(args.checkpoint_dir, "checkpoint.pt")
    # ~2 M parameters: a checkpoint of ~17 MB with the optimizer's momentum.
    model = nn.Sequential(nn.Linear(16, args.hidden), nn.ReLU(), nn.Linear(args.hidden, args.hidden),
                          nn.ReLU(), nn.Linear(args.hidden, args.hidden), nn.ReLU(),
                          nn.Linear(args.hidden, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.MSELoss()
    start_epoch, step = 0, 0
    if os.path.exists(checkpoint):
        state = torch.load(checkpoint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, step = state["epoch"], state["step"]
        print(f"resumed from epoch {start_epoch} step {step}", flush=True)

    dataset = SyntheticRegression(size=256, features=16, item_delay=args.item_delay)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True,
                        num_workers=args.workers, persistent_workers=args.workers > 0)

    announced = False
    for epoch in range(start_epoch, args.epochs):
        loader_iter = iter(loader)
        for x, y in loader_iter:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            step += 1
            if not announced:
                pids = ",".join(str(p) for p in worker_pids(loader_iter))
                print(f"training started pid {os.getpid()} workers {pids}", flush=True)
                announced = True
            if stop_requested:
                # Resume at this epoch: the rest of it is trained again.
                running = sum(alive(pid) for pid in worker_pids(loader_iter))
                print(f"stop requested at step {step} workers alive {running}", flush=True)
                save_checkpoint(checkpoint, model, optimizer, epoch, step)
                print(f"checkpoint saved step {step} path {checkpoint}", flush=True)
                return 0
        print(f"epoch {epoch} loss {loss.item():.4f}", flush=True)

    os.makedirs(args.model_dir, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(args.model_dir, "model.pt"))
    print(f"training complete step {step}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
