"""Run every benchmark script in bench/ (``bench_*.py``) in turn; `make bench` calls this.

Each script is standalone (``python bench/bench_x.py``), measures its target and its
baseline in the same run, and prints the ratio (``bench_battery.py``: battery / bare
forward; ``bench_dask.py``: the Dask executor's 1-worker overhead and 2-worker speed-up).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main() -> int:
    here = Path(__file__).resolve().parent
    failed = []
    for script in sorted(here.glob("bench_*.py")):
        print(f"\n=== {script.name} ===", flush=True)
        rc = subprocess.call([sys.executable, str(script)])
        if rc != 0:
            failed.append(script.name)
    if failed:
        print(f"\nbenchmarks that failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
