// Command-line parsing on top of node:util parseArgs, with errors that name the command and the flag.

import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A bad command line. main() prints the message and exits with status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The config file the commands read when -c is not given (relative to the working directory). */
export const DEFAULT_CONFIG_PATH = 'config/cluster_config.yaml';

type Options = NonNullable<ParseArgsConfig['options']>;

type Parsed<T extends Options> = ReturnType<
  typeof parseArgs<{ args: string[]; options: T; strict: true; allowPositionals: true }>
>;

/** parseArgs in strict mode; `command` names the subcommand in error messages ("rafting put"). */
export function parseCommandLine<const T extends Options>(
  command: string,
  args: readonly string[],
  options: T,
): Parsed<T> {
  try {
    return parseArgs({ args: [...args], options, strict: true, allowPositionals: true });
  } catch (error) {
    throw new UsageError(`${command}: ${describeParseError(error)} (see ${command} --help)`);
  }
}

/** Checks the number of positional arguments against their names, e.g. ['KEY', 'VALUE']. */
export function expectPositionals(
  command: string,
  positionals: readonly string[],
  names: readonly string[],
): void {
  if (positionals.length < names.length) {
    const missing = names.slice(positionals.length).join(' ');
    throw new UsageError(`${command}: missing ${missing} (usage: ${command} ${names.join(' ')})`);
  }
  if (positionals.length > names.length) {
    const extra = positionals.slice(names.length).map((arg) => JSON.stringify(arg));
    throw new UsageError(
      `${command}: unexpected argument ${extra.join(' ')} (usage: ${command} ${names.join(' ')})`,
    );
  }
}

function describeParseError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  const quoted = /'([^']*)'/.exec(error.message)?.[1]?.replace(' <value>', '').replace(', ', '/');
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && quoted !== undefined) {
    return `unknown option ${JSON.stringify(quoted)}`;
  }
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && quoted !== undefined) {
    if (error.message.includes('does not take an argument')) return `option ${quoted} does not take a value`;
    return `option ${quoted} needs a value`;
  }
  const firstLine = error.message.split('\n')[0] ?? error.message;
  return firstLine.charAt(0).toLowerCase() + firstLine.slice(1);
}
