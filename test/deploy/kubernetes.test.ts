import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig, type BridgeConfig } from '../../src/config/index.ts';
import { repoRoot } from '../support/bridge.ts';
import { kubernetesDir, loadManifests, only, withoutFile, type Manifest } from './manifests.ts';

const manifests = loadManifests();
const configMap = only(manifests, 'ConfigMap', 'rossum-sftp-bridge-config');
const secret = only(manifests, 'Secret', 'rossum-sftp-bridge');
const serve = only(manifests, 'Deployment', 'rossum-sftp-bridge-serve');
const acks = only(manifests, 'Deployment', 'rossum-sftp-bridge-acks');
const service = only(manifests, 'Service', 'rossum-sftp-bridge');

const CONFIG_KEY = 'bridge.yaml';
const configText = (configMap.data as Record<string, string>)[CONFIG_KEY] as string;
const secretValues = secret.stringData as Record<string, string>;

interface Probe {
  httpGet?: { path: string; port: string | number };
}
interface Container {
  name: string;
  args: string[];
  ports: Array<{ name: string; containerPort: number }>;
  envFrom?: Array<{ secretRef?: { name: string } }>;
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  lifecycle?: { preStop?: { sleep?: { seconds: number } } };
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  securityContext: {
    allowPrivilegeEscalation: boolean;
    readOnlyRootFilesystem: boolean;
    capabilities: { drop: string[] };
  };
  volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}
interface PodSpec {
  terminationGracePeriodSeconds: number;
  automountServiceAccountToken: boolean;
  securityContext: { runAsNonRoot: boolean; runAsUser: number };
  containers: Container[];
  volumes: Array<{ name: string; configMap?: { name: string }; emptyDir?: object }>;
}
interface DeploymentShape {
  spec: {
    replicas: number;
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string>; annotations: Record<string, string> }; spec: PodSpec };
  };
}

const shape = (manifest: Manifest): DeploymentShape => manifest as unknown as DeploymentShape;
const pod = (manifest: Manifest): PodSpec => shape(manifest).spec.template.spec;
const container = (manifest: Manifest): Container => {
  const containers = pod(manifest).containers;
  expect(containers).toHaveLength(1);
  return containers[0] as Container;
};
const argAfter = (args: string[], flag: string): string | undefined => {
  const at = args.indexOf(flag);
  return at < 0 ? undefined : args[at + 1];
};

/** The ConfigMap's config through the bridge's own loader, with the Secret template's values as environment. */
function loadDeployedConfig(env: Record<string, string> = secretValues): BridgeConfig {
  const dir = mkdtempSync(join(tmpdir(), 'rsb-deploy-config-'));
  // The image ships the repository's mappings folder at /app/mappings (checked against the Dockerfile below).
  expect(configText).toContain('mappingsDir: /app/mappings');
  const path = join(dir, CONFIG_KEY);
  writeFileSync(path, configText.replace('mappingsDir: /app/mappings', `mappingsDir: ${join(repoRoot, 'mappings')}`));
  return loadConfig(path, env).config;
}

function envReferences(text: string): Set<string> {
  return new Set([...text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}/g)].map((match) => match[1] as string));
}

