/** Loggers for tests: one that drops everything, one that keeps every line for assertions. */
import { pino, type Logger } from 'pino';

export const silentLogger: Logger = pino({ level: 'silent' });

/** A logger that records every line it is given (objects), for asserting on log output. */
export function recordingLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = {
    write(s: string): void {
      lines.push(JSON.parse(s) as Record<string, unknown>);
    },
  };
  return { logger: pino({ level: 'debug' }, stream), lines };
}
