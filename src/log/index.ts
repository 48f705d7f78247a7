/** The one structured logger of the program. Library code logs through child loggers of this. */
import { pino, type Logger } from 'pino';

const level = process.env.LOG_LEVEL ?? (process.env.VITEST ? 'silent' : 'info');

export const logger: Logger = pino({ level, base: undefined });

/** A child logger tagged with the part of the program that logs. */
export function partLogger(part: string): Logger {
  return logger.child({ part });
}

export type { Logger };
