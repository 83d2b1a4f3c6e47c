"""Test child: numbered lines on stdout and stderr, interleaved, then exit at once.

argv: stdout_lines stderr_lines. The last stdout line has no newline, and the
process leaves with os._exit right after writing it.
"""

import os
import sys

out_lines, err_lines = int(sys.argv[1]), int(sys.argv[2])
ratio = max(1, out_lines // max(1, err_lines))
out_batch, err_batch, e = [], [], 0
for i in range(out_lines):
    out_batch.append(f"out {i:07d} the quick brown fox jumps over the lazy dog\n")
    if i % ratio == ratio - 1 and e < err_lines:
        err_batch.append(f"err {e:07d} something on stderr\n")
        e += 1
    if len(out_batch) >= 500:
        os.write(1, "".join(out_batch).encode())
        os.write(2, "".join(err_batch).encode())
        out_batch, err_batch = [], []
while e < err_lines:
    err_batch.append(f"err {e:07d} something on stderr\n")
    e += 1
os.write(2, "".join(err_batch).encode())
data = "".join(out_batch).encode()
os.write(1, data[:-1])  # the final line, without its newline
os._exit(0)
