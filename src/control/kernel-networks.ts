// `tapswitch network ...` behind the CLI: which driver, the capability checks, and the kernel
// driver's operations (src/kernel/driver.ts does the locked transactions). The CLI parses and
// prints; everything it needs from the kernel path comes through here and control/kernel-run.ts.
import { KernelDriver, type NetworkInspect } from '../kernel/driver';
import { isKernelError, KernelError } from '../kernel/errors';
import { checkPortFree } from '../kernel/hostports';
import { requireNetAdmin } from '../kernel/host';
import { StateStore, type NetworkRecord } from '../kernel/state';
import { parseAddress, parsePort, parsePortSpec, type PortSpec } from '../kernel/validate';
import { ipv4ToString } from '../wire/addr';
import { parseMtu } from './config';
import { TapswitchError } from './errors';
import { defaultDriver, mayAdminNetns, runningAsRoot } from './kernel-select';

export { isKernelError, KernelError, type NetworkInspect, type NetworkRecord };

export interface CreateOptions {
  name: string;
  /** `--driver`; absent: kernel as root, userspace otherwise (control/kernel-select.ts). */
  driver?: string;
  subnet?: string;
  gateway?: string;
  internal?: boolean;
  /** `-o/--opt KEY=VALUE` driver options, as given. */
  opts?: string[];
}

/** Driver options `network create -o` knows, by every name it accepts (Docker's long names too). */
const MTU_OPTS = new Set(['mtu', 'com.docker.network.driver.mtu']);

/** Parse `-o KEY=VALUE` options (only the MTU for now). */
export function parseDriverOpts(opts: readonly string[]): { mtu?: number } {
  const out: { mtu?: number } = {};
  for (const o of opts) {
    const eq = o.indexOf('=');
    const key = eq < 0 ? o : o.slice(0, eq);
    if (eq < 0) {
      throw new TapswitchError('ERR_BAD_VALUE', `driver option ${JSON.stringify(o)} has no value`, 'use -o KEY=VALUE, e.g. -o mtu=1400');
    }
    if (!MTU_OPTS.has(key)) {
      throw new TapswitchError('ERR_BAD_VALUE', `unknown driver option ${JSON.stringify(key)}`,
        'the kernel driver knows mtu (also spelled com.docker.network.driver.mtu)');
    }
    out.mtu = parseMtu(o.slice(eq + 1));
  }
  return out;
}

function driver(): KernelDriver {
  return new KernelDriver(new StateStore());
}

const ROOT_HINT = 'run as root (uid 0 with CAP_NET_ADMIN over this network namespace)';

/** Which driver `network create` uses; throws for one that cannot be used here. */
export function chooseDriver(asked: string | undefined, root = runningAsRoot()): 'kernel' {
  const d = asked ?? defaultDriver(root);
  if (d === 'kernel') {
    requireNetAdmin('the kernel driver', `${ROOT_HINT}; without root, \`tapswitch run\` uses the userspace path`);
    return 'kernel';
  }
  if (d === 'userspace') {
    throw new KernelError('ERR_USERSPACE_NOT_YET', 'the userspace network driver is not available yet',
      root ? 'use --driver kernel (the default here)'
        : `the kernel driver needs CAP_NET_ADMIN: ${ROOT_HINT}; \`tapswitch run\` without --network gives one container the userspace path`);
  }
  throw new KernelError('ERR_BAD_VALUE', `unknown driver ${JSON.stringify(d)}`, 'expected kernel or userspace');
}

export function createNetwork(o: CreateOptions): NetworkRecord {
  chooseDriver(o.driver);
  const { mtu } = parseDriverOpts(o.opts ?? []);
  return driver().createNetwork({
    name: o.name, internal: o.internal === true,
    ...(o.subnet !== undefined ? { subnet: o.subnet } : {}), ...(o.gateway !== undefined ? { gateway: o.gateway } : {}),
    ...(mtu !== undefined ? { mtu } : {}),
  });
}

/** Every network; without CAP_NET_ADMIN nothing can be repaired, so the records are shown as they are. */
export function listNetworks(): NetworkRecord[] {
  return mayAdminNetns() ? driver().listNetworks() : new StateStore().load().networks;
}

export function inspectNetwork(name: string): NetworkInspect {
  requireNetAdmin('network inspect', ROOT_HINT);
  return driver().inspectNetwork(name);
}

/** Remove each network in turn; `onResult` hears of each (an error, or undefined for success). */
export function removeNetworks(names: readonly string[], onResult: (name: string, error?: unknown) => void): void {
  requireNetAdmin('network rm', ROOT_HINT);
  const d = driver();
  for (const name of names) {
    try {
      d.removeNetwork(name);
      onResult(name);
    } catch (e) {
      onResult(name, e);
    }
  }
}

/** `[HOSTIP:]HOSTPORT[/proto]` for unpublish (the container port is not needed to name it). */
export function parseUnpublish(s: string): PortSpec {
  if (/^(.+:)?\d+:\d+(\/\w+)?$/.test(s)) return parsePortSpec(s);
  let body = s, proto: 'tcp' | 'udp' = 'tcp';
  const slash = s.lastIndexOf('/');
  if (slash >= 0) {
    const p = s.slice(slash + 1);
    if (p !== 'tcp' && p !== 'udp') throw new KernelError('ERR_BAD_VALUE', `invalid publish protocol ${JSON.stringify(p)}`, 'expected tcp or udp');
    proto = p;
    body = s.slice(0, slash);
  }
  const parts = body.split(':');
  if (parts.length > 2) throw new KernelError('ERR_BAD_VALUE', `invalid port ${JSON.stringify(s)}`, 'expected [HOSTIP:]HOSTPORT[/tcp|udp]');
  const spec: PortSpec = { hostPort: parsePort(parts[parts.length - 1]!, 'host port'), containerPort: 0, proto };
  if (parts.length === 2) {
    const a = parseAddress(parts[0]!, 'host IP');
    if (a !== 0) spec.hostIp = ipv4ToString(a);
  }
  return spec;
}

/** Publish a port of a running container at once (refused if taken by a container or a host service). */
export async function publishPort(container: string, spec: string): Promise<void> {
  requireNetAdmin('network publish', ROOT_HINT);
  const port = parsePortSpec(spec);
  const d = driver();
  d.checkPublishable([port]);
  await checkPortFree(port);
  d.publish(container, port);
}

export function unpublishPort(container: string, spec: string): void {
  requireNetAdmin('network unpublish', ROOT_HINT);
  driver().unpublish(container, parseUnpublish(spec));
}
