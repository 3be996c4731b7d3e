import type { PoolStats } from './contract.ts';

export type { MoveOptions } from './contract.ts';

/** Optional callbacks for metrics; the transport never depends on a metrics library. */
export interface TransportHooks {
  onPoolChange?(target: string, stats: PoolStats): void;
  onConnect?(event: { target: string; ok: boolean; durationMs: number; code?: string }): void;
}
