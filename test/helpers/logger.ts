import type { Logger } from '../../src/transport/grpc.js';

export interface LogLine {
  readonly level: string;
  readonly fields: object;
  readonly msg: string;
}

/** A logger that keeps every line, so tests can assert what was logged. */
export function captureLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at =
    (level: string) =>
    (obj: object | string, msg?: string): void => {
      if (typeof obj === 'string') lines.push({ level, fields: {}, msg: obj });
      else lines.push({ level, fields: obj, msg: msg ?? '' });
    };
  return { logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }, lines };
}
