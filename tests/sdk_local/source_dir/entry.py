"""The entry point of scenario 2 (Estimator(entry_point="entry.py", source_dir=...)).

Local mode mounts source_dir at /opt/ml/code and names it as the submit
directory; the script imports a module beside it (PYTHONPATH starts with the
code directory) and records what it was given.
"""

import argparse
import json
import os
import pathlib
import sys

import helper


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--tag", required=True)
    args = parser.parse_args()
    print(f"entry point: {helper.describe(args.epochs, args.tag)}", flush=True)
    model_dir = pathlib.Path(os.environ["SM_MODEL_DIR"])
    (model_dir / "model.json").write_text(json.dumps({
        "program": os.path.abspath(__file__),
        "cwd": os.getcwd(),
        "argv": sys.argv[1:],
        "epochs": args.epochs,
        "tag": args.tag,
        "helper": helper.__file__,
        "sm_hps": json.loads(os.environ["SM_HPS"]),
        "sm_module_dir": os.environ.get("SM_MODULE_DIR"),
        "sm_user_entry_point": os.environ.get("SM_USER_ENTRY_POINT"),
        "code_files": sorted(os.listdir("/opt/ml/code")),
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
