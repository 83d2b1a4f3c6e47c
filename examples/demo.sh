#!/usr/bin/env bash
# `make demo`: run the example training job end to end through the built
# binary, on a copy of the example /opt/ml tree, and show the model it wrote.
set -euo pipefail
binary=$(realpath "${1:-dist/sm-entry}")
here=$(cd "$(dirname "$0")" && pwd)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
cp -r "$here/opt_ml/." "$root/"
echo "== sm-entry train on $root (example: examples/train/train.py)"
"$binary" --root "$root" --log-format text train -- \
    python3 "$here/train/train.py" --epochs 40 --learning-rate 0.1 \
    --model-dir "$root/model" --train "$root/input/data/train"
echo "== $root/model/model.json"
cat "$root/model/model.json"
