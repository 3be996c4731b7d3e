import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { repoRoot, startTestBridge, TEST_SECRET, type TestBridge } from '../support/bridge.ts';
import { tail } from '../support/fault-serve.ts';
import { freePort, startSshd, type SshdInstance } from '../support/sshd.ts';
import { exposedMetricNames, loadManifests, only, parsePromql } from './manifests.ts';
import { cliEntry } from '../support/cli-entry.ts';

/**
 * The alert rules and the dashboard against what a running bridge really exposes: a `serve` (as the
 * other tests start it) and a real `acks --metrics-port` child, both scraped over HTTP.
 */

const alertsPath = join(repoRoot, 'deploy/prometheus/alerts.yaml');
const dashboardPath = join(repoRoot, 'deploy/grafana/bridge-dashboard.json');

interface AlertRule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: Array<{ name: string; rules: AlertRule[] }>;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: Array<{ refId: string; expr: string }>;
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; query?: string | { query: string } }> };
}

let sshd: SshdInstance;
let serve: TestBridge;
let serveBase: string;
let acks: ChildProcess;
let acksBase: string;
let acksOutput: string;
let acksExit: Promise<number | null>;
let serveMetrics: Set<string>;
let acksMetrics: Set<string>;
let acksExposition: string;

async function get(url: string): Promise<{ status: number; body: string }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  return { status: response.status, body: await response.text() };
}

