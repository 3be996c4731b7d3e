import type Database from 'better-sqlite3';

export const SEED_MAPPINGS = ['generic-xml', 'datev-csv', 'sap-idoc'] as const;
export const SEED_TARGETS = ['erp', 'archive'] as const;

/** [state column values, share of rows]: most exports end accepted, as in production. */
const MIX: ReadonlyArray<{ status: string; ackState: string | null; share: number }> = [
  { status: 'uploaded', ackState: 'accepted', share: 0.6 },
  { status: 'uploaded', ackState: 'awaiting_ack', share: 0.15 },
  { status: 'uploaded', ackState: null, share: 0.1 },
  { status: 'uploaded', ackState: 'rejected', share: 0.05 },
  { status: 'failed', ackState: null, share: 0.05 },
  { status: 'uploaded', ackState: 'ack_timeout', share: 0.03 },
  { status: 'retryable', ackState: null, share: 0.02 },
];

/** Deterministic pseudo-random numbers, so every run seeds the same ledger. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/**
 * Writes `count` exports straight into a SQLite ledger file (one transaction), with their events and,
 * for rejected and timed-out ones, an outcome for Rossum. Export i is created at `start + i × stepMs`.
 */
export function seedExports(
  db: Database.Database,
  count: number,
  options: { start: number; stepMs: number; seed?: number },
): void {
  const next = random(options.seed ?? 7);
  const insertExport = db.prepare(
    `INSERT INTO exports (idempotency_key, annotation_id, mapping_name, mapping_hash, target, planned_path, remote_path, remote_name, remote_stem, sha256, bytes,
       status, error_code, error, attempts, created_at, updated_at, uploaded_at, document_ref, rossum_base_url, ack_state, ack_at)
     VALUES (?, ?, ?, 'seedhash', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, 'https://example.rossum.app', ?, ?)`,
  );
  const insertEvent = db.prepare('INSERT INTO export_events (export_id, at, kind, detail) VALUES (?, ?, ?, ?)');
  const insertOutcome = db.prepare(
    `INSERT INTO ack_outcomes (export_id, dedupe_key, kind, detail, delivery, attempts, next_attempt_at, created_at, delivered_at)
     VALUES (?, ?, ?, '{"messages":[]}', ?, 1, ?, ?, ?)`,
  );
  db.transaction(() => {
    for (let i = 0; i < count; i++) {
      const createdAt = options.start + i * options.stepMs;
      const roll = next();
      let cumulative = 0;
      const mix =
        MIX.find((entry) => {
          cumulative += entry.share;
          return roll < cumulative;
        }) ?? (MIX[0] as (typeof MIX)[number]);
      const mapping = SEED_MAPPINGS[i % SEED_MAPPINGS.length] as string;
      const target = SEED_TARGETS[Math.floor(next() * SEED_TARGETS.length)] as string;
      const name = `INV-${100000 + i}.xml`;
      const uploaded = mix.status === 'uploaded';
      const ackAt =
        mix.ackState === 'accepted' || mix.ackState === 'rejected'
          ? createdAt + 30_000 + Math.floor(next() * 600_000)
          : null;
      const errorCode =
        mix.status === 'failed'
          ? next() < 0.5
            ? 'MAPPING_REQUIRED_FIELD'
            : 'TARGET_EXISTS'
          : mix.status === 'retryable'
            ? 'CONNECT_TIMEOUT'
            : null;
      const result = insertExport.run(
        `seed-${i}`,
        2_000_000 + i,
        mapping,
        target,
        name,
        uploaded ? name : null,
        uploaded ? name : null,
        uploaded ? name.replace(/\.xml$/, '') : null,
        'ab'.repeat(32),
        1200 + (i % 500),
        mix.status,
        errorCode,
        errorCode ? `seeded ${errorCode}` : null,
        createdAt,
        ackAt ?? createdAt,
        uploaded ? createdAt + 200 : null,
        `INV-${100000 + i}`,
        mix.ackState,
        ackAt,
      );
      const id = Number(result.lastInsertRowid);
      insertEvent.run(id, createdAt, 'claimed', '{}');
      if (uploaded) insertEvent.run(id, createdAt + 200, 'uploaded', JSON.stringify({ remotePath: name }));
      if (mix.ackState === 'rejected' || mix.ackState === 'ack_timeout') {
        const delivered = next() < 0.7;
        insertOutcome.run(
          id,
          `seed:${id}`,
          mix.ackState === 'rejected' ? 'rejected' : 'timeout',
          delivered ? 'delivered' : 'pending',
          createdAt,
          createdAt,
          delivered ? createdAt + 1000 : null,
        );
      }
    }
  })();
}
