// Long options for the runner scripts (npm run chaos, npm run bench): `--name value`, `--name=value` and bare
// flags, with errors that name the option. (The rafting CLI uses node:util parseArgs through src/cli/args.ts.)

/** A bad command line: the runner prints the message and its usage, and exits with status 2. */
export class UsageError extends Error {}

export interface LongOptions {
  /** The value of every option given, by name (`--time`). */
  readonly values: ReadonlyMap<string, string>;
  /** The bare flags given. */
  readonly flags: ReadonlySet<string>;
  /** An integer option, checked against [min, max]; `fallback` when absent. */
  int(name: string, fallback: number, min: number, max: number): number;
}

/** Parses `argv`; `--help` / `-h` throw a UsageError with an empty message. */
export function parseLongOptions(
  argv: readonly string[],
  valued: readonly string[],
  flagNames: readonly string[] = [],
): LongOptions {
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--help' || arg === '-h') throw new UsageError('');
    if (flagNames.includes(arg)) {
      flags.add(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const [name, inline] = eq > 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg, undefined];
    if (!valued.includes(name)) throw new UsageError(`unknown option ${arg}`);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new UsageError(`${name} needs a value`);
    values.set(name, value);
  }
  return {
    values,
    flags,
    int: (name, fallback, min, max) => {
      const raw = values.get(name);
      if (raw === undefined) return fallback;
      const n = Number(raw);
      if (!Number.isInteger(n) || n < min || n > max) {
        throw new UsageError(`${name}: expected an integer from ${min} to ${max}, got ${raw}`);
      }
      return n;
    },
  };
}
