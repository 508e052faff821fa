'use strict';
// The man pages (docs/man/*.scd, built into roff in <build>/man by the
// build) cannot drift from the programs: every setting of config.c's tables
// is an entry of rtmd.conf(5) in its section (top level or project), every
// command and option that `rtmctl --help` lists is in rtmctl(1), every
// option and scenario of `rtm-bench --help` in rtm-bench(1), and every
// option and signal of `rtmd --help` in rtmd(8).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const ROOT = path.join(__dirname, '..', '..');
const RTMD = process.env.RTMD_BIN;
const RTMCTL = process.env.RTMCTL_BIN;
const BENCH = process.env.RTM_BENCH_BIN;
const MAN_DIR = path.join(path.dirname(RTMD), 'man');

function roff(page) {
  const file = path.join(MAN_DIR, page);
  assert.ok(fs.existsSync(file), `${file} is built (cmake --build builds the man pages)`);
  return fs.readFileSync(file, 'utf8');
}

function help(bin) {
  // rtmd and rtmctl print --help on stdout; rtm-bench prints it on stderr.
  try {
    return execFileSync(bin, ['--help'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    return `${e.stdout}${e.stderr}`;
  }
}

function settingsOf(table) {
  const src = fs.readFileSync(path.join(ROOT, 'src', 'rtmd', 'config.c'), 'utf8');
  const start = src.indexOf(`static const setting ${table}[] = {`);
  assert.ok(start >= 0, `config.c has the table ${table}`);
  const body = src.slice(start, src.indexOf('\n};', start));
  return [...body.matchAll(/^\s*\{"([a-z0-9_]+)", K_/gm)].map((m) => m[1]);
}

function optionsIn(text) {
  return new Set([...text.matchAll(/(?:^|[\s[(|])(--[a-z][a-z-]*|-v)\b/g)].map((m) => m[1]));
}

// Text of roff with its font escapes and \& removed, for plain searches.
function plain(text) {
  return text.replace(/\\f[BIR]/g, '').replace(/\\&/g, '');
}

test('rtmd.conf(5) has every setting of config.c, in its section', () => {
  const page = roff('rtmd.conf.5');
  const projectAt = page.indexOf('.SH PROJECT SETTINGS');
  assert.ok(projectAt > 0, 'rtmd.conf(5) has a PROJECT SETTINGS section');
  const entries = (text) => new Set([...text.matchAll(/^\\fB([a-z0-9_]+)\\fR = /gm)].map((m) => m[1]));
  const top = entries(page.slice(0, projectAt));
  const project = entries(page.slice(projectAt));
  const topSettings = settingsOf('top_settings');
  const projectSettings = settingsOf('project_settings');
  assert.ok(topSettings.length > 30 && projectSettings.length > 30, 'both tables were read');
  for (const s of topSettings) assert.ok(top.has(s), `top-level setting ${s} is an entry of rtmd.conf(5)`);
  for (const s of projectSettings) assert.ok(project.has(s), `project setting ${s} is an entry of rtmd.conf(5)`);
  for (const s of top) assert.ok(topSettings.includes(s), `rtmd.conf(5) entry ${s} is a top-level setting`);
  for (const s of project) assert.ok(projectSettings.includes(s), `rtmd.conf(5) entry ${s} is a project setting`);
});

test('rtmctl(1) has every command and option of rtmctl --help', () => {
  const usage = help(RTMCTL);
  const commands = [...usage.matchAll(/^ {2}([a-z][a-z-]*) (?:HOST:PORT|ADDR|DATA_DIR)\b/gm)].map((m) => m[1]);
  assert.ok(commands.length >= 13, `rtmctl --help lists its commands (${commands})`);
  const page = roff('rtmctl.1');
  for (const c of new Set(commands)) {
    assert.match(page, new RegExp(`^\\\\fB${c}\\\\fR \\\\fI(HOST:PORT|ADDR|DATA_DIR)\\\\fR`, 'm'), `rtmctl(1) has an entry for ${c}`);
  }
  const documented = optionsIn(plain(page));
  for (const o of optionsIn(usage)) assert.ok(documented.has(o), `rtmctl(1) documents ${o}`);
});

test('rtm-bench(1) has every option and scenario of rtm-bench --help', () => {
  const usage = help(BENCH);
  const page = plain(roff('rtm-bench.1'));
  const options = optionsIn(usage);
  assert.ok(options.size >= 20, 'rtm-bench --help lists its options');
  const documented = optionsIn(page);
  for (const o of options) assert.ok(documented.has(o), `rtm-bench(1) documents ${o}`);
  const scenarios = /--scenario ([a-z0-9|]+)/.exec(usage)[1].split('|');
  for (const s of scenarios) assert.match(page, new RegExp(`^${s}$`, 'm'), `rtm-bench(1) describes the ${s} scenario`);
});

test('rtmd(8) has rtmd --help\'s options and signals', () => {
  const usage = help(RTMD);
  const page = plain(roff('rtmd.8'));
  for (const o of ['--config', '--version', '--help']) {
    assert.ok(usage.includes(o), `rtmd --help mentions ${o}`);
    assert.ok(optionsIn(page).has(o), `rtmd(8) documents ${o}`);
  }
  const signals = new Set(usage.match(/\bSIG[A-Z0-9]+/g));
  assert.ok(signals.size >= 3, 'rtmd --help names its signals');
  for (const s of signals) assert.match(page, new RegExp(`^(?:SIG[A-Z0-9]+, )*${s}\\b`, 'm'), `rtmd(8) has an entry for ${s}`);
});
