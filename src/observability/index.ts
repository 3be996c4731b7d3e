export { createLogger, silentLogger, REDACTED_PATHS, type Logger, type LoggerOptions } from './logger.ts';
export { BridgeMetrics, type ExportOutcome, type PoolGauges } from './metrics.ts';
export { startOpsServer, type OpsServer, type Readiness } from './http.ts';
