/** What one check found: `ok` ✓, `fail` ✗ (with the fix), `skip` – (could not or need not be checked, with why). */
export type CheckStatus = 'ok' | 'fail' | 'skip';

export interface CheckResult {
  area: 'target' | 'ledger' | 'rossum' | 'hook' | 'mappings';
  /** What was checked: a target name, `ledger`, `API`, a queue, the hook URL. */
  subject: string;
  /** The aspect: `tcp`, `host key`, `write + rename + delete in acks/`, `migrated`, ... */
  check: string;
  status: CheckStatus;
  detail: string;
  fix?: string;
}

export interface DoctorReport {
  /** True when nothing failed (skips do not fail); `doctor` exits 1 otherwise. */
  ok: boolean;
  checks: CheckResult[];
}

export function reportOf(checks: CheckResult[]): DoctorReport {
  return { ok: checks.every((check) => check.status !== 'fail'), checks };
}

const MARK: Record<CheckStatus, string> = { ok: '✓', fail: '✗', skip: '–' };

/** One line per check, the fix indented under each failure (and under skips that hide a risk). */
export function formatReport(report: DoctorReport): string {
  const lines: string[] = [];
  for (const check of report.checks) {
    lines.push(`${MARK[check.status]} ${check.area} ${check.subject} · ${check.check}: ${check.detail}`);
    if (check.fix && check.status !== 'ok') lines.push(`    fix: ${check.fix}`);
  }
  const failed = report.checks.filter((check) => check.status === 'fail').length;
  const skipped = report.checks.filter((check) => check.status === 'skip').length;
  lines.push('');
  lines.push(
    failed === 0
      ? `all ${report.checks.length - skipped} checks passed${skipped ? ` (${skipped} skipped)` : ''}`
      : `${failed} of ${report.checks.length} checks failed${skipped ? `, ${skipped} skipped` : ''}`,
  );
  return `${lines.join('\n')}\n`;
}
