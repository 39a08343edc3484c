// `tapswitch network ...` and the kernel path of `tapswitch run`.
//
//   tapswitch network create [--driver kernel|userspace] [--subnet CIDR] [--gateway IP] [--internal] NAME
//   tapswitch network ls [--json]
//   tapswitch network inspect NAME
//   tapswitch network rm NAME...
//   tapswitch network publish CONTAINER [HOSTIP:]HOSTPORT:PORT[/tcp|udp]
//   tapswitch network unpublish CONTAINER [HOSTIP:]HOSTPORT[/tcp|udp]
//   tapswitch run --network NAME|bridge|none|host|container:NAME [--name N] [--ip A] [--mac M]
//                 [--publish [HOSTIP:]HOSTPORT:PORT[/tcp|udp]]... -- CMD [ARGS...]
//
// The handlers return exit codes and print errors as `tapswitch: <what>: <hint>`; with
// TAPSWITCH_DEBUG=1 a failed command's argv, status, stderr and input (the nft script) follow.
// This module can also run on its own (`node dist/src/cli/network.js network ls`), which the
// integration tests use until main.ts wires it in.
import { isTapswitchError } from '../control/errors';
import { KernelDriver, type NetworkInspect } from '../kernel/driver';
import { isKernelError, KernelError } from '../kernel/errors';
import { CAP_NET_ADMIN, hasCapability, requireNetAdmin } from '../kernel/host';
import { checkPortFree, runKernelCommand, type KernelRunOptions } from '../kernel/run';
import { StateStore } from '../kernel/state';
import { parsePort, parsePortSpec, parseAddress, type PortSpec } from '../kernel/validate';
import { ipv4ToString } from '../wire/addr';
import { formatOptions, parseArgs, usageError, type OptionSpec } from './args';

export const NETWORK_USAGE = `Usage:
  tapswitch network create [--driver kernel|userspace] [--subnet CIDR] [--gateway IP] [--internal] NAME
  tapswitch network ls [--json]
  tapswitch network inspect NAME
  tapswitch network rm NAME...
  tapswitch network publish CONTAINER [HOSTIP:]HOSTPORT:PORT[/tcp|udp]
  tapswitch network unpublish CONTAINER [HOSTIP:]HOSTPORT[/tcp|udp]`;

export const RUN_KERNEL_USAGE = `Usage:
  tapswitch run --network NAME|bridge|none|host|container:NAME [--name N] [--ip ADDR] [--mac MAC]
                [--publish [HOSTIP:]HOSTPORT:PORT[/tcp|udp]]... -- CMD [ARGS...]`;

const CREATE_OPTS: OptionSpec[] = [
  { name: 'driver', short: 'd', value: true, metavar: 'kernel|userspace', help: 'data path (default: kernel with CAP_NET_ADMIN)' },
  { name: 'subnet', value: true, metavar: 'CIDR', help: 'subnet (default: the first free Docker pool)' },
  { name: 'gateway', value: true, metavar: 'IP', help: 'gateway address (default: the subnet\'s .1)' },
  { name: 'internal', value: false, help: 'no outside connectivity, no published ports' },
  { name: 'help', short: 'h', value: false, help: 'show this help' },
];
const LS_OPTS: OptionSpec[] = [
  { name: 'json', value: false, help: 'print a JSON array' },
  { name: 'help', short: 'h', value: false, help: 'show this help' },
];
const PLAIN_OPTS: OptionSpec[] = [{ name: 'help', short: 'h', value: false, help: 'show this help' }];

function out(s: string): void {
  process.stdout.write(`${s}\n`);
}

