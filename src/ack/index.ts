export {
  acksConfigSchema,
  mappingAckSchema,
  holdConfigSchema,
  type AcksConfig,
  type AckLimits,
  type MappingAckConfig,
  type HoldConfig,
} from './config.ts';
export { AckService, type AckServiceOptions, type PassReport } from './service.ts';
export type { CredentialsState } from './outcome-delivery.ts';
export { AckParseError, createConvention, type AckConvention, type ParsedAckEntry } from './conventions.ts';
export { ExportHold, HOLD_CEILING_MS, type ExportHoldOptions, type HeldAnswer } from './hold.ts';
