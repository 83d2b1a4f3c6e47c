"""A training script that fails (/opt/ml/code/fail.py): its exception must reach
output/failure, which SDK v2's local mode packs into output.tar.gz."""

import argparse


def check(learning_rate):
    if learning_rate <= 0:
        raise ValueError(f"bad learning rate: {learning_rate}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, required=True)
    args = parser.parse_args()
    print("checking the hyperparameters", flush=True)
    check(args.lr)


if __name__ == "__main__":
    main()
