"""What makes up a process's RSS and PSS: /proc/<pid>/smaps summed per mapped file (or kind of mapping).

    .venv/bin/python bench/smaps.py PID [PID ...] [--top 25] [--by file|group]

Every mapping's Rss, Pss and Private (clean + dirty) kB are summed per path; `--by group` folds paths
into what they are in resdb: a host snapshot array (`snapshot:<kind>/<array>`), a whoosh index file
(`whoosh:<segment file>`), the heap and anonymous memory, shared libraries, the rest. Linux only.
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

_HEADER = re.compile(r"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$")
_FIELDS = ("Rss", "Pss", "Private_Clean", "Private_Dirty")


def group_of(path: str) -> str:
    """A short name for what a mapping is (see the module docstring)."""
    if not path:
        return "[anon]"
    if path.startswith("["):
        return path
    if "/snapshots/" in path:
        tail = path.split("/snapshots/", 1)[1].split("/")
        kind = tail[0]
        array = tail[-1].removesuffix(".npy")
        return f"snapshot:{kind}/{array}"
    if path.endswith(".seg") or "/index/" in path or path.endswith((".trm", ".pst", ".vps")):
        return f"whoosh:{Path(path).name.split('.')[-1]}"
    if ".so" in Path(path).name:
        return "libs (.so)"
    return path


def by_mapping(pid: int, *, group: bool = True) -> dict[str, dict[str, int]]:
    """kB of Rss, Pss and Private per path (or group) of one process's mappings."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(_FIELDS, 0))
    current = "[anon]"
    with open(f"/proc/{pid}/smaps", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            header = _HEADER.match(line)
            if header is not None:
                path = header.group(1).strip().removesuffix(" (deleted)")
                current = group_of(path) if group else (path or "[anon]")
                continue
            name, _, rest = line.partition(":")
            if name in _FIELDS:
                out[current][name] += int(rest.split()[0])
    return dict(out)


def table(rows: dict[str, dict[str, int]], top: int = 25) -> list[str]:
    """Lines of the `top` largest entries by Pss (MB), then the totals."""
    ordered = sorted(rows.items(), key=lambda kv: -kv[1]["Pss"])
    lines = [f"{'mapping':<44} {'RSS MB':>8} {'PSS MB':>8} {'private':>8}"]
    for name, v in ordered[:top]:
        private = v["Private_Clean"] + v["Private_Dirty"]
        lines.append(
            f"{name[-44:]:<44} {v['Rss'] / 1e3:8.1f} {v['Pss'] / 1e3:8.1f} {private / 1e3:8.1f}"
        )
    total = {k: sum(v[k] for v in rows.values()) for k in _FIELDS}
    private = total["Private_Clean"] + total["Private_Dirty"]
    lines.append(
        f"{'total':<44} {total['Rss'] / 1e3:8.1f} {total['Pss'] / 1e3:8.1f} {private / 1e3:8.1f}"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pids", type=int, nargs="+")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--by", choices=["group", "file"], default="group")
    args = parser.parse_args()
    for pid in args.pids:
        print(f"pid {pid}")
        print("\n".join(table(by_mapping(pid, group=args.by == "group"), args.top)))


if __name__ == "__main__":
    main()
