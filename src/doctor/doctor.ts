import type { BridgeConfig } from '../config/index.ts';
import { checkLedger } from './ledger.ts';
import { checkMappings } from './mappings.ts';
import { reportOf, type DoctorReport } from './report.ts';
import { checkOutcomeLease, checkRossum } from './rossum.ts';
import { checkTargets } from './targets.ts';

/**
 * Everything a running bridge depends on, checked once, read-only except for probe files (deleted
 * again) in the target and ack folders. Areas run one after another so the output reads top to bottom.
 */
export async function runDoctor(config: BridgeConfig): Promise<DoctorReport> {
  const checks = [
    ...(await checkTargets(config)),
    ...(await checkLedger(config.ledger.url)),
    ...(await checkRossum(config)),
    checkOutcomeLease(config),
    ...checkMappings(config.mappingsDir),
  ];
  return reportOf(checks);
}
