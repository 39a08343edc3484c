// npm ci runs `prepare` after tsc: make every bin executable so `npx tapswitch` works at once.
const fs = require('node:fs');
const path = require('node:path');
const pkg = require('../package.json');
for (const rel of Object.values(pkg.bin)) {
  const file = path.join(__dirname, '..', rel);
  if (fs.existsSync(file)) fs.chmodSync(file, 0o755);
}