/** Print an error the way the CLI does and return its exit status. */
export function reportError(e: unknown): number {
  if (isKernelError(e)) {
    process.stderr.write(`tapswitch: ${e.oneLine()}\n`);
    if (process.env.TAPSWITCH_DEBUG && e.command) process.stderr.write(`${e.detail()}\n`);
    return e.exitCode;
  }
  if (isTapswitchError(e)) {
    process.stderr.write(`tapswitch: ${e.oneLine()}\n`);
    return e.exitCode;
  }
  process.stderr.write(`tapswitch: internal error: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  return 70;
}

function driver(): KernelDriver {
  return new KernelDriver(new StateStore());
}

function chooseDriver(asked: string | undefined): void {
  const cap = hasCapability(CAP_NET_ADMIN);
  const d = asked ?? (cap ? 'kernel' : 'userspace');
  if (d === 'kernel') {
    requireNetAdmin('the kernel driver');
    return;
  }
  if (d === 'userspace') {
    throw new KernelError('ERR_USERSPACE_NOT_YET', 'the userspace network driver is not available yet',
      cap ? 'use --driver kernel (the default here)' : 'the kernel driver needs CAP_NET_ADMIN: run as root');
  }
  throw new KernelError('ERR_BAD_VALUE', `unknown driver ${JSON.stringify(d)}`, 'expected kernel or userspace');
}

function networkRow(n: { id: string; name: string; driver: string; subnet: string; gateway: string; bridge: string; internal: boolean }): string[] {
  return [n.id.slice(0, 12), n.name, n.driver, n.subnet, n.gateway, n.bridge, n.internal ? 'yes' : 'no'];
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 2))).join('')).join('\n');
}

/** `[HOSTIP:]HOSTPORT[/proto]` for unpublish (the container port is not needed to name it). */
function parseUnpublish(s: string): PortSpec {
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

export async function networkCommand(argv: string[]): Promise<number> {
  try {
    const [sub, ...rest] = argv;
    switch (sub) {
      case 'create': {
        const a = parseArgs(rest, CREATE_OPTS, { command: 'network create' });
        if (a.options.has('help')) return help(`tapswitch network create [OPTIONS] NAME\n${formatOptions(CREATE_OPTS)}`);
        if (a.positionals.length !== 1 || a.rest.length) throw usageError('network create takes exactly one NAME', 'network create');
        chooseDriver(a.options.get('driver'));
        const subnet = a.options.get('subnet'), gateway = a.options.get('gateway');
        const n = driver().createNetwork({
          name: a.positionals[0]!, internal: a.options.has('internal'),
          ...(subnet !== undefined ? { subnet } : {}), ...(gateway !== undefined ? { gateway } : {}),
        });
        out(n.id);
        return 0;
      }
      case 'ls':
      case 'list': {
        const a = parseArgs(rest, LS_OPTS, { command: 'network ls' });
        if (a.options.has('help')) return help(`tapswitch network ls [--json]\n${formatOptions(LS_OPTS)}`);
        if (a.positionals.length || a.rest.length) throw usageError('network ls takes no arguments', 'network ls');
        // Without CAP_NET_ADMIN nothing can be repaired: show the records as they are.
        const nets = hasCapability(CAP_NET_ADMIN) ? driver().listNetworks() : new StateStore().load().networks;
        if (a.options.has('json')) {
          out(JSON.stringify(nets.map((n) => ({
            id: n.id, name: n.name, driver: n.driver, subnet: n.subnet, gateway: n.gateway, bridge: n.bridge,
            internal: n.internal, created: n.created,
          })), null, 2));
        } else {
          out(table([['NETWORK ID', 'NAME', 'DRIVER', 'SUBNET', 'GATEWAY', 'BRIDGE', 'INTERNAL'], ...nets.map(networkRow)]));
        }
        return 0;
      }
      case 'inspect': {
        const a = parseArgs(rest, PLAIN_OPTS, { command: 'network inspect' });
        if (a.options.has('help')) return help('tapswitch network inspect NAME');
        if (a.positionals.length !== 1) throw usageError('network inspect takes exactly one NAME', 'network inspect');
        requireNetAdmin('network inspect');
        const info: NetworkInspect = driver().inspectNetwork(a.positionals[0]!);
        out(JSON.stringify(info, null, 2));
        return 0;
      }
      case 'rm':
      case 'remove': {
        const a = parseArgs(rest, PLAIN_OPTS, { command: 'network rm' });
        if (a.options.has('help')) return help('tapswitch network rm NAME...');
        if (a.positionals.length === 0) throw usageError('network rm needs at least one NAME', 'network rm');
        requireNetAdmin('network rm');
        const d = driver();
        let status = 0;
        for (const name of a.positionals) {
          try {
            d.removeNetwork(name);
            out(name);
          } catch (e) {
            const code = reportError(e);
            if (status === 0) status = code;
          }
        }
        return status;
      }
      case 'publish':
      case 'unpublish': {
        const a = parseArgs(rest, PLAIN_OPTS, { command: `network ${sub}` });
        if (a.options.has('help')) return help(NETWORK_USAGE);
        if (a.positionals.length !== 2) throw usageError(`network ${sub} takes CONTAINER and a port`, `network ${sub}`);
        requireNetAdmin(`network ${sub}`);
        const [container, spec] = a.positionals as [string, string];
        if (sub === 'publish') {
          const port = parsePortSpec(spec);
          const d = driver();
          d.checkPublishable([port]);
          await checkPortFree(port);
          d.publish(container, port);
        }
        else driver().unpublish(container, parseUnpublish(spec));
        return 0;
      }
      case undefined:
      case '--help':
      case '-h':
      case 'help':
        return help(NETWORK_USAGE);
      default:
        throw usageError(`unknown network command ${JSON.stringify(sub)}`, 'network');
    }
  } catch (e) {
    return reportError(e);
  }
}

function help(text: string): number {
  out(text);
  return 0;
}

/** `run`'s options on the kernel path: the driver's own, without its test hook. */
export type RunKernelOptions = Omit<KernelRunOptions, 'onReady'>;

/** `tapswitch run --network ...` on the kernel path; returns CMD's exit status (or ours on error). */
export async function runKernel(opts: RunKernelOptions): Promise<number> {
  try {
    const o: KernelRunOptions = { command: opts.command };
    if (opts.network !== undefined) o.network = opts.network;
    if (opts.name !== undefined) o.name = opts.name;
    if (opts.ip !== undefined) o.ip = opts.ip;
    if (opts.mac !== undefined) o.mac = opts.mac;
    if (opts.publish !== undefined) o.publish = opts.publish;
    return await runKernelCommand(o);
  } catch (e) {
    return reportError(e);
  }
}

/**
 * Parse `run` arguments for the kernel path: options up to `--` (or the first non-option), where
 * `--publish`/`-p` may repeat. For main.ts, which may use its own parser and call runKernel.
 */
export function parseRunKernelArgs(argv: readonly string[]): RunKernelOptions {
  const o: RunKernelOptions = { command: [], publish: [] };
  const valued: Record<string, 'network' | 'name' | 'ip' | 'mac' | 'publish'> = {
    '--network': 'network', '--net': 'network', '--name': 'name', '--ip': 'ip', '--mac': 'mac',
    '--mac-address': 'mac', '--publish': 'publish', '-p': 'publish',
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      o.command = argv.slice(i + 1);
      break;
    }
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const key = valued[flag];
    if (key) {
      const v = eq > 0 ? arg.slice(eq + 1) : argv[++i];
      if (v === undefined) throw usageError(`option ${flag} needs a value`, 'run');
      if (key === 'publish') o.publish!.push(v);
      else o[key] = v;
      continue;
    }
    if (arg.startsWith('-')) throw usageError(`unknown option ${flag}`, 'run');
    o.command = argv.slice(i);
    break;
  }
  if (o.command.length === 0) throw usageError('run needs a command: tapswitch run [OPTIONS] -- CMD [ARGS...]', 'run');
  return o;
}

/** Stand-alone entry: `network ...` or `run ...`. */
export async function kernelMain(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === 'network') return networkCommand(rest);
  if (cmd === 'run') {
    let o: RunKernelOptions;
    try {
      o = parseRunKernelArgs(rest);
    } catch (e) {
      return reportError(e);
    }
    return runKernel(o);
  }
  process.stderr.write(`${NETWORK_USAGE}\n${RUN_KERNEL_USAGE}\n`);
  return 64;
}

if (require.main === module) {
  kernelMain(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  }, (e) => {
    process.exitCode = reportError(e);
  });
}
