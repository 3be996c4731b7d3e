export { createLogger, silentLogger, REDACTED_PATHS, type Logger, type LoggerOptions } from './logger.ts';
export { BridgeMetrics, type ExportOutcome, type PoolGauges } from './metrics.ts';
export { startMetricsServer, type MetricsServer } from './http.ts';
