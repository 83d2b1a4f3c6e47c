"""The interface the hosts reach each other on: the one resourceconfig.json names, else the default
route's (SDK v3's local mode names "ethwe" where the container has eth0)."""

from supervisor.launch.network import default_route_interface, usable_interface

ROUTES = ("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
          "eth1\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
          "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n")


def test_the_named_interface_when_this_host_has_it(tmp_path):
    (tmp_path / "net" / "ethwe").mkdir(parents=True)
    assert ("ethwe", None) == usable_interface("ethwe", str(tmp_path / "net"), "/nonexistent")


def test_else_the_default_routes_with_a_warning_naming_both(tmp_path):
    (tmp_path / "net" / "eth0").mkdir(parents=True)
    routes = tmp_path / "route"
    routes.write_text(ROUTES)
    interface, warning = usable_interface("ethwe", str(tmp_path / "net"), str(routes))
    assert "eth0" == interface
    assert "'ethwe'" in warning and "'eth0', the default route's" in warning


def test_no_default_route_keeps_the_name_and_says_so(tmp_path):
    routes = tmp_path / "route"
    routes.write_text(ROUTES.splitlines(keepends=True)[0] + ROUTES.splitlines(keepends=True)[1])
    interface, warning = usable_interface("ethwe", str(tmp_path / "net"), str(routes))
    assert "ethwe" == interface and "no default route" in warning


def test_a_default_route_that_is_down_or_a_table_unreadable_is_none(tmp_path):
    routes = tmp_path / "route"
    routes.write_text(ROUTES.replace("\t0003\t", "\t0002\t"))
    assert default_route_interface(str(routes)) is None
    assert default_route_interface(str(tmp_path / "missing")) is None
