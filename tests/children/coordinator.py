"""Test child: a coordinator with a worker in its process group, like a DataLoader.

Prints `ready`; on SIGTERM prints `main got SIGTERM`, gives the worker time
to have heard it too, prints `worker alive True|False` and exits 0. The
worker prints `worker got SIGTERM` and exits when it hears SIGTERM itself.
"""

import signal
import subprocess
import sys
import time

WORKER = ("import os, signal, time\n"
          "def bye(*_):\n"
          "    os.write(1, b'worker got SIGTERM\\n'); os._exit(0)\n"
          "signal.signal(signal.SIGTERM, bye)\n"
          "os.write(1, b'worker ready\\n')\n"
          "while True: time.sleep(0.05)\n")
stop = False


def on_term(signum, frame):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)
worker = subprocess.Popen([sys.executable, "-c", WORKER])  # same process group
while True:  # ready once the worker is
    time.sleep(0.05)
    with open(f"/proc/{worker.pid}/status") as handle:
        status = handle.read()
    if "SigCgt:" in status:
        caught = int(status.split("SigCgt:")[1].split()[0], 16)
        if caught >> (signal.SIGTERM - 1) & 1:
            break
print(f"ready worker {worker.pid}", flush=True)
while not stop:
    time.sleep(0.05)
print("main got SIGTERM", flush=True)
time.sleep(0.5)
print(f"worker alive {worker.poll() is None}", flush=True)
sys.exit(0)
