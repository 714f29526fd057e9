import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/** A pino logger writing JSON to stderr, so stdout stays free for the URL a script reads. */
export function createLogger(level: LevelWithSilent = 'info', name = 'tunnel'): Logger {
  return pino(
    {
      name,
      level,
      redact: { paths: ['token', '*.token', 'headers.authorization', 'headers.cookie'], censor: '[redacted]' },
    },
    pino.destination({ dest: 2, sync: true }),
  );
}
