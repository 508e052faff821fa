#!/usr/bin/env python3
"""How long the disk under a directory takes to make an append durable:
appends SIZE bytes to a scratch file and fdatasyncs it, COUNT times (the
file is rewound every 64 appends), and prints the percentiles. What
docs/performance.md compares the store's own fdatasync times with.

usage: bench/fdatasync-latency.py [DIR [SIZE [COUNT]]]   (defaults: ., 65536, 2000)
"""
import os
import sys
import tempfile
import time


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "."
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 65536
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    if size < 1 or count < 1:
        sys.exit("SIZE and COUNT must be positive")
    buf = os.urandom(size)
    lat = []
    with tempfile.NamedTemporaryFile(dir=directory) as f:
        fd = f.fileno()
        for i in range(count):
            os.write(fd, buf)
            t = time.perf_counter()
            os.fdatasync(fd)
            lat.append((time.perf_counter() - t) * 1e3)
            if i % 64 == 63:
                os.lseek(fd, 0, os.SEEK_SET)
    lat.sort()

    def q(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))]

    print("fdatasync after appending %d bytes, %d times: p50 %.2f ms, p90 %.2f, p99 %.2f, p99.9 %.2f, max %.2f"
          % (size, count, q(.5), q(.9), q(.99), q(.999), lat[-1]))


if __name__ == "__main__":
    main()
