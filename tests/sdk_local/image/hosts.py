"""Two hosts (/opt/ml/code/hosts.py): each reads resourceconfig.json, resolves
every host by name, and the worker talks to the master over TCP by its name.

Each host writes host-NAME.json into SM_MODEL_DIR (one directory shared by
both in local mode, so both land in model.tar.gz). Local mode runs compose
with --abort-on-container-exit: the first host to exit has the other stopped
(SIGTERM). The protocol makes sure each host has written its record before
the other can exit, and a SIGTERM after that is a normal end (exit 0).
"""

import json
import os
import pathlib
import signal
import socket
import sys
import time

PORT = 5555
written = []


def on_sigterm(signum, frame):
    print(f"SIGTERM (record written: {bool(written)})", flush=True)
    sys.exit(0 if written else 143)


def write(record):
    path = pathlib.Path(os.environ["SM_MODEL_DIR"]) / f"host-{record['current_host']}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    written.append(path)


def master(record, workers):
    with socket.create_server(("", PORT)) as server:
        server.settimeout(120)
        connections = []
        while len(connections) < workers:
            conn, address = server.accept()
            stream = conn.makefile("rw")
            name = stream.readline().strip()
            record["heard"].append({"name": name, "address": address[0]})
            connections.append((conn, stream))
        write(record)
        for _, stream in connections:
            stream.write(f"hello from {record['current_host']}\n")
            stream.flush()
        for conn, stream in connections:
            assert stream.readline().strip() == "done"
            conn.close()
    print(f"master: heard {[h['name'] for h in record['heard']]}", flush=True)


def worker(record, master_host):
    deadline = time.monotonic() + 120
    while True:
        try:
            conn = socket.create_connection((master_host, PORT), timeout=10)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    with conn:
        stream = conn.makefile("rw")
        stream.write(record["current_host"] + "\n")
        stream.flush()
        record["reply"] = stream.readline().strip()
        write(record)
        stream.write("done\n")
        stream.flush()
    print(f"worker: {record['reply']}", flush=True)


def main():
    signal.signal(signal.SIGTERM, on_sigterm)
    config = json.loads(pathlib.Path("/opt/ml/input/config/resourceconfig.json").read_text())
    me, hosts = config["current_host"], config["hosts"]
    record = {
        "current_host": me,
        "hosts": hosts,
        "sm_current_host": os.environ["SM_CURRENT_HOST"],
        "sm_hosts": json.loads(os.environ["SM_HOSTS"]),
        "resolved": {host: socket.gethostbyname(host) for host in hosts},
        "heard": [],
    }
    print(f"{me}: hosts {hosts}, resolved {record['resolved']}", flush=True)
    if me == hosts[0]:
        master(record, len(hosts) - 1)
    else:
        worker(record, hosts[0])


if __name__ == "__main__":
    main()
