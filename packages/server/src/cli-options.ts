import { InvalidArgumentError } from 'commander';

/** Parses a TCP port for a flag; `allowZero` admits 0, meaning "any free port". */
export function parsePort(allowZero: boolean): (value: string) => number {
  return (value) => {
    const port = Number(value);
    const min = allowZero ? 0 : 1;
    if (!/^\d+$/.test(value) || port < min || port > 65535) {
      throw new InvalidArgumentError(`must be a port number from ${min} to 65535.`);
    }
    return port;
  };
}

/** Parses a non-negative whole number of milliseconds for a flag. */
export function parseMilliseconds(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('must be a whole number of milliseconds.');
  return Number(value);
}

/** Parses a whole number (0 or more) for a flag. */
export function parseCount(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('must be a whole number (0 or more).');
  return Number(value);
}

/** Parses a positive whole number for a flag. */
export function parsePositive(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError('must be a whole number of 1 or more.');
  return Number(value);
}

/** Reads an environment variable, treating an empty value as unset. */
export function fromEnv(name: string): string | undefined {
  const value = process.env[name];
  return value === undefined || value === '' ? undefined : value;
}

/** Runs `stop` once on SIGINT or SIGTERM, then exits 0; a second signal exits at once. */
export function exitOnSignals(stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) process.exit(130);
    stopping = true;
    process.stderr.write(`\nreceived ${signal}, shutting down\n`);
    stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
