#!/usr/bin/env node
// `npm test [-- unit|integration|e2e]`: run the compiled tests with node's own runner. Builds nothing:
// `npm ci` (prepare) or `npm run build` compiles to dist/ first.
// Files are listed explicitly because Node 20's --test does not expand `**` reliably.
// Integration test files each re-exec themselves inside a throwaway user+net+mount namespace
// (test/helpers/sandbox.ts), so running them in parallel is safe; the limit is the CPU.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const root = path.join(__dirname, '..');
const dist = path.join(root, 'dist', 'test');
const suites = {
  unit: { dir: path.join(dist, 'unit'), concurrency: Math.max(1, os.availableParallelism()), timeoutMs: 60_000 },
  integration: { dir: path.join(dist, 'integration'), concurrency: Math.min(2, os.availableParallelism()), timeoutMs: 300_000 },
  // Real clients (RootlessKit, Podman) against tapswitch-slirp4netns and the real slirp4netns; each
  // file skips with a printed reason naming what is missing. One at a time: they are heavy.
  e2e: { dir: path.join(dist, 'e2e'), concurrency: 1, timeoutMs: 600_000 },
};

function testFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...testFiles(p));
    else if (entry.name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

const which = process.argv[2];
if (which !== undefined && !(which in suites)) {
  console.error(`usage: node scripts/test.js [${Object.keys(suites).join('|')}]`);
  process.exit(64);
}
if (!fs.existsSync(dist)) {
  console.error('tapswitch tests: dist/test is missing: build first with `npm ci` or `npm run build`');
  process.exit(1);
}

let status = 0;
for (const [name, suite] of Object.entries(suites)) {
  if (which !== undefined && which !== name) continue;
  const files = testFiles(suite.dir);
  if (files.length === 0) {
    console.log(`# ${name}: no test files in ${path.relative(root, suite.dir)}`);
    continue;
  }
  console.log(`# ${name}: ${files.length} files, concurrency ${suite.concurrency}`);
  const r = spawnSync(process.execPath, ['--test', `--test-concurrency=${suite.concurrency}`,
    `--test-timeout=${suite.timeoutMs}`, ...files], { stdio: 'inherit', cwd: root });
  if (r.status !== 0) status = r.status ?? 1;
}
process.exit(status);
