export { createIntake, intakeBody, type BodyIntake, type Intake } from './intake.ts';
export { buildWebhookServer, WEBHOOK_PATH, HELD_PATH, type ReadinessReport, type WebhookServer, type WebhookServerOptions } from './server.ts';
export { verifySignature, type SignatureCheck, type SignatureSettings } from './signature.ts';
