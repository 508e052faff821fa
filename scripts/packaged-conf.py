#!/usr/bin/env python3
"""Prints the configuration an installed rtmd starts with (the Debian
package's /etc/rtmd/rtmd.conf), made from the documented example: the store
in STATE_DIR instead of ./data, every listener on 127.0.0.1 only (a fresh
install serves nothing to the network until the operator says so, as
Debian's Redis does), admin_dir set to ADMIN_DIR, where the package puts
the built admin page (admin_token stays empty, so the page is off until
the operator sets one), and the example project commented out, so that
rtmd keeps its demo project in the store until the operator writes
projects of their own. Every other line is the example's.

usage: packaged-conf.py EXAMPLE STATE_DIR ADMIN_DIR
"""
import re
import sys


def main(example, state_dir, admin_dir):
    for name, path in (('STATE_DIR', state_dir), ('ADMIN_DIR', admin_dir)):
        if not re.fullmatch(r'/[A-Za-z0-9_./-]+', path):
            sys.exit('%s must be an absolute path of plain characters' % name)
    out = [
        '# rtmd.conf -- the configuration of the installed rtmd (rtmd.conf(5)),\n',
        '# made from rtmd.conf.example: the store lives in %s, the\n' % state_dir,
        '# listeners are on 127.0.0.1 only (set listen_host to serve the\n',
        '# network), admin_dir names the admin page in %s\n' % admin_dir,
        '# (off until admin_token is set) and the example project is commented\n',
        '# out (see the end).\n',
        '#\n',
    ]
    in_projects = False
    seen = set()
    with open(example, encoding='utf-8') as f:
        for line in f:
            if line.startswith('data_dir = '):
                line = 'data_dir = %s\n' % state_dir
                seen.add('data_dir')
            elif line.startswith('listen_host = '):
                line = 'listen_host = 127.0.0.1\n'
                seen.add('listen_host')
            elif re.match(r'admin_dir =\s', line):  # empty in the example
                line = 'admin_dir = %s\n' % admin_dir
                seen.add('admin_dir')
            elif line.startswith('[project]'):
                in_projects = True
            if in_projects and line.strip() and not line.startswith('#'):
                line = '#' + line
            out.append(line)
    if seen != {'data_dir', 'listen_host', 'admin_dir'} or not in_projects:
        sys.exit('%s: no data_dir, listen_host or admin_dir line, or no [project] section' % example)
    sys.stdout.write(''.join(out))


if __name__ == '__main__':
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip().splitlines()[-1])
    main(*sys.argv[1:])
