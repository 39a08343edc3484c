// The one place that loads the C addon. Everything else imports `native` from here, typed by
// native/index.d.ts. Compiled code lives in dist/src/link, sources in src/link: look upward for the
// package root rather than counting directories.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as Native from '../../native/index';

function findAddon(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, 'build', 'Release', 'tapswitch_native.node');
    if (fs.existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  throw Object.assign(new Error('tapswitch native addon not built: run `npm ci` (it builds native/ with node-gyp)'), {
    code: 'ERR_TAPSWITCH_NO_ADDON',
  });
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const native: typeof Native = require(findAddon());