describe('deploy/kubernetes manifests', () => {
  it('every manifest is valid against the Kubernetes API schema of its kind', () => {
    const models: Record<string, (value: Record<string, unknown>) => { validate(): void }> = {
      'apps/v1/Deployment': (value) => new Deployment(value as never),
      'v1/Service': (value) => new Service(value as never),
      'v1/ConfigMap': (value) => new ConfigMap(value as never),
      'v1/Secret': (value) => new Secret(value as never),
      'policy/v1/PodDisruptionBudget': (value) => new PodDisruptionBudget(value as never),
    };
    const kinds: string[] = [];
    for (const manifest of manifests) {
      if (manifest.kind === 'Kustomization') continue;
      const model = models[`${manifest.apiVersion}/${manifest.kind}`];
      if (!model) throw new Error(`${manifest.file}: no schema check for ${manifest.apiVersion} ${manifest.kind}`);
      expect(
        () => model(withoutFile(manifest)).validate(),
        `${manifest.file}: ${manifest.kind} ${manifest.metadata.name}`,
      ).not.toThrow();
      kinds.push(manifest.kind);
    }
    expect(kinds.sort()).toEqual([
      'ConfigMap',
      'Deployment',
      'Deployment',
      'PodDisruptionBudget',
      'PodDisruptionBudget',
      'Secret',
      'Service',
    ]);
  });

  it('the schema check rejects a wrong type, so the test above can fail', () => {
    const broken = structuredClone(withoutFile(serve)) as { spec: { replicas: unknown } };
    broken.spec.replicas = 'three';
    expect(() => new Deployment(broken as never).validate()).toThrow(/replicas must be integer/);
  });

  it('the kustomization applies every manifest except the Secret template', () => {
    const kustomization = parse(readFileSync(join(kubernetesDir, 'kustomization.yaml'), 'utf8')) as {
      resources: string[];
    };
    const files = [
      ...new Set(manifests.filter((manifest) => manifest.kind !== 'Kustomization').map((manifest) => manifest.file)),
    ];
    expect([...kustomization.resources].sort()).toEqual(files.filter((file) => file !== secret.file).sort());
  });

  it("the ConfigMap's config passes the bridge's config loader, with what the acks process needs", () => {
    const config = loadDeployedConfig();
    expect(config.ledger.url).toMatch(/^postgres(ql)?:\/\//);
    expect(config.server.secret).toBe(secretValues.ROSSUM_HOOK_SECRET);
    expect(config.rossum?.token).toBe(secretValues.ROSSUM_API_TOKEN);
    expect(Object.keys(config.acks.targets).length).toBeGreaterThan(0);
    for (const name of Object.keys(config.acks.targets)) expect(Object.keys(config.targets)).toContain(name);
    for (const mapping of Object.keys(config.acks.byMapping))
      expect(config.routes.map((route) => route.mapping)).toContain(mapping);
  });

  it('the loader refuses the config when a Secret key is missing, naming the variable', () => {
    const { BRIDGE_LEDGER_URL: _dropped, ...withoutLedger } = secretValues;
    expect(() => loadDeployedConfig(withoutLedger)).toThrow(/BRIDGE_LEDGER_URL/);
  });

  it("the Secret's keys are exactly the ${ENV} references of the config, and both Deployments load it", () => {
    expect(new Set(Object.keys(secretValues))).toEqual(envReferences(configText));
    for (const deployment of [serve, acks]) {
      expect(container(deployment).envFrom?.map((source) => source.secretRef?.name)).toContain(secret.metadata.name);
    }
  });

  it('both Deployments mount the ConfigMap where their --config points', () => {
    for (const deployment of [serve, acks]) {
      const main = container(deployment);
      const configPath = argAfter(main.args, '--config') as string;
      const volume = pod(deployment).volumes.find((candidate) => candidate.configMap?.name === configMap.metadata.name);
      const mount = main.volumeMounts.find((candidate) => candidate.name === volume?.name);
      expect(mount, `${deployment.metadata.name} mounts ${configMap.metadata.name}`).toBeDefined();
      expect(configPath).toBe(`${mount?.mountPath}/${CONFIG_KEY}`);
    }
  });

  it("container ports match the config's port and the acks metrics port; the Service and scrape annotations use them", () => {
    const config = loadDeployedConfig();
    const serveContainer = container(serve);
    expect(serveContainer.args[0]).toBe('serve');
    const http = serveContainer.ports.find((port) => port.containerPort === config.server.port);
    expect(http, `serve exposes server.port ${config.server.port}`).toBeDefined();
    expect(shape(serve).spec.template.metadata.annotations['prometheus.io/port']).toBe(String(config.server.port));

    const servicePorts = (service.spec as { ports: Array<{ targetPort: string | number }> }).ports;
    for (const port of servicePorts) expect([http?.name, http?.containerPort]).toContain(port.targetPort);
    const selector = (service.spec as { selector: Record<string, string> }).selector;
    expect(shape(serve).spec.template.metadata.labels).toMatchObject(selector);
    expect(shape(acks).spec.template.metadata.labels).not.toMatchObject(selector);

    const acksContainer = container(acks);
    expect(acksContainer.args[0]).toBe('acks');
    const metricsPort = Number(argAfter(acksContainer.args, '--metrics-port'));
    expect(argAfter(acksContainer.args, '--metrics-host')).toBe('0.0.0.0');
    expect(acksContainer.ports.map((port) => port.containerPort)).toEqual([metricsPort]);
    expect(shape(acks).spec.template.metadata.annotations['prometheus.io/port']).toBe(String(metricsPort));
  });

  it('probes use named ports the containers declare', () => {
    for (const deployment of [serve, acks]) {
      const main = container(deployment);
      const names = main.ports.map((port) => port.name);
      for (const probe of [main.startupProbe, main.livenessProbe, main.readinessProbe]) {
        if (probe) expect(names).toContain(probe.httpGet?.port);
      }
      expect(main.livenessProbe?.httpGet?.path).toBe('/healthz');
    }
    expect(container(serve).readinessProbe?.httpGet?.path).toBe('/readyz');
  });

  it('runs non-root with a read-only root filesystem, no privilege escalation, no capabilities and bounded resources', () => {
    for (const deployment of [serve, acks]) {
      const spec = pod(deployment);
      expect(spec.securityContext.runAsNonRoot).toBe(true);
      expect(spec.securityContext.runAsUser).toBeGreaterThan(0);
      expect(spec.automountServiceAccountToken).toBe(false);
      const main = container(deployment);
      expect(main.securityContext).toEqual({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
      });
      // tsx writes its compile cache to the temp folder: it must be a writable volume.
      const tmp = main.volumeMounts.find((mount) => mount.mountPath === '/tmp');
      expect(spec.volumes.find((volume) => volume.name === tmp?.name)?.emptyDir).toBeDefined();
      for (const resource of ['cpu', 'memory']) {
        expect(main.resources.requests[resource], `${deployment.metadata.name} requests ${resource}`).toBeDefined();
        expect(main.resources.limits[resource], `${deployment.metadata.name} limits ${resource}`).toBeDefined();
      }
      expect(mebibytes(main.resources.limits.memory as string)).toBeGreaterThanOrEqual(
        mebibytes(main.resources.requests.memory as string),
      );
    }
  });

  it('termination grace covers the drain: preStop, the answer deadline and a running upload (serve); an upload and a Rossum call (acks)', () => {
    const config = loadDeployedConfig();
    const longestOperationS =
      Math.max(
        ...Object.values(config.targets).map((target) => ('pool' in target ? target.pool.operationTimeoutMs : 0)),
      ) / 1000;
    const serveContainer = container(serve);
    const preStopS = serveContainer.lifecycle?.preStop?.sleep?.seconds ?? 0;
    expect(preStopS).toBeGreaterThan(0);
    expect(pod(serve).terminationGracePeriodSeconds).toBeGreaterThanOrEqual(
      preStopS + config.server.deadlineMs / 1000 + longestOperationS,
    );
    expect(pod(acks).terminationGracePeriodSeconds).toBeGreaterThanOrEqual(
      longestOperationS + (config.rossum?.timeoutMs ?? 0) / 1000,
    );
  });

  it('each PodDisruptionBudget selects the pods of one Deployment and leaves room for a drain', () => {
    const budgets = manifests.filter((manifest) => manifest.kind === 'PodDisruptionBudget');
    expect(budgets).toHaveLength(2);
    for (const budget of budgets) {
      const spec = budget.spec as {
        selector: { matchLabels: Record<string, string> };
        minAvailable?: number;
        maxUnavailable?: number;
      };
      const covered = [serve, acks].filter((deployment) =>
        isSubset(spec.selector.matchLabels, shape(deployment).spec.template.metadata.labels),
      );
      expect(covered, budget.metadata.name).toHaveLength(1);
      const replicas = shape(covered[0] as Manifest).spec.replicas;
      if (spec.minAvailable !== undefined) expect(spec.minAvailable).toBeLessThan(replicas);
      else expect(spec.maxUnavailable).toBeGreaterThanOrEqual(1);
    }
  });
});

describe('Dockerfile and engines', () => {
  const dockerfile = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');

  it('builds on the current LTS (Node 24) and runs as a numeric non-root user', () => {
    const bases = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((match) => match[1]);
    expect(bases.length).toBeGreaterThan(0);
    for (const base of bases) expect(base).toMatch(/^node:24[-.]/);
    expect(dockerfile).toMatch(/^USER\s+[1-9][0-9]*(:[0-9]+)?\s*$/m);
  });

  it('ships the mappings at /app/mappings and defaults to the config path the Deployments mount', () => {
    expect(dockerfile).toMatch(/^WORKDIR \/app$/m);
    expect(dockerfile).toMatch(/^COPY mappings \.\/mappings$/m);
    const configPath = argAfter(container(serve).args, '--config');
    expect(dockerfile).toContain(`CMD ["serve", "--config", "${configPath}"]`);
    expect(dockerfile).toMatch(/^ENTRYPOINT \["node", "bin\/rossum-sftp-bridge"\]$/m);
  });

  it('package.json engines still admits the Node 20 that CI tests', () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { engines: { node: string } };
    expect(pkg.engines.node).toBe('>=20.19');
  });
});

function mebibytes(quantity: string): number {
  const match = /^(\d+)(Mi|Gi)$/.exec(quantity);
  if (!match) throw new Error(`memory quantity ${quantity}: use Mi or Gi`);
  return Number(match[1]) * (match[2] === 'Gi' ? 1024 : 1);
}

function isSubset(subset: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(subset).every(([key, value]) => labels[key] === value);
}
