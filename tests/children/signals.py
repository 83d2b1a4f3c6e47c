"""Test child: prints `ready <pid>`, then `got <SIGNAME>` for each signal received.

argv: [exit code on SIGTERM/SIGINT (default 0)] ["ignore-term" | "stay"]
ignore-term: SIGTERM is ignored; stay: SIGTERM/SIGINT are reported but do not end it.
"""

import os
import signal
import sys
import time

FORWARDED = [
    signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
    signal.SIGALRM, signal.SIGTERM, signal.SIGCONT, signal.SIGWINCH, signal.SIGTSTP,
    signal.SIGPWR, signal.SIGVTALRM, signal.SIGPROF, signal.SIGXCPU, signal.SIGIO,
    signal.SIGSTKFLT, signal.SIGURG,
]
term_code = int(sys.argv[1]) if len(sys.argv) > 1 else 0
ignore_term = "ignore-term" in sys.argv[2:]
stay = "stay" in sys.argv[2:]


def on_signal(signum, frame):
    name = signal.Signals(signum).name
    os.write(1, f"got {name}\n".encode())
    if signum in (signal.SIGTERM, signal.SIGINT) and not (ignore_term or stay):
        sys.exit(term_code)


for sig in FORWARDED:
    signal.signal(sig, on_signal)
if ignore_term:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
os.write(1, f"ready {os.getpid()}\n".encode())
while True:
    time.sleep(0.05)
