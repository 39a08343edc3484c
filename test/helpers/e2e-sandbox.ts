// The e2e sandbox: like test/helpers/sandbox.ts (a throwaway user+net+mount namespace playing the
// host; the machine's real network is never touched), but with the ids 0-65535 mapped one to one
// instead of a single id, plus a private PID namespace.
//
// Why: RootlessKit maps subordinate ids into its child with newuidmap, which needs more than one
// mapped id in the namespace it runs in; Podman and runc set up containers with several ids. A
// single-id sandbox (`unshare --map-root-user`) cannot host them; writing a wider map needs
// CAP_SETUID in the parent namespace, i.e. real root (CI runs as root). Without it, the e2e tests
// are skipped with that reason.
//
// The PID namespace makes cleanup total: the test file's node is its PID 1, and when it exits
// the kernel kills everything left inside (conmon, containers, slirp4netns, RootlessKit).
//
// Inside, /etc/subuid and /etc/subgid are replaced (bind mounts in the private mount namespace) by
// `root:1000:64000`, a range inside the map, so RootlessKit's newuidmap can work.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { after, test } from 'node:test';
import { ensureSandbox, sh } from './sandbox';

// Starts unshare, writes the wide maps from outside (we are real root there), then lets it go on.
const WIDE = `
fifo="$1"; shift
unshare --user --net --mount --propagation private --pid --fork --mount-proc --kill-child -- \\
  sh -c 'read go < "$0"; exec "$@"' "$fifo" "$@" &
P=$!
i=0
while [ "$(readlink /proc/$P/ns/user)" = "$(readlink /proc/self/ns/user)" ]; do
  i=$((i+1)); [ $i -gt 200 ] && { echo "e2e sandbox: unshare did not start" >&2; kill $P; exit 1; }
  sleep 0.05
done
echo "0 0 65536" > /proc/$P/uid_map && echo "0 0 65536" > /proc/$P/gid_map || { kill $P; exit 1; }
echo go > "$fifo"
wait $P
`;

function wideUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'needs real root to map a range of ids into the sandbox (RootlessKit/Podman need more than one id)';
  const r = spawnSync('unshare', ['--user', '--net', '--mount', '--pid', '--fork', '--', 'true'], { encoding: 'utf8' });
  if (r.error) return `unshare not runnable (${r.error.message}); install util-linux`;
  if (r.status !== 0) return `cannot create user+net+mount+pid namespaces (${r.stderr.trim()})`;
  return null;
}

/** Re-exec `filename` inside the wide sandbox (see above); false (with a skipped test) when impossible. */
export function ensureWideSandbox(filename: string): boolean {
  if (process.env.TSW_IN_SANDBOX === '1') {
    ensureSandbox(filename);
    const sub = path.join(fs.mkdtempSync(path.join(fs.realpathSync(os.tmpdir()), 'tsw-e2e-')), 'subid');
    fs.writeFileSync(sub, 'root:1000:64000\n');
    for (const f of ['/etc/subuid', '/etc/subgid']) {
      if (!fs.existsSync(f)) fs.writeFileSync(f, '');
      sh('mount', ['--bind', sub, f]);
    }
    // Daemons the clients leave behind (conmon, a container's servers) are reparented to us, PID 1
    // of this namespace, and may hold our pipes open: end them all once the tests are done. Only
    // ever as PID 1 of our own PID namespace, where kill(-1) reaches nothing outside.
    after(() => {
      if (process.pid !== 1) return;
      try {
        process.kill(-1, 'SIGKILL');
      } catch { /* nothing left */ }
    });
    return true;
  }
  const why = wideUnavailable();
  if (why) {
    test(`e2e sandbox for ${path.basename(filename)}`, { skip: why }, () => {});
    return false;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-wide-'));
  const fifo = path.join(dir, 'go');
  spawnSync('mkfifo', [fifo]);
  const r = spawnSync('sh', ['-c', WIDE, 'sh', fifo, process.execPath, ...process.execArgv, filename, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, TSW_IN_SANDBOX: '1' },
  });
  fs.rmSync(dir, { recursive: true, force: true });
  process.exit(r.status ?? 1);
}

/** The absolute path of `cmd` on PATH, or null. */
export function which(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch { /* next */ }
  }
  return null;
}

export interface Impl {
  name: string;
  /** A wrapper that logs its argv to `log` and execs the implementation. */
  bin: string;
  log: string;
}

/**
 * The slirp4netns implementations to run a client against: the real one (when installed) and
 * tapswitch-slirp4netns, each behind a wrapper that records how the client called it.
 */
export function slirp4netnsImpls(ourBin: string): { impls: Impl[]; notes: string[] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-impl-'));
  const wrap = (name: string, target: string): Impl => {
    const bin = path.join(dir, `${name}.sh`);
    const log = path.join(dir, `${name}.log`);
    fs.writeFileSync(bin, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\nexec '${target}' "$@"\n`, { mode: 0o755 });
    return { name, bin, log };
  };
  const impls: Impl[] = [];
  const notes: string[] = [];
  const real = which('slirp4netns');
  if (real) impls.push(wrap('slirp4netns', real));
  else notes.push('the real slirp4netns is not installed (apt-get install slirp4netns): only tapswitch-slirp4netns runs');
  impls.push(wrap('tapswitch-slirp4netns', ourBin));
  return { impls, notes };
}
