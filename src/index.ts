/**
 * miniqueue as a library: start the broker inside your own process, or use its parts.
 */
export { Broker, type BrokerOptions, type TopicStats, type SettleKind } from './broker/broker.js';
export { BrokerError, ERRORS, type ErrorCode } from './errors.js';
export { parseConfig, type Config, ConfigError } from './server/config.js';
export { startServer, type RunningServer } from './server/server.js';
export { VERSION } from './server/version.js';
