import { createHash } from 'node:crypto';
import type { Ledger } from '../ledger/index.ts';
import type { PreparedExport } from './prepare.ts';

/**
 * For a mapping that reads `{seq}`: takes this content's number from the ledger (the same number a
 * re-delivery of it got, or the counter's next) and renders the file that is uploaded with it.
 * The idempotency key was made with the number pinned, so it names the content, not the number.
 */
type Numberable = Pick<PreparedExport, 'sequence' | 'idempotencyKey' | 'renderedAt' | 'renderAt' | 'file' | 'sha256'>;

export async function numberExport<P extends Numberable>(
  prepared: P,
  ledger: Ledger,
): Promise<P & { sequenceNumber: number | null }> {
  const sequence = prepared.sequence;
  if (!sequence) return { ...prepared, sequenceNumber: null };
  const number = await ledger.allocateSequence({
    counter: sequence.counter,
    key: prepared.idempotencyKey,
    start: sequence.start,
  });
  const file = sequence.render(number, new Date(prepared.renderedAt));
  const { renderAt: _placeholder, ...rest } = prepared;
  return {
    ...(rest as P),
    file,
    sha256: createHash('sha256').update(file.bytes).digest('hex'),
    sequenceNumber: number,
    ...(prepared.renderAt ? { renderAt: (at: Date) => sequence.render(number, at) } : {}),
  };
}
