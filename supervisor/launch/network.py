"""The network interface the hosts reach each other on: the one named, else the default route's.

resourceconfig.json names it (`network_interface_name`); NCCL, Gloo and
Open MPI are told to use it. A name this host does not have (SDK v3's local
mode writes "ethwe" where the container has eth0) would make them fail, so
the interface of the default route is used instead, and the caller says so.
"""

from __future__ import annotations

import os

NET = "/sys/class/net"
ROUTES = "/proc/net/route"
RTF_UP = 0x1


def default_route_interface(routes: str = ROUTES) -> str | None:
    """The interface of the default route (destination 0.0.0.0), from the kernel's table."""
    try:
        with open(routes) as table:
            lines = table.read().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 4 and fields[1] == "00000000":
            try:
                if int(fields[3], 16) & RTF_UP:
                    return fields[0]
            except ValueError:
                continue
    return None


def usable_interface(name: str, net: str = NET, routes: str = ROUTES) -> tuple[str, str | None]:
    """(the interface to use, a warning when it is not the one named)."""
    if os.path.isdir(os.path.join(net, name)):
        return name, None
    fallback = default_route_interface(routes)
    if fallback is None:
        return name, (f"network interface {name!r} (resourceconfig.json's network_interface_name) "
                      "does not exist on this host, and no default route names another")
    return fallback, (f"network interface {name!r} (resourceconfig.json's "
                      f"network_interface_name) does not exist on this host: using "
                      f"{fallback!r}, the default route's")
