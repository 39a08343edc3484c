// `tapswitch network ...`: parse, call control/kernel-networks.ts, print.
//
//   tapswitch network create [--driver kernel|userspace] [--subnet CIDR] [--gateway IP] [--internal] [-o mtu=N] NAME
//   tapswitch network ls [--json]
//   tapswitch network inspect NAME
//   tapswitch network rm NAME...
//   tapswitch network publish CONTAINER [HOSTIP:]HOSTPORT:PORT[/tcp|udp]
//   tapswitch network unpublish CONTAINER [HOSTIP:]HOSTPORT[/tcp|udp]
//
// The handlers return exit codes and print errors as `tapswitch: <what>: <hint>`; with
// TAPSWITCH_DEBUG=1 a failed command's argv, status, stderr and input (the nft script) follow.
import { isTapswitchError } from '../control/errors';
import {
  createNetwork, inspectNetwork, isKernelError, listNetworks, publishPort, removeNetworks, unpublishPort,
  type NetworkInspect,
} from '../control/kernel-networks';
import { formatOptions, parseArgs, usageError, type OptionSpec } from './args';

export const NETWORK_USAGE = `Usage:
  tapswitch network create [--driver kernel|userspace] [--subnet CIDR] [--gateway IP] [--internal] [-o mtu=N] NAME
  tapswitch network ls [--json]
  tapswitch network inspect NAME
  tapswitch network rm NAME...
  tapswitch network publish CONTAINER [HOSTIP:]HOSTPORT:PORT[/tcp|udp]
  tapswitch network unpublish CONTAINER [HOSTIP:]HOSTPORT[/tcp|udp]`;

const CREATE_OPTS: OptionSpec[] = [
  { name: 'driver', short: 'd', value: true, metavar: 'kernel|userspace', help: 'data path (default: kernel as root, i.e. uid 0 with CAP_NET_ADMIN over this network namespace; userspace otherwise)' },
  { name: 'subnet', value: true, metavar: 'CIDR', help: 'subnet (default: the first free Docker pool)' },
  { name: 'gateway', value: true, metavar: 'IP', help: 'gateway address (default: the subnet\'s .1)' },
  { name: 'internal', value: false, help: 'no outside connectivity, no published ports' },
  { name: 'opt', short: 'o', value: true, metavar: 'KEY=VALUE', help: 'driver option; mtu=N (or com.docker.network.driver.mtu=N): the bridge MTU and its endpoints\' default' },
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

function networkRow(n: { id: string; name: string; driver: string; subnet: string; gateway: string; bridge: string; internal: boolean }): string[] {
  return [n.id.slice(0, 12), n.name, n.driver, n.subnet, n.gateway, n.bridge, n.internal ? 'yes' : 'no'];
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 2))).join('')).join('\n');
}

export async function networkCommand(argv: string[]): Promise<number> {
  try {
    const [sub, ...rest] = argv;
    switch (sub) {
      case 'create': {
        const a = parseArgs(rest, CREATE_OPTS, { command: 'network create' });
        if (a.options.has('help')) return help(`tapswitch network create [OPTIONS] NAME\n${formatOptions(CREATE_OPTS)}`);
        if (a.positionals.length !== 1 || a.rest.length) throw usageError('network create takes exactly one NAME', 'network create');
        const subnet = a.options.get('subnet'), gateway = a.options.get('gateway'), drv = a.options.get('driver');
        const n = createNetwork({
          name: a.positionals[0]!, internal: a.options.has('internal'), opts: a.all.get('opt') ?? [],
          ...(drv !== undefined ? { driver: drv } : {}),
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
        const nets = listNetworks();
        if (a.options.has('json')) {
          out(JSON.stringify(nets.map((n) => ({
            id: n.id, name: n.name, driver: n.driver, subnet: n.subnet, gateway: n.gateway, bridge: n.bridge,
            internal: n.internal, ...(n.mtu !== undefined ? { mtu: n.mtu } : {}), created: n.created,
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
        const info: NetworkInspect = inspectNetwork(a.positionals[0]!);
        out(JSON.stringify(info, null, 2));
        return 0;
      }
      case 'rm':
      case 'remove': {
        const a = parseArgs(rest, PLAIN_OPTS, { command: 'network rm' });
        if (a.options.has('help')) return help('tapswitch network rm NAME...');
        if (a.positionals.length === 0) throw usageError('network rm needs at least one NAME', 'network rm');
        let status = 0;
        removeNetworks(a.positionals, (name, e) => {
          if (e === undefined) {
            out(name);
            return;
          }
          const code = reportError(e);
          if (status === 0) status = code;
        });
        return status;
      }
      case 'publish':
      case 'unpublish': {
        const a = parseArgs(rest, PLAIN_OPTS, { command: `network ${sub}` });
        if (a.options.has('help')) return help(NETWORK_USAGE);
        if (a.positionals.length !== 2) throw usageError(`network ${sub} takes CONTAINER and a port`, `network ${sub}`);
        const [container, spec] = a.positionals as [string, string];
        if (sub === 'publish') await publishPort(container, spec);
        else unpublishPort(container, spec);
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
