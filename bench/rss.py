"""Run a command and write its peak RSS in KiB to a file: `python bench/rss.py OUT CMD...`.

``ru_maxrss`` of a child counts the memory of the process that forked it (Linux keeps
the high-water mark across exec), so the benchmark, which holds large images, does not
measure the CLI directly: this small process forks it instead.
"""

from __future__ import annotations

import resource
import subprocess
import sys

if __name__ == "__main__":
    code = subprocess.call(sys.argv[2:])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with open(sys.argv[1], "w") as fh:
        fh.write(f"{peak}\n")
    sys.exit(code)
