"""An example SageMaker script-mode training script, unchanged from what the
training toolkit runs: hyperparameters arrive as command-line arguments,
paths as SM_* environment variables. It fits y = w*x + b to the `train`
channel's CSV files by gradient descent and saves the model to SM_MODEL_DIR.
"""

import argparse
import csv
import json
import os
import pathlib
import signal
import sys


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--learning-rate", "--learning_rate", type=float, default=0.05)
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "model"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN", "data"))
    return parser.parse_args()


def load(directory):
    points = []
    for path in sorted(pathlib.Path(directory).glob("*.csv")):
        with path.open() as handle:
            points += [(float(x), float(y)) for x, y in csv.reader(handle)]
    if not points:
        raise ValueError(f"no training data in {directory}")
    return points


def main():
    args = parse_args()
    if args.learning_rate <= 0:
        raise ValueError(f"bad learning rate: {args.learning_rate}")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))  # spot interruption
    points = load(args.train)
    w = b = 0.0
    for epoch in range(1, args.epochs + 1):
        grad_w = sum(2 * (w * x + b - y) * x for x, y in points) / len(points)
        grad_b = sum(2 * (w * x + b - y) for x, y in points) / len(points)
        w, b = w - args.learning_rate * grad_w, b - args.learning_rate * grad_b
        loss = sum((w * x + b - y) ** 2 for x, y in points) / len(points)
        print(f"epoch {epoch} loss {loss:.6f}", flush=True)
        if stop:
            print("SIGTERM: saving a checkpoint and stopping", flush=True)
            break
    model_dir = pathlib.Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    model = {"w": w, "b": b, "epochs": epoch, "hosts": json.loads(os.environ.get("SM_HOSTS", "[]"))}
    (model_dir / "model.json").write_text(json.dumps(model, indent=2) + "\n")
    print(f"saved {model_dir / 'model.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
