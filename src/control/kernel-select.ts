// Which data path a command gets when the user does not say: the one rule behind both
// `tapswitch run` without `--network` and `tapswitch network create` without `--driver`.
//
// "Root" here means: the caller is uid 0 in its own user namespace, holds CAP_NET_ADMIN there, and
// that capability works over its network namespace (the namespace belongs to that user namespace,
// or to one below it). That is real root on a host, and also root of a user+net namespace that
// plays the host (`unshare -U -r -n`, as the integration tests do). It is not a normal user, not
// `unshare -U -r` without `-n` (CapEff is full, but the network namespace still belongs to the
// parent user namespace), and not a non-zero uid with file capabilities.
//
//   root       -> run: the kernel path on the `bridge` network;  network create: --driver kernel
//   not root   -> run: the userspace path (TAP);                  network create: --driver userspace
//
// `run --network userspace` selects the userspace path explicitly, root or not; any other
// `--network` value (a network name, bridge, none, host, container:NAME) is the kernel path, which
// then needs CAP_NET_ADMIN over the network namespace and says so if it is missing.
import { canAdminNetns, privilegeFacts, type PrivilegeFacts } from '../kernel/host';
import { DEFAULT_NETWORK } from '../kernel/driver';
import { isKernelError, KernelError } from '../kernel/errors';

export type { PrivilegeFacts };
/** The kernel path's coded errors, for the CLI to print (cli imports control only). */
export { isKernelError, KernelError };

/** `--network` value that selects the userspace (TAP) path. */
export const USERSPACE_NETWORK = 'userspace';

export type RunPath = { path: 'userspace' } | { path: 'kernel'; network: string };

/** The rule above, over facts (pure). */
export function isRoot(f: PrivilegeFacts): boolean {
  return f.euid === 0 && f.capNetAdmin && f.netnsAdmin;
}

/** Where `tapswitch run` goes: `network` is `--network`'s value (undefined when absent). */
export function selectRunPath(network: string | undefined, root: boolean): RunPath {
  if (network === USERSPACE_NETWORK) return { path: 'userspace' };
  if (network !== undefined) return { path: 'kernel', network };
  return root ? { path: 'kernel', network: DEFAULT_NETWORK } : { path: 'userspace' };
}

/** The driver `network create` uses without `--driver`. */
export function defaultDriver(root: boolean): 'kernel' | 'userspace' {
  return root ? 'kernel' : 'userspace';
}

/** This process's answer (the facts are read once: /proc/self/status and, with CAP_NET_ADMIN, one `ip` probe). */
export function runningAsRoot(): boolean {
  return isRoot(privilegeFacts());
}

/** CAP_NET_ADMIN over this network namespace (uid 0 not required): enough to drive the kernel path. */
export function mayAdminNetns(): boolean {
  return canAdminNetns(privilegeFacts());
}
