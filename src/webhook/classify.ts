import { hookEnvelopeSchema, parseExportPayload, viewAnnotation } from '../annotation/index.ts';
import { describeError } from '../errors.ts';
import { prepareOrRefuse, type ExportPreparation, type PrepareSettings } from '../export/index.ts';
import { parseJsonBody } from './body.ts';

/** What a signed webhook body turns into before anything is uploaded. */
export type ClassifiedDelivery =
  /** Not a hook payload we can read: 400 with the reason. */
  | { kind: 'invalid'; reason: string }
  /** Another event than annotation_content.export: 200 {}. */
  | { kind: 'ignored'; event: string; action: string }
  | ExportPreparation;

/** Turns a signed body into a ClassifiedDelivery: JSON, depth, envelope, payload schema, route, render. */
export type DeliveryClassifier = (raw: Buffer) => ClassifiedDelivery;

export function classifyDelivery(
  raw: Buffer,
  settings: PrepareSettings & { maxJsonDepth: number },
): ClassifiedDelivery {
  const parsed = parseJsonBody(raw, settings.maxJsonDepth);
  if (!parsed.ok) return { kind: 'invalid', reason: parsed.reason };
  const envelope = hookEnvelopeSchema.safeParse(parsed.value);
  if (!envelope.success)
    return { kind: 'invalid', reason: 'Not a Rossum hook payload: "event" and "action" must be strings' };
  const { event, action } = envelope.data;
  if (event !== 'annotation_content' || action !== 'export') return { kind: 'ignored', event, action };
  let payload: ReturnType<typeof parseExportPayload>;
  try {
    payload = parseExportPayload(parsed.value);
  } catch (error) {
    return { kind: 'invalid', reason: describeError(error) };
  }
  return prepareOrRefuse(payload, viewAnnotation(payload), settings);
}

/**
 * Bound to the bridge's mappings, routes and targets. It runs on the event-loop thread: parsing and
 * rendering on a worker thread was tried, and on 2 cores the hand-over cost more CPU than it freed
 * (−10 % exports/s).
 */
export function createDeliveryClassifier(settings: PrepareSettings & { maxJsonDepth: number }): DeliveryClassifier {
  return (raw) => classifyDelivery(raw, settings);
}
