// `npm ci` runs this as the install script: build native/ with npm's own node-gyp. These machines
// have no internet, so node-gyp must use the installed headers instead of downloading them.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');

const args = ['rebuild'];
if (!process.env.npm_config_nodedir && fs.existsSync('/usr/include/node/node_api.h')) args.push('--nodedir=/usr');
const gyp = process.env.npm_config_node_gyp;
const [cmd, pre] = gyp ? [process.execPath, [gyp]] : ['node-gyp', []];
const r = spawnSync(cmd, [...pre, ...args], { stdio: 'inherit' });
if (r.error) {
  console.error(`tapswitch: cannot run node-gyp (${r.error.message}): install npm's node-gyp or run 'npx node-gyp rebuild'`);
  process.exit(1);
}
process.exit(r.status ?? 1);
