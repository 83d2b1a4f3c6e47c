#!/usr/bin/env bash
# `make demo`: a SageMaker training job end to end through the built binary:
# a copy of the example /opt/ml tree (examples/opt_ml: hyperparameters, one
# host, a `train` channel), the example script delivered as the submit
# directory (examples/train), then the model file it wrote.
set -euo pipefail
binary=$(realpath "${1:-dist/sm-entry}")
here=$(cd "$(dirname "$0")" && pwd)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
cp -r "$here/opt_ml/." "$root/"
echo "== sm-entry --root $root train   (program: train.py from examples/train)"
SAGEMAKER_SUBMIT_DIRECTORY="$here/train" "$binary" --root "$root" --log-format text train
echo "== $root/output: $(ls "$root/output" | tr "\n" " ")"
echo "== $root/model/model.json"
cat "$root/model/model.json"