async function until<T>(what: string, attempt: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await attempt().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms; acks output:\n${tail(acksOutput)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

beforeAll(async () => {
  sshd = await startSshd({ baseDir: mkdtempSync(join(tmpdir(), 'rsb-deploy-sshd-')) });
  serve = await startTestBridge({ sshd });
  serveBase = new URL(serve.url).origin;

  const dir = mkdtempSync(join(tmpdir(), 'rsb-deploy-acks-'));
  mkdirSync(join(sshd.inboundDir, 'acks'), { recursive: true });
  const configPath = join(dir, 'bridge.yaml');
  writeFileSync(
    configPath,
    stringify({
      server: { secret: TEST_SECRET },
      ledger: { url: `sqlite:${join(dir, 'ledger.db')}` },
      mappingsDir: join(repoRoot, 'mappings'),
      targets: {
        erp: { url: sshd.url('inbound'), hostKey: sshd.hostKeyFingerprint, privateKeyPath: sshd.privateKeyPath },
      },
      routes: [{ mapping: 'generic-xml', target: 'erp' }],
      // Nothing is told to Rossum in this test (no exports); the URL only has to be valid.
      rossum: { baseUrl: 'http://127.0.0.1:9/api', token: 'unused-token' },
      acks: {
        pollIntervalMs: 200,
        minAgeMs: 0,
        targets: { erp: { folder: 'acks' } },
        byMapping: { 'generic-xml': { convention: 'companion' } },
      },
    }),
  );
  const port = await freePort();
  acksBase = `http://127.0.0.1:${port}`;
  acksOutput = join(dir, 'acks.log');
  const fd = openSync(acksOutput, 'a');
  acks = spawn(process.execPath, [cliEntry(), 'acks', '--config', configPath, '--metrics-port', String(port)], {
    cwd: repoRoot,
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  acksExit = new Promise((resolve) => acks.once('exit', (code) => resolve(code)));

  serveMetrics = exposedMetricNames((await get(`${serveBase}/metrics`)).body);
  // After a few passes the ack folder was listed: the target gauge and the ledger backlog have samples.
  acksExposition = await until('acks reported the ack folder on the sshd as reachable', async () => {
    const { status, body } = await get(`${acksBase}/metrics`);
    return status === 200 && /^bridge_target_up\{target="erp"\} 1$/m.test(body) ? body : undefined;
  });
  acksMetrics = exposedMetricNames(acksExposition);
}, 90_000);

afterAll(async () => {
  if (acks && acks.exitCode === null) acks.kill('SIGTERM');
  await serve?.close();
  await sshd?.stop();
});

function knownMetric(name: string): boolean {
  return serveMetrics.has(name) || acksMetrics.has(name);
}

describe('what the processes serve', () => {
  it('serve answers the probe paths of its Deployment, and /metrics reports the target it reached', async () => {
    const container = (
      only(loadManifests(), 'Deployment', 'rossum-sftp-bridge-serve').spec as {
        template: { spec: { containers: Array<Record<string, { httpGet?: { path: string } }>> } };
      }
    ).template.spec.containers[0];
    const paths = ['startupProbe', 'livenessProbe', 'readinessProbe'].map((probe) => container?.[probe]?.httpGet?.path);
    expect(paths).toEqual(['/healthz', '/healthz', '/readyz']);
    for (const path of paths) expect((await get(`${serveBase}${path}`)).status, path).toBe(200);
    expect((await get(`${serveBase}/metrics`)).body).toMatch(/^bridge_target_up\{target="erp"\} 1$/m);
  });

  it('acks answers the probe paths of its Deployment, /readyz and /metrics on its one port, and nothing else', async () => {
    const container = (
      only(loadManifests(), 'Deployment', 'rossum-sftp-bridge-acks').spec as {
        template: { spec: { containers: Array<Record<string, { httpGet?: { path: string } }>> } };
      }
    ).template.spec.containers[0];
    const paths = ['startupProbe', 'livenessProbe'].map((probe) => container?.[probe]?.httpGet?.path);
    expect(paths).toEqual(['/healthz', '/healthz']);
    for (const path of paths) expect((await get(`${acksBase}${path}`)).status, path).toBe(200);
    // --metrics-port is the alias of acks.listen: the same single server also reports readiness.
    const readyz = await get(`${acksBase}/readyz`);
    expect([200, 503]).toContain(readyz.status);
    expect(JSON.parse(readyz.body)).toMatchObject({
      ready: readyz.status === 200,
      rossumCredentials: expect.any(Object),
    });
    expect((await get(`${acksBase}/other`)).status).toBe(404);
  });

  it('acks reports the ledger-wide outbox by delivery state', () => {
    expect(acksExposition).toMatch(/^bridge_ack_outcomes_backlog\{delivery="pending"\} 0$/m);
    expect(acksExposition).toMatch(/^bridge_ack_outcomes_backlog\{delivery="failed"\} 0$/m);
  });

  it('the metric-name check can fail: an unknown name and a histogram without its suffix are not exposed', () => {
    expect(knownMetric('bridge_exports_total')).toBe(true);
    expect(knownMetric('bridge_export_duration_seconds_bucket')).toBe(true);
    expect(knownMetric('bridge_export_duration_seconds')).toBe(false);
    expect(knownMetric('bridge_exports_failing_total')).toBe(false);
    expect(parsePromql('sum(rate(bridge_exports_total[5m])').errors).not.toEqual([]);
  });
});

describe('deploy/prometheus/alerts.yaml', () => {
  const rules = parse(readFileSync(alertsPath, 'utf8')) as RuleFile;

  it('has the shape of a Prometheus rule file', () => {
    expect(Object.keys(rules)).toEqual(['groups']);
    expect(rules.groups.length).toBeGreaterThan(0);
    const names = new Set<string>();
    for (const group of rules.groups) {
      expect(typeof group.name).toBe('string');
      expect(group.rules.length).toBeGreaterThan(0);
      for (const rule of group.rules) {
        expect(
          Object.keys(rule).every((key) =>
            ['alert', 'record', 'expr', 'for', 'keep_firing_for', 'labels', 'annotations'].includes(key),
          ),
          JSON.stringify(rule),
        ).toBe(true);
        expect(typeof rule.alert, 'alerting rules only').toBe('string');
        expect(names.has(rule.alert as string), `duplicate alert ${rule.alert}`).toBe(false);
        names.add(rule.alert as string);
        expect(typeof rule.expr).toBe('string');
        if (rule.for !== undefined) expect(rule.for).toMatch(/^(\d+(ms|s|m|h|d|w|y))+$/);
        expect(['critical', 'warning', 'info']).toContain(rule.labels?.severity);
        expect(rule.annotations?.summary, `${rule.alert} summary`).toBeTruthy();
        expect(rule.annotations?.description, `${rule.alert} description`).toBeTruthy();
      }
    }
    for (const required of [
      'BridgeExportsFailing',
      'BridgeAcksOverdue',
      'BridgeRossumDeliveriesPending',
      'BridgeTargetUnreachable',
    ])
      expect(names).toContain(required);
  });

  it('every expression parses as PromQL and uses only metrics the bridge exposes', () => {
    for (const group of rules.groups) {
      for (const rule of group.rules) {
        const { errors, metricNames } = parsePromql(rule.expr);
        expect(errors, `${rule.alert}: ${rule.expr}`).toEqual([]);
        expect(metricNames.length, `${rule.alert} reads a metric`).toBeGreaterThan(0);
        for (const name of metricNames)
          expect(knownMetric(name), `${rule.alert}: ${name} is not in /metrics of serve or acks`).toBe(true);
      }
    }
  });
});

describe('deploy/grafana/bridge-dashboard.json', () => {
  const dashboard = JSON.parse(readFileSync(dashboardPath, 'utf8')) as Dashboard;
  // What Grafana substitutes before it sends a query.
  const substituted = (expr: string): string => expr.replaceAll('$__rate_interval', '1m').replaceAll('$job', '.*');

  it('is a dashboard with unique panel ids and a query in every panel', () => {
    expect(dashboard.uid).toBe('rossum-sftp-bridge');
    const ids = dashboard.panels.map((panel) => panel.id);
    expect(new Set(ids).size).toBe(ids.length);
    const queried = dashboard.panels.filter((panel) => panel.type !== 'row');
    expect(queried.length).toBeGreaterThanOrEqual(10);
    for (const panel of queried) {
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      expect(panel.gridPos.x + panel.gridPos.w, panel.title).toBeLessThanOrEqual(24);
    }
  });

  it('every query parses as PromQL and uses only metrics the bridge exposes', () => {
    const used = new Set<string>();
    for (const panel of dashboard.panels) {
      for (const target of panel.targets ?? []) {
        const expr = substituted(target.expr);
        expect(expr, `${panel.title}: a Grafana variable left`).not.toMatch(/\$/);
        const { errors, metricNames } = parsePromql(expr);
        expect(errors, `${panel.title}: ${target.expr}`).toEqual([]);
        for (const name of metricNames) {
          expect(knownMetric(name), `${panel.title}: ${name} is not in /metrics of serve or acks`).toBe(true);
          used.add(name);
        }
      }
    }
    // The dashboard covers both processes.
    expect(used).toContain('bridge_exports_total');
    expect(used).toContain('bridge_ack_outcomes_backlog');
  });

  it('the job variable reads a metric both processes expose', () => {
    for (const variable of dashboard.templating.list) {
      const query = typeof variable.query === 'object' ? variable.query.query : variable.query;
      const metric = /^label_values\(([A-Za-z_:][A-Za-z0-9_:]*),/.exec(query ?? '')?.[1];
      if (!metric) continue;
      expect(serveMetrics.has(metric) && acksMetrics.has(metric), metric).toBe(true);
    }
  });
});

describe('acks metrics port', () => {
  it('closes with the process on SIGTERM, which exits 0', async () => {
    acks.kill('SIGTERM');
    expect(await acksExit).toBe(0);
    await expect(get(`${acksBase}/healthz`)).rejects.toThrow();
  });
});
