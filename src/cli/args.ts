// A small GNU-style option parser: `--flag`, `--flag=value`, `--flag value`, short aliases (`-h`,
// `-m 9000`, `-m9000`), `--` ends the options. Unknown flags are usage errors that name the flag.
// With `stopAtPositional`, the first non-option ends the options too (`tapswitch run CMD --its-flag`
// must leave `--its-flag` to CMD, like env/unshare do).
import { TapswitchError } from '../control/errors';

export interface OptionSpec {
  /** Long name without dashes, e.g. "mtu". */
  name: string;
  short?: string;
  /** Whether the flag takes a value. */
  value: boolean;
  /** Placeholder shown in help, e.g. "N". */
  metavar?: string;
  help: string;
  /** An alias kept out of the help text (e.g. Docker's spelling of a flag). */
  hidden?: boolean;
}

export interface ParsedArgs {
  /** Flag name -> value ("" for boolean flags). Repeated flags: the last one wins. */
  options: Map<string, string>;
  /** Flag name -> every value given, in order (for repeatable flags such as --publish). */
  all: Map<string, string[]>;
  positionals: string[];
  /** Everything after `--` (or after the first positional with stopAtPositional). */
  rest: string[];
  /** Whether `--` was present. */
  sawDoubleDash: boolean;
}

export function usageError(message: string, command?: string): TapswitchError {
  const help = command ? `tapswitch ${command} --help` : 'tapswitch --help';
  return new TapswitchError('ERR_USAGE', message, `see \`${help}\``);
}

export function parseArgs(argv: readonly string[], specs: readonly OptionSpec[],
  opts: { stopAtPositional?: boolean; command?: string } = {}): ParsedArgs {
  const byLong = new Map(specs.map((s) => [s.name, s]));
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short as string, s]));
  const out: ParsedArgs = { options: new Map(), all: new Map(), positionals: [], rest: [], sawDoubleDash: false };
  const set = (name: string, value: string): void => {
    out.options.set(name, value);
    const list = out.all.get(name);
    if (list) list.push(value);
    else out.all.set(name, [value]);
  };

  let i = 0;
  const takeValue = (spec: OptionSpec, inline: string | undefined, shown: string): string => {
    if (inline !== undefined) return inline;
    const next = argv[i + 1];
    if (next === undefined) throw usageError(`option ${shown} needs a value`, opts.command);
    i++;
    return next;
  };

  for (; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      out.sawDoubleDash = true;
      out.rest = argv.slice(i + 1);
      return out;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      const inline = eq < 0 ? undefined : arg.slice(eq + 1);
      const spec = byLong.get(name);
      if (!spec) throw usageError(`unknown option --${name}`, opts.command);
      if (spec.value) {
        set(spec.name, takeValue(spec, inline, `--${name}`));
      } else {
        if (inline !== undefined) throw usageError(`option --${name} takes no value`, opts.command);
        set(spec.name, '');
      }
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      const letter = arg.slice(1, 2);
      const spec = byShort.get(letter);
      if (!spec) throw usageError(`unknown option -${letter}`, opts.command);
      if (spec.value) {
        set(spec.name, takeValue(spec, arg.length > 2 ? arg.slice(2) : undefined, `-${letter}`));
      } else {
        if (arg.length > 2) throw usageError(`unknown option ${arg}`, opts.command);
        set(spec.name, '');
      }
      continue;
    }
    if (opts.stopAtPositional) {
      out.rest = argv.slice(i);
      return out;
    }
    out.positionals.push(arg);
  }
  return out;
}

/** Help lines for a set of options, aligned. */
export function formatOptions(all: readonly OptionSpec[]): string {
  const specs = all.filter((s) => !s.hidden);
  const left = specs.map((s) => {
    const long = `--${s.name}${s.value ? ` ${s.metavar ?? 'VALUE'}` : ''}`;
    return s.short ? `-${s.short}, ${long}` : `    ${long}`;
  });
  const width = Math.max(...left.map((l) => l.length)) + 2;
  return specs.map((s, i) => `  ${(left[i] as string).padEnd(width)}${s.help}`).join('\n');
}
