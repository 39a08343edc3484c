// The host's resolvers (upstreams for the DNS forwarder) and the container's own resolv.conf.
//
// The container gets a private file that says `nameserver <network+3>`; `run` bind-mounts it over
// /etc/resolv.conf inside its private mount namespace, so the host file is never touched.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface HostResolvConf {
  /** All nameserver addresses, in file order. */
  nameservers: string[];
  /** `search`/`domain`/`options` lines worth keeping in the container's file. */
  carryOver: string[];
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function isIPv4(s: string): boolean {
  return IPV4.test(s);
}

/** resolv.conf(5): keyword and values separated by blanks; `#` or `;` in column 1 start a comment. */
export function parseResolvConf(text: string): HostResolvConf {
  const out: HostResolvConf = { nameservers: [], carryOver: [] };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const [keyword, ...values] = line.split(/\s+/);
    if (keyword === 'nameserver' && values[0] !== undefined) {
      // glibc accepts a trailing comment after the address on some systems; keep only the address.
      out.nameservers.push(values[0].replace(/[#;].*$/, ''));
    } else if (keyword === 'search' || keyword === 'domain' || keyword === 'options') {
      out.carryOver.push(line);
    }
  }
  return out;
}

/** Upstreams the forwarder can use (IPv4 only for now); the rest is returned so it can be reported. */
export function upstreamsFrom(conf: HostResolvConf): { upstreams: string[]; skipped: string[] } {
  const upstreams: string[] = [];
  const skipped: string[] = [];
  for (const ns of conf.nameservers) (isIPv4(ns) ? upstreams : skipped).push(ns);
  return { upstreams, skipped };
}

export function readHostResolvConf(file = '/etc/resolv.conf'): HostResolvConf {
  try {
    return parseResolvConf(fs.readFileSync(file, 'utf8'));
  } catch {
    return { nameservers: [], carryOver: [] };
  }
}

export function containerResolvConf(dns: string, host: HostResolvConf): string {
  return ['# written by tapswitch: the DNS forwarder on the container network', `nameserver ${dns}`,
    ...host.carryOver, ''].join('\n');
}

export interface PrivateFile {
  path: string;
  /** Remove the file and its directory; safe to call twice. */
  remove(): void;
}

/** Write `content` to a fresh private directory under the temp dir (mode 0644 file, 0700 dir). */
export function writePrivateResolvConf(content: string, tmpdir = os.tmpdir()): PrivateFile {
  const dir = fs.mkdtempSync(path.join(tmpdir, 'tapswitch-'));
  const file = path.join(dir, 'resolv.conf');
  fs.writeFileSync(file, content, { mode: 0o644 });
  return {
    path: file,
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

export type MountTarget =
  | { kind: 'ok'; target: string }
  | { kind: 'missing'; reason: string };

/**
 * Where to bind-mount the container's resolv.conf. A bind mount over a symlink follows it, so the
 * mount lands on the link's target: fine when it exists. A dangling link (e.g. systemd-resolved's
 * stub file absent) or a missing file cannot be mounted over without writing to the host, so the
 * caller leaves resolv.conf alone and says so.
 */
export function resolvMountTarget(file = '/etc/resolv.conf'): MountTarget {
  let lst: fs.Stats;
  try {
    lst = fs.lstatSync(file);
  } catch {
    return { kind: 'missing', reason: `${file} does not exist` };
  }
  if (lst.isSymbolicLink()) {
    try {
      fs.statSync(file);
    } catch {
      return { kind: 'missing', reason: `${file} is a dangling symlink to ${fs.readlinkSync(file)}` };
    }
  }
  return { kind: 'ok', target: file };
}
