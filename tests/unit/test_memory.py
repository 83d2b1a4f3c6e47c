"""The memory cgroup's counters, read from files laid out as the kernel lays them out."""

import pytest

from supervisor.core import memory
from supervisor.core.memory import MemoryCgroup, MemoryCounters


def write(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


V1 = {"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
      "memory.limit_in_bytes": "67108864\n", "memory.max_usage_in_bytes": "60000000\n"}
V2 = {"memory.events": "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n",
      "memory.max": "1073741824\n", "memory.peak": "900000000\n"}


def test_v1_under_its_path(tmp_path):
    write(tmp_path / "sys" / "memory" / "job" / "x", V1)
    write(tmp_path, {"cgroup": "5:devices:/\n4:memory:/job/x\n0::/\n"})
    found = memory.find(str(tmp_path / "cgroup"), str(tmp_path / "sys"))
    assert MemoryCgroup(str(tmp_path / "sys" / "memory" / "job" / "x"), 1) == found
    assert MemoryCounters(oom_kills=3, limit=64 << 20, peak=60000000) == found.read()


def test_v1_seen_from_inside_a_container_at_the_mount_point(tmp_path):
    write(tmp_path / "sys" / "memory", {**V1, "memory.limit_in_bytes": "9223372036854771712\n"})
    write(tmp_path, {"cgroup": "4:memory:/docker/0123abcd\n"})  # not under the mount
    found = memory.find(str(tmp_path / "cgroup"), str(tmp_path / "sys"))
    assert MemoryCgroup(str(tmp_path / "sys" / "memory"), 1) == found
    assert found.read().limit is None  # the huge "no limit" number


@pytest.mark.parametrize("path", ["/kubepods/pod1", "/"])
def test_v2(tmp_path, path):
    directory = tmp_path / "sys" / path.lstrip("/")
    write(directory, V2)
    write(tmp_path, {"cgroup": f"0::{path}\n"})
    found = memory.find(str(tmp_path / "cgroup"), str(tmp_path / "sys"))
    assert 2 == found.version
    assert MemoryCounters(oom_kills=2, limit=1 << 30, peak=900000000) == found.read()


def test_v2_without_a_limit_or_a_peak(tmp_path):
    write(tmp_path / "sys", {**V2, "memory.max": "max\n"})
    (tmp_path / "sys" / "memory.peak").unlink()
    write(tmp_path, {"cgroup": "0::/\n"})
    counters = memory.find(str(tmp_path / "cgroup"), str(tmp_path / "sys")).read()
    assert (2, None, None) == (counters.oom_kills, counters.limit, counters.peak)


def test_no_readable_cgroup_is_none(tmp_path):
    write(tmp_path, {"cgroup": "4:memory:/x\n0::/\n"})
    assert memory.find(str(tmp_path / "cgroup"), str(tmp_path / "nothing")) is None
    assert memory.find(str(tmp_path / "no-proc-file"), str(tmp_path)) is None


def test_an_old_v1_kernel_without_the_count_reads_none(tmp_path):
    write(tmp_path / "sys" / "memory", {**V1, "memory.oom_control": "oom_kill_disable 0\n"})
    write(tmp_path, {"cgroup": "4:memory:/\n"})
    assert memory.find(str(tmp_path / "cgroup"), str(tmp_path / "sys")).read().oom_kills is None


@pytest.mark.parametrize(("count", "text"), [
    (512, "512 B"), (2048, "2.0 KiB"), (64 << 20, "64.0 MiB"), (int(15.2 * (1 << 30)), "15.2 GiB"),
    (3 << 40, "3072.0 GiB"),
])
def test_sizes_read_as_a_person_reads_them(count, text):
    assert text == memory.human_bytes(count)
