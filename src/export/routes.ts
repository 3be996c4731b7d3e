import { z } from 'zod';
import { BridgeError } from '../errors.ts';
import type { DocumentMetadata } from '../annotation/index.ts';

export const routeSchema = z
  .strictObject({
    queues: z
      .array(z.number().int().positive())
      .optional()
      .describe('Rossum queue ids this route serves; omit for the fallback route used when no other matches'),
    mapping: z.string().min(1).describe('Mapping file name in the mappings folder, without `.yaml`'),
    target: z.string().min(1).describe('Name of a target under `targets`'),
    values: z
      .record(z.string(), z.string())
      .default({})
      .describe('Route values a mapping may read (e.g. company code)'),
  })
  .describe('Which mapping and target an export uses');

export type Route = z.infer<typeof routeSchema>;

export interface ResolvedRoute {
  mapping: string;
  target: string;
  values: Record<string, string>;
  /** Why this route was chosen, for logs and messages. */
  reason: string;
}

/**
 * The hook's `settings.mapping` / `settings.target` win (one hook per customer); otherwise the first
 * route listing the annotation's queue; otherwise the fallback route without `queues`.
 */
export function resolveRoute(routes: readonly Route[], meta: DocumentMetadata): ResolvedRoute {
  const settings = meta.settings;
  const settingMapping = typeof settings.mapping === 'string' ? settings.mapping : undefined;
  const settingTarget = typeof settings.target === 'string' ? settings.target : undefined;
  const byQueue =
    meta.queueId === null ? undefined : routes.find((route) => route.queues?.includes(meta.queueId as number));
  const fallback = routes.find((route) => route.queues === undefined);
  const base = byQueue ?? fallback;

  if (settingMapping || settingTarget) {
    const mapping = settingMapping ?? base?.mapping;
    const target = settingTarget ?? base?.target;
    if (!mapping || !target) {
      throw new BridgeError(
        'ROUTE_INCOMPLETE',
        `The hook settings name ${settingMapping ? `mapping "${settingMapping}"` : `target "${settingTarget}"`} but no route supplies the ${settingMapping ? 'target' : 'mapping'}; add it to the hook settings or to a route in the bridge config`,
        { permanent: true },
      );
    }
    return { mapping, target, values: base?.values ?? {}, reason: 'hook settings' };
  }
  if (!base) {
    throw new BridgeError(
      'ROUTE_NOT_FOUND',
      `No route for queue ${meta.queueId ?? '(unknown)'}: add the queue id to a route in the bridge config, add a fallback route without "queues", or set settings.mapping and settings.target on the Rossum hook`,
      { permanent: true },
    );
  }
  return {
    mapping: base.mapping,
    target: base.target,
    values: base.values,
    reason: byQueue ? `queue ${meta.queueId}` : 'fallback route',
  };
}
