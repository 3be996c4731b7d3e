import { join } from 'node:path';
import { bridgeConfigSchema, type BridgeConfig } from '../../src/config/index.ts';
import { repoRoot, testTargetConfig } from './bridge.ts';
import type { RossumSimulator } from './rossum-simulator.ts';
import type { SshdInstance } from './sshd.ts';

export interface AckTestConfigOptions {
  sshd: SshdInstance;
  simulator: RossumSimulator;
  ledgerPath: string;
  /** The one mapping routed to the sshd's `inbound/`; its ERP answers into `acks/`. */
  mapping: string;
  /** That mapping's `acks.byMapping` entry: the convention and its settings (deadline, hold, encoding). */
  ack: Record<string, unknown>;
  /** The repository's `mappings/` unless given. */
  mappingsDir?: string;
  /** Loop settings (poll interval, minimum age, outcome delivery timings); the schema's defaults otherwise. */
  acks?: Record<string, unknown>;
  rossumRetry?: { attempts: number; minDelayMs: number; maxDelayMs: number };
  /** Other top-level settings, e.g. `server` for a config that also runs `serve`, or `logLevel`. */
  extra?: Record<string, unknown>;
}

/**
 * The config a test of the ack loop needs, as an operator would write it (plain data: a test may
 * write it to a file for a spawned process): exports go to the sshd's `inbound/` through target `erp`,
 * the ERP answers into `acks/` read through `erp-out`, and the simulated Rossum API is told.
 */
export function ackTestConfigInput(options: AckTestConfigOptions): Record<string, unknown> {
  const { sshd, simulator } = options;
  const [username, password] = Object.entries(simulator.users)[0]!;
  return {
    ...options.extra,
    ledger: { url: `sqlite:${options.ledgerPath}` },
    mappingsDir: options.mappingsDir ?? join(repoRoot, 'mappings'),
    targets: { erp: testTargetConfig(sshd), 'erp-out': testTargetConfig(sshd, { url: sshd.url('acks') }) },
    routes: [{ mapping: options.mapping, target: 'erp' }],
    rossum: {
      baseUrl: simulator.apiUrl,
      username,
      password,
      retry: options.rossumRetry ?? { attempts: 3, minDelayMs: 10, maxDelayMs: 50 },
    },
    acks: {
      ...options.acks,
      targets: { erp: { folder: '.', readFrom: 'erp-out' } },
      byMapping: { [options.mapping]: options.ack },
    },
  };
}

/** `ackTestConfigInput`, validated by the bridge's own schema. */
export function ackTestConfig(options: AckTestConfigOptions): BridgeConfig {
  return bridgeConfigSchema.parse(ackTestConfigInput(options));
}
