/** The HTTP edge Rossum calls: signature, body limits, classification of a delivery, the server itself. */
export { firstInvalidUtf8, parseJsonBody } from './body.ts';
export {
  classifyDelivery,
  createDeliveryClassifier,
  type ClassifiedDelivery,
  type DeliveryClassifier,
} from './classify.ts';
export {
  buildWebhookServer,
  HELD_PATH,
  WEBHOOK_PATH,
  type ReadinessReport,
  type WebhookLimits,
  type WebhookServer,
  type WebhookServerOptions,
} from './server.ts';
export { verifySignature, type SignatureCheck, type SignatureSettings } from './signature.ts';
