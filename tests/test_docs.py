#!/usr/bin/env python3
"""test_docs.py - the docs say what the code does: settings table, links, README's size.

Usage: test_docs.py VGGSERVE_BINARY

- docs/configuration.md's settings table has one row per setting of `vggserve serve --help`
  (which prints config/config.c's one table), with the same flag, VGGSERVE_* variable and
  default, and names each value of a choice. A setting added without its row fails here.
- Every relative link in README.md and docs/*.md points to a file that exists, and a link's
  #anchor to a heading of the markdown file it names.
- Every table row has its header's number of cells (an unescaped | breaks a table), and code
  fences are closed.
- README.md is a front page: at most 200 lines, and it still holds the two commands CI and
  tests/docker/run.sh run.
"""
import os
import re
import subprocess
import sys
import unittest

import service_util as su

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = None  # set from argv in main
README_MAX_LINES = 200


def markdown_files():
    docs = os.path.join(ROOT, 'docs')
    pages = sorted(os.path.join(docs, f) for f in os.listdir(docs) if f.endswith('.md'))
    return [os.path.join(ROOT, 'README.md')] + pages


def read(path):
    with open(path, encoding='utf-8') as f:
        return f.read()


def prose_lines(text):
    """(line number, line) outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith('```'):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def table_cells(line):
    """The cells of a markdown table row; \\| inside a cell is not a separator."""
    inner = line.strip()[1:-1] if line.strip().endswith('|') else line.strip()[1:]
    return [c.strip() for c in re.split(r'(?<!\\)\|', inner)]


def heading_anchors(text):
    """GitHub's anchors: lower case, punctuation but - and _ dropped, spaces to -."""
    anchors, seen = set(), {}
    for _, line in prose_lines(text):
        m = re.match(r'#{1,6}\s+(.*?)\s*#*\s*$', line)
        if not m:
            continue
        slug = re.sub(r'[^\w\- ]', '', m.group(1).lower().replace('`', '')).replace(' ', '-')
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f'{slug}-{n}')
    return anchors


def help_settings():
    """{key: (flag, default, choices)} from `vggserve serve --help`."""
    out = subprocess.run([BINARY, 'serve', '--help'], capture_output=True, text=True,
                         timeout=60)
    text = out.stdout + out.stderr
    settings = {}
    for line in text.splitlines():
        m = re.match(r'\s+(--[a-z0-9-]+)\s+(.*)\(default (.*)\)\s*$', line)
        if not m:
            continue
        flag, help_text, default = m.groups()
        choices = re.search(r':\s*([a-z0-9_]+(?:\|[a-z0-9_]+)+)\s*$', help_text.strip())
        key = flag[2:].replace('-', '_')
        settings[key] = (flag, default.strip('"'), choices.group(1).split('|') if choices else [])
    return settings


def docs_settings():
    """{key: (flag, env, default, meaning)} from docs/configuration.md's settings table."""
    rows = {}
    for _, line in prose_lines(read(os.path.join(ROOT, 'docs', 'configuration.md'))):
        if not line.startswith('| `'):
            continue
        cells = table_cells(line)
        if len(cells) != 5:
            continue
        key, flag, env, default, meaning = (c.strip('`') if i < 4 else c
                                            for i, c in enumerate(cells))
        rows[key] = (flag, env, '' if default == '(empty)' else default, meaning)
    return rows


class SettingsTable(unittest.TestCase):
    def test_help_lists_settings(self):
        # Guards the parser below: a changed --help format must not make the comparison vacuous.
        self.assertGreaterEqual(len(help_settings()), 30)

    def test_every_setting_has_its_row(self):
        code, docs = help_settings(), docs_settings()
        self.assertEqual(sorted(set(code) - set(docs)), [], 'settings without a row in docs/configuration.md')
        self.assertEqual(sorted(set(docs) - set(code)), [], 'rows in docs/configuration.md for no setting')

    def test_rows_match(self):
        code, docs = help_settings(), docs_settings()
        for key in sorted(set(code) & set(docs)):
            flag, default, choices = code[key]
            d_flag, d_env, d_default, meaning = docs[key]
            with self.subTest(setting=key):
                self.assertEqual(d_flag, flag)
                self.assertEqual(d_env, 'VGGSERVE_' + key.upper())
                self.assertEqual(d_default, default)
                for choice in choices:
                    self.assertIn(f'`{choice}`', meaning, f'{key}: choice {choice} not named')


class Markdown(unittest.TestCase):
    def test_relative_links_resolve(self):
        broken = []
        anchors = {}
        for path in markdown_files():
            for number, line in prose_lines(read(path)):
                line = re.sub(r'`[^`]*`', '', line)  # code spans hold no links
                for target in re.findall(r'\]\(([^)\s]+)\)', line):
                    if re.match(r'[a-z][a-z0-9+.-]*:', target):
                        continue  # http:, https:, mailto:
                    file_part, _, anchor = target.partition('#')
                    dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) \
                        if file_part else path
                    where = f'{os.path.relpath(path, ROOT)}:{number}: {target}'
                    if not os.path.exists(dest):
                        broken.append(where)
                    elif anchor and dest.endswith('.md'):
                        if dest not in anchors:
                            anchors[dest] = heading_anchors(read(dest))
                        if anchor not in anchors[dest]:
                            broken.append(where + ' (no such heading)')
        self.assertEqual(broken, [])

    def test_tables_and_fences_are_well_formed(self):
        problems = []
        for path in markdown_files():
            text = read(path)
            if sum(1 for line in text.splitlines() if line.lstrip().startswith('```')) % 2:
                problems.append(f'{os.path.relpath(path, ROOT)}: a code fence is not closed')
            width = None
            for number, line in prose_lines(text):
                if not line.startswith('|'):
                    width = None
                    continue
                cells = len(table_cells(line))
                if width is None:
                    width = cells
                elif cells != width:
                    problems.append(f'{os.path.relpath(path, ROOT)}:{number}: {cells} cells, '
                                    f'the header has {width}')
        self.assertEqual(problems, [])

    def test_docs_has_pages(self):
        self.assertGreaterEqual(len(markdown_files()) - 1, 4)


class FrontPage(unittest.TestCase):
    def test_readme_is_short(self):
        lines = read(os.path.join(ROOT, 'README.md')).count('\n')
        self.assertLessEqual(lines, README_MAX_LINES)

    def test_readme_keeps_the_two_commands(self):
        text = read(os.path.join(ROOT, 'README.md'))
        for command in ('scripts/run.sh', 'tests/run.sh'):
            self.assertRegex(text, r'(?m)^' + re.escape(command) + r'\b')


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    BINARY = sys.argv.pop(1)
    su.main(verbosity=1)
