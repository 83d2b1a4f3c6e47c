"""The training script baked into the test image (/opt/ml/code/train.py).

A script-mode script as the SageMaker toolkit runs it: hyperparameters as
arguments, paths as SM_* variables. It fits y = weight * x + bias to the
`train` channel's CSV rows (least squares, so the result is exact), saves
model.json to SM_MODEL_DIR, and records what it saw there too, for the test.
"""

import argparse
import csv
import json
import os
import pathlib
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--lr", type=float, required=True)
    args = parser.parse_args()
    rows = []
    channel = pathlib.Path(os.environ["SM_CHANNEL_TRAIN"])
    for path in sorted(channel.glob("*.csv")):
        with path.open() as handle:
            rows += [(float(x), float(y)) for x, y in csv.reader(handle)]
    n = len(rows)
    mean_x = sum(x for x, _ in rows) / n
    mean_y = sum(y for _, y in rows) / n
    weight = (sum((x - mean_x) * (y - mean_y) for x, y in rows)
              / sum((x - mean_x) ** 2 for x, _ in rows))
    bias = mean_y - weight * mean_x
    for epoch in range(1, args.epochs + 1):
        print(f"epoch {epoch}/{args.epochs} rows={n} lr={args.lr}", flush=True)
    print("training done: weight and bias found", file=sys.stderr, flush=True)
    model_dir = pathlib.Path(os.environ["SM_MODEL_DIR"])
    (model_dir / "model.json").write_text(json.dumps({
        "weight": round(weight, 9),
        "bias": round(bias, 9),
        "argv": sys.argv[1:],
        "program": os.path.abspath(__file__),
        "cwd": os.getcwd(),
        "rows": n,
        "channel": str(channel),
        "current_host": os.environ["SM_CURRENT_HOST"],
        "hosts": json.loads(os.environ["SM_HOSTS"]),
        "stdout_isatty": sys.stdout.isatty(),
        "stderr_isatty": sys.stderr.isatty(),
        "pid": os.getpid(),
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
