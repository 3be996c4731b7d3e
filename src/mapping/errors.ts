import { BridgeError } from '../errors.ts';

export type MappingErrorCode =
  | 'MAPPING_REQUIRED_FIELD'
  | 'MAPPING_INVALID_NUMBER'
  | 'MAPPING_INVALID_DATE'
  | 'MAPPING_UNMAPPED_VALUE'
  | 'MAPPING_UNENCODABLE'
  | 'MAPPING_VALUE_TOO_LONG'
  | 'MAPPING_INVALID_XML_CHAR'
  | 'MAPPING_LINE_BREAK'
  | 'MAPPING_NO_ROWS'
  | 'MAPPING_CALC'
  | 'MAPPING_INVALID'
  | 'MAPPING_RENDER_FAILED';

/** Rendering problems are permanent: the same annotation renders the same way until someone fixes it. */
export function mappingError(
  code: MappingErrorCode,
  message: string,
  datapointId?: number,
  cause?: unknown,
): BridgeError {
  return new BridgeError(code, message, {
    permanent: true,
    ...(datapointId === undefined ? {} : { location: { datapointId } }),
    ...(cause === undefined ? {} : { cause }),
  });
}

/** A character as people can read it in a message: `"ť" (U+0165)`. */
export function describeChar(ch: string): string {
  const code = ch.codePointAt(0) ?? 0;
  const hex = `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
  const names: Record<number, string> = {
    0: 'NUL',
    9: 'tab',
    10: 'line feed',
    11: 'vertical tab',
    12: 'form feed',
    13: 'carriage return',
    160: 'no-break space',
  };
  const name = names[code];
  if (name) return `${name} (${hex})`;
  return code < 0x20 || (code >= 0xd800 && code <= 0xdfff) || code === 0xfffe || code === 0xffff
    ? `control character ${hex}`
    : `"${ch}" (${hex})`;
}
