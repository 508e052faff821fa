#!/usr/bin/env python3
"""How long the disk under a directory takes to make an append durable:
appends SIZE bytes to a scratch file and fdatasyncs it, COUNT times (the
file is rewound every 64 appends), and prints the percentiles. What
docs/performance.md compares the store's own fdatasync times with.

With --stat the file's status (times included) is read before each
fdatasync, as rtmd's syncer once did: on a kernel with fine-grained
timestamps that makes each write store new times, and on some file
systems (ext4 without a journal) each fdatasync then writes the inode
as well (docs/performance.md, "The syncer's stat").

usage: bench/fdatasync-latency.py [--stat] [DIR [SIZE [COUNT]]]   (defaults: ., 65536, 2000)
"""
import os
import sys
import tempfile
import time


def main():
    args = sys.argv[1:]
    stat_first = "--stat" in args
    args = [a for a in args if a != "--stat"]
    directory = args[0] if len(args) > 0 else "."
    size = int(args[1]) if len(args) > 1 else 65536
    count = int(args[2]) if len(args) > 2 else 2000
    if size < 1 or count < 1:
        sys.exit("SIZE and COUNT must be positive")
    buf = os.urandom(size)
    lat = []
    with tempfile.NamedTemporaryFile(dir=directory) as f:
        fd = f.fileno()
        for i in range(count):
            os.write(fd, buf)
            if stat_first:
                os.stat(f.name)
            t = time.perf_counter()
            os.fdatasync(fd)
            lat.append((time.perf_counter() - t) * 1e3)
            if i % 64 == 63:
                os.lseek(fd, 0, os.SEEK_SET)
    lat.sort()

    def q(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))]

    print("fdatasync after appending %d bytes%s, %d times: p50 %.2f ms, p90 %.2f, p99 %.2f, p99.9 %.2f, max %.2f"
          % (size, " and a stat" if stat_first else "", count, q(.5), q(.9), q(.99), q(.999), lat[-1]))


if __name__ == "__main__":
    main()
