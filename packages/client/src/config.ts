import { z } from 'zod';
import { Subdomain } from '@tunnel/protocol';

/** Every agent setting, validated once after flags, env and defaults are merged. */
export const AgentConfig = z.object({
  port: z.number().int().min(1).max(65535),
  localHost: z.string().min(1).max(253),
  server: z.string().optional(),
  subdomain: Subdomain.optional(),
  token: z.string().min(1).max(1024).optional(),
  relayPort: z.number().int().min(0).max(65535),
  localTimeoutMs: z.number().int().positive(),
  connectTimeoutMs: z.number().int().positive(),
  pingIntervalMs: z.number().int().positive(),
  reconnectMinMs: z.number().int().positive(),
  reconnectMaxMs: z.number().int().positive(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
});
export type AgentConfig = z.infer<typeof AgentConfig>;

/** Defaults: forward to localhost, embedded relay on 7070, patient with slow local apps. */
export const AGENT_DEFAULTS: Omit<AgentConfig, 'port'> = {
  localHost: 'localhost',
  relayPort: 7070,
  localTimeoutMs: 60_000,
  connectTimeoutMs: 5_000,
  pingIntervalMs: 15_000,
  reconnectMinMs: 250,
  reconnectMaxMs: 30_000,
  logLevel: 'info',
};
