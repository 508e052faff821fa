#!/usr/bin/env python3
"""Builds rtmd.conf(5) in scdoc from docs/man/rtmd.conf.5.scd and
etc/rtmd.conf.example. The example file is the one place the file format
and each setting are described; this script turns its text into the man
page's sections, replacing three lines of the man page source:

  @FORMAT@            the example's "Format" list
  @TOP_SETTINGS@      the settings before the first [project] line
  @PROJECT_SETTINGS@  the settings of a [project] section

A setting line is `key = value`, or `#key = value` for a setting shown
commented out (it has no default). The comment lines above a run of
setting lines describe them; a blank comment line ('#' alone) separates
paragraphs.

usage: man-settings.py MAN_SOURCE EXAMPLE OUTPUT
"""
import re
import sys

SETTING = re.compile(r'^(#?)([a-z][a-z0-9_]*) = ?(.*)$')


def scd_escape(text):
    """Makes text literal in scdoc: its markup characters escaped."""
    return text.replace('\\', '\\\\').replace('*', '\\*').replace('_', '\\_')


def split_header(lines):
    """The example's opening comment (up to its first blank line) and the
    rest of the file."""
    for i, line in enumerate(lines):
        if not line.strip():
            return lines[:i], lines[i + 1 :]
    sys.exit('example: no blank line after the opening comment')


def format_list(header):
    """The bullet list under the header's 'Format' line, as scdoc items."""
    items, seen = [], False
    for line in header:
        text = line[1:].rstrip()
        if text.strip() == 'Format':
            seen = True
        elif seen and text.strip().startswith('* '):
            items.append(text.strip()[2:])
        elif seen and text.strip() and items:
            items[-1] += ' ' + text.strip()
    if not items:
        sys.exit('example: no "Format" list in the opening comment')
    return ['- ' + scd_escape(item) for item in items]


def blocks(lines):
    """Yields (paragraphs, settings) in file order, settings being (key,
    value, commented_out) triples; yields (None, None) at [project]."""
    paragraphs, settings = [[]], []
    for line in lines:
        line = line.rstrip('\n')
        m = SETTING.match(line)
        if m:
            settings.append((m.group(2), m.group(3), m.group(1) == '#'))
            continue
        if settings:
            yield [p for p in paragraphs if p], settings
            paragraphs, settings = [[]], []
        if line.startswith('['):
            yield None, None
            paragraphs = [[]]
        elif line.strip() == '#':
            paragraphs.append([])
        elif line.startswith('#'):
            paragraphs[-1].append(line[1:].strip())
        elif not line.strip():
            paragraphs = [[]]  # a comment not followed by settings
    if settings:
        yield [p for p in paragraphs if p], settings


def render(paragraphs, settings):
    out = []
    for key, value, commented in settings:
        shown = '(not set)' if commented else (value if value else '(empty)')
        out.append('*%s* = %s++' % (scd_escape(key), scd_escape(shown)))
    out[-1] = out[-1][:-2]  # one setting a line: a break after all but the last
    if not paragraphs:
        sys.exit('example: setting %s has no comment above it' % settings[0][0])
    for i, p in enumerate(paragraphs):
        if i:
            out.append('')
        out.append('\t' + scd_escape(' '.join(p)))
    out.append('')
    return out


def main(source, example, output):
    with open(example, encoding='utf-8') as f:
        header, rest = split_header(f.readlines())
    parts = {'@FORMAT@': format_list(header), '@TOP_SETTINGS@': [], '@PROJECT_SETTINGS@': []}
    where = '@TOP_SETTINGS@'
    for paragraphs, settings in blocks(rest):
        if settings is None:
            where = '@PROJECT_SETTINGS@'
        else:
            parts[where].extend(render(paragraphs, settings))
    with open(source, encoding='utf-8') as f:
        text = f.read()
    for marker, lines in parts.items():
        if text.count(marker) != 1:
            sys.exit('%s: needs the line %s once' % (source, marker))
        text = text.replace(marker, '\n'.join(lines).rstrip('\n'))
    with open(output, 'w', encoding='utf-8') as f:
        f.write(text)


if __name__ == '__main__':
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip().splitlines()[-1])
    main(*sys.argv[1:])
