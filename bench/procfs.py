"""Memory of running processes, read from /proc (Linux): VmRSS of a process and of its descendants."""

from __future__ import annotations

from pathlib import Path


def rss_kb(pid: int) -> int:
    """VmRSS of one process in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (the gateway's worker processes, if it runs several)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def tree_rss_mb(pid: int) -> tuple[float, dict[int, float]]:
    """Total RSS of a process tree in MB, and each process's."""
    per = {p: rss_kb(p) / 1024 for p in process_tree(pid)}
    return round(sum(per.values()), 1), {p: round(mb, 1) for p, mb in per.items()}
