import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parser } from '@prometheus-io/lezer-promql';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from '../support/bridge.ts';

export const kubernetesDir = join(repoRoot, 'deploy/kubernetes');

export interface Manifest {
  file: string;
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

/** Every document of every YAML file in deploy/kubernetes (parse errors fail with file and line). */
export function loadManifests(): Manifest[] {
  const manifests: Manifest[] = [];
  for (const file of readdirSync(kubernetesDir)
    .filter((name) => /\.ya?ml$/.test(name))
    .sort()) {
    for (const document of parseAllDocuments(readFileSync(join(kubernetesDir, file), 'utf8'))) {
      if (document.errors.length > 0)
        throw new Error(`${file}: ${document.errors.map((error) => error.message).join('; ')}`);
      const value = document.toJS() as Manifest | null;
      if (value) manifests.push({ ...value, file });
    }
  }
  return manifests;
}

export function only(manifests: Manifest[], kind: string, name: string): Manifest {
  const found = manifests.filter((manifest) => manifest.kind === kind && manifest.metadata.name === name);
  if (found.length !== 1) throw new Error(`expected one ${kind} ${name} in deploy/kubernetes, found ${found.length}`);
  return found[0] as Manifest;
}

/** The manifest as the Kubernetes model takes it (without our `file` bookkeeping). */
export function withoutFile(manifest: Manifest): Record<string, unknown> {
  const { file: _file, ...rest } = manifest;
  return rest;
}

export interface PromqlCheck {
  /** Text of each syntax error node, empty when the expression parses. */
  errors: string[];
  /** Metric names of every vector selector. */
  metricNames: string[];
}

export function parsePromql(expression: string): PromqlCheck {
  const errors: string[] = [];
  const metricNames: string[] = [];
  parser.parse(expression).iterate({
    enter(node) {
      if (node.type.isError)
        errors.push(`error at ${node.from}: "${expression.slice(Math.max(0, node.from - 10), node.to + 10)}"`);
      if (node.name === 'Identifier' && node.node.parent?.name === 'VectorSelector')
        metricNames.push(expression.slice(node.from, node.to));
    },
  });
  return { errors, metricNames };
}

/**
 * Metric names a Prometheus scrape of this exposition text would store: every sample's name, and for
 * each declared histogram/summary its `_bucket`, `_sum`, `_count` series even before a first sample.
 */
export function exposedMetricNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const line of exposition.split('\n')) {
    const typed = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (typed) {
      const [, name, type] = typed as unknown as [string, string, string];
      if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
      else if (type === 'summary') for (const suffix of ['', '_sum', '_count']) names.add(name + suffix);
      else names.add(name);
      continue;
    }
    const sample = /^([A-Za-z_:][A-Za-z0-9_:]*)[{ ]/.exec(line);
    if (sample) names.add(sample[1] as string);
  }
  return names;
}
