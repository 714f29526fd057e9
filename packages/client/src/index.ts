export { startAgent, CLIENT_VERSION, type Agent, type AgentOptions } from './agent.js';
export { startTunnel, type Tunnel } from './tunnel.js';
export { AgentConfig, AGENT_DEFAULTS } from './config.js';
export { createUpstream, type Upstream, type LocalTarget } from './upstream.js';
export { backoffDelay, type BackoffOptions } from './backoff.js';
export { agentEndpointUrl } from './relay-url.js';
