/** The two long-running processes, assembled from one config: `serve` (webhook → export) and `acks` (ERP answers → Rossum). */
export { startBridge, type BridgeOptions, type RunningBridge } from './serve.ts';
export { startAcks, type RunningAcks } from './acks.ts';
