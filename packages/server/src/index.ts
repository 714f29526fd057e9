export { startRelay, publicUrl, type Relay, type RelayOptions } from './relay.js';
export { RelayConfig, RELAY_DEFAULTS, resolveConfig, type ConfigSource } from './config.js';
export { createLogger, type Logger } from './logger.js';
export { routeHost, hostnameOf, type Route } from './router.js';
export { randomName } from './names.js';
export { AGENT_PATH } from './ingress.js';
export { CLOSE_REFUSED } from './agent-endpoint.js';
export { parsePort, parseMilliseconds, parseCount, parsePositive, fromEnv, exitOnSignals } from './cli-options.js';
export { activeResources } from './resources.js';
