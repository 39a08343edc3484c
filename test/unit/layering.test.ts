// Imports flow one way (architecture.md: cli -> control -> everything below -> wire). ESLint's
// no-restricted-imports would say the same per folder; this test reads every source file instead,
// so the rule holds without a linter dependency.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

const SRC = path.join(__dirname, '..', '..', '..', 'src');

/** Which top-level folders each folder may import at run time (besides itself). */
const ALLOWED: Record<string, readonly string[]> = {
  wire: [],
  link: ['wire', 'native'],
  switch: ['wire', 'link'],
  gateway: ['wire'],
  translate: ['wire', 'link'],
  portfwd: ['translate', 'wire'],
  netns: ['link', 'native', 'wire'],
  worker: ['wire', 'link', 'switch', 'gateway', 'translate', 'portfwd'],
  kernel: ['wire'],
  control: ['wire', 'link', 'switch', 'gateway', 'translate', 'portfwd', 'netns', 'worker', 'kernel'],
  cli: ['control'],
};

/**
 * Type-only imports may also name these: the contracts between layers that are types only
 * (the data-plane config and messages, the translator/sink interfaces, the switch port interface).
 */
const TYPE_CONTRACTS = new Set(['worker/protocol', 'translate/types', 'switch/switch']);

/** Known departures, each with the reason it stands. The list may only shrink. */
const EXCEPTIONS: Record<string, string> = {
  'netns -> control/errors': 'coded errors are shared by every edge; to move into a leaf module',
  'netns -> control/log': 'Logger type; to move into a leaf module',
};

function* sources(dir: string): Generator<string> {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* sources(p);
    else if (e.name.endsWith('.ts')) yield p;
  }
}

test('every import in src/ follows the layering of architecture.md', () => {
  const violations: string[] = [];
  const used = new Set<string>();
  let files = 0;
  for (const file of sources(SRC)) {
    files++;
    const from = path.relative(SRC, file).split(path.sep)[0]!;
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^(?:import|export)\s+(type\s+)?[^'";]*?from\s+'(\.[^']+)'/gm)) {
      const typeOnly = Boolean(m[1]);
      const target = path.relative(SRC, path.resolve(path.dirname(file), m[2]!));
      const folder = target.startsWith('..') ? 'native' : target.split(path.sep)[0]!;
      if (folder === from) continue;
      const module = target.split(path.sep).join('/');
      if (ALLOWED[from]?.includes(folder)) continue;
      if (typeOnly && TYPE_CONTRACTS.has(module)) continue;
      const key = `${from} -> ${module}`;
      if (EXCEPTIONS[key]) { used.add(key); continue; }
      violations.push(`${path.relative(SRC, file)}: ${typeOnly ? 'type ' : ''}import of ${module}`);
    }
  }
  assert.ok(files > 50, `read ${files} files`);
  assert.deepEqual(violations, [], 'imports against the layering');
  const stale = Object.keys(EXCEPTIONS).filter((k) => !used.has(k));
  assert.deepEqual(stale, [], 'exceptions no longer needed: delete them');
});
