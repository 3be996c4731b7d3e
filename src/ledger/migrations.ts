import { postgresDialect, sqliteDialect } from './dialects.ts';
import type { Dialect } from './driver.ts';

/**
 * The schema, written once and rendered per dialect: `t.id` is the auto-numbered key, `t.big` a
 * 64-bit integer (epoch ms, ids). Applied in order, each version once; append only, never edit a
 * shipped one (a test compares the rendering with the SQL that shipped).
 */
export function migrationsFor({ ddl: t }: Dialect): readonly string[] {
  return [
    `
  CREATE TABLE exports (
    id ${t.id},
    idempotency_key TEXT NOT NULL UNIQUE,
    annotation_id ${t.big} NOT NULL,
    mapping_name TEXT NOT NULL,
    mapping_hash TEXT NOT NULL,
    target TEXT NOT NULL,
    planned_path TEXT NOT NULL,
    remote_path TEXT,
    sha256 TEXT NOT NULL,
    bytes ${t.big} NOT NULL,
    status TEXT NOT NULL,
    error_code TEXT,
    error TEXT,
    reply TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires_at ${t.big},
    created_at ${t.big} NOT NULL,
    updated_at ${t.big} NOT NULL,
    uploaded_at ${t.big}
  );
  CREATE INDEX exports_annotation ON exports (annotation_id);
  CREATE INDEX exports_status ON exports (status, created_at);
  CREATE INDEX exports_remote ON exports (target, remote_path);
  CREATE TABLE export_requests (
    export_id ${t.big} NOT NULL REFERENCES exports (id),
    request_id TEXT NOT NULL,
    received_at ${t.big} NOT NULL,
    PRIMARY KEY (export_id, request_id)
  );
  CREATE TABLE export_events (
    id ${t.id},
    export_id ${t.big} NOT NULL REFERENCES exports (id),
    at ${t.big} NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
  );
  CREATE INDEX export_events_export ON export_events (export_id, id);
  `,
    // 2: acknowledgements — ack state per export, ack files seen, and the outbox of what Rossum must hear.
    `
  ALTER TABLE exports ADD COLUMN remote_name TEXT;
  ALTER TABLE exports ADD COLUMN remote_stem TEXT;
  ALTER TABLE exports ADD COLUMN document_ref TEXT;
  ALTER TABLE exports ADD COLUMN rossum_base_url TEXT;
  ALTER TABLE exports ADD COLUMN ack_state TEXT;
  ALTER TABLE exports ADD COLUMN ack_deadline_at ${t.big};
  ALTER TABLE exports ADD COLUMN ack_at ${t.big};
  ALTER TABLE exports ADD COLUMN ack_file TEXT;
  ALTER TABLE exports ADD COLUMN erp_reference TEXT;
  ALTER TABLE exports ADD COLUMN hold_until ${t.big};
  ALTER TABLE exports ADD COLUMN hold_state TEXT;
  CREATE INDEX exports_remote_name ON exports (target, remote_name);
  CREATE INDEX exports_remote_stem ON exports (target, remote_stem);
  CREATE INDEX exports_document_ref ON exports (target, document_ref);
  CREATE INDEX exports_ack_deadline ON exports (ack_state, ack_deadline_at);
  CREATE INDEX exports_ack_adopt ON exports (mapping_name, status, ack_state);
  CREATE TABLE ack_files (
    id ${t.id},
    source TEXT NOT NULL,
    file_name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    convention TEXT NOT NULL,
    disposition TEXT NOT NULL,
    error TEXT,
    received_at ${t.big} NOT NULL,
    archived_to TEXT,
    archived_at ${t.big},
    UNIQUE (source, file_name, sha256)
  );
  CREATE TABLE ack_outcomes (
    id ${t.id},
    export_id ${t.big} NOT NULL REFERENCES exports (id),
    ack_file_id ${t.big} REFERENCES ack_files (id),
    dedupe_key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    delivery TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at ${t.big} NOT NULL,
    lease_owner TEXT,
    lease_expires_at ${t.big},
    created_at ${t.big} NOT NULL,
    delivered_at ${t.big},
    last_error TEXT
  );
  CREATE INDEX ack_outcomes_due ON ack_outcomes (delivery, next_attempt_at);
  CREATE INDEX ack_outcomes_export ON ack_outcomes (export_id, id);
  `,
    // 3: ack outcomes are read per ack file (each file's own outcomes after recording it).
    `CREATE INDEX ack_outcomes_file ON ack_outcomes (ack_file_id);`,
    // 4: partial indexes — only the rows a lookup can match. A new claim has no remote name yet and no
    // ack state, so it no longer writes five index pages; nothing looked exports up by remote_path.
    `
  DROP INDEX exports_remote;
  DROP INDEX exports_remote_name;
  CREATE INDEX exports_remote_name ON exports (target, remote_name) WHERE remote_name IS NOT NULL;
  DROP INDEX exports_remote_stem;
  CREATE INDEX exports_remote_stem ON exports (target, remote_stem) WHERE remote_stem IS NOT NULL;
  DROP INDEX exports_ack_deadline;
  CREATE INDEX exports_ack_deadline ON exports (ack_deadline_at) WHERE ack_state = 'awaiting_ack';
  DROP INDEX exports_ack_adopt;
  CREATE INDEX exports_ack_adopt ON exports (mapping_name, uploaded_at) WHERE status = 'uploaded' AND ack_state IS NULL;
  `,
    // 5: the operator console — newest-first keyset paging per filter, exact searches, ack latency, and who did what.
    `
  CREATE INDEX exports_console_recent ON exports (created_at, id);
  CREATE INDEX exports_console_state ON exports ((coalesce(ack_state, status)), created_at, id);
  CREATE INDEX exports_console_mapping ON exports (mapping_name, created_at, id);
  CREATE INDEX exports_console_target ON exports (target, created_at, id);
  CREATE INDEX exports_console_document ON exports (document_ref) WHERE document_ref IS NOT NULL;
  CREATE INDEX exports_console_file ON exports (remote_name) WHERE remote_name IS NOT NULL;
  CREATE INDEX exports_console_acked ON exports (ack_at, uploaded_at) WHERE ack_at IS NOT NULL;
  ALTER TABLE ack_files ADD COLUMN handled_at ${t.big};
  ALTER TABLE ack_files ADD COLUMN handled_by TEXT;
  CREATE INDEX ack_files_open ON ack_files (received_at) WHERE disposition <> 'matched' AND handled_at IS NULL;
  CREATE TABLE console_actions (
    id ${t.id},
    at ${t.big} NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    export_id ${t.big} REFERENCES exports (id),
    ack_file_id ${t.big} REFERENCES ack_files (id),
    detail TEXT NOT NULL DEFAULT '{}'
  );
  CREATE INDEX console_actions_export ON console_actions (export_id) WHERE export_id IS NOT NULL;
  `,
    // 6: files the way ERPs take them — sequence numbers allocated per counter (one number per export
    // content, reused by its re-deliveries), and the original document uploaded beside the data file.
    `
  CREATE TABLE sequence_counters (
    name TEXT PRIMARY KEY,
    next_value ${t.big} NOT NULL
  );
  CREATE TABLE sequence_numbers (
    counter TEXT NOT NULL,
    allocation_key TEXT NOT NULL,
    value ${t.big} NOT NULL,
    allocated_at ${t.big} NOT NULL,
    PRIMARY KEY (counter, allocation_key),
    UNIQUE (counter, value)
  );
  ALTER TABLE exports ADD COLUMN sequence_number ${t.big};
  ALTER TABLE exports ADD COLUMN document_path TEXT;
  ALTER TABLE exports ADD COLUMN document_sha256 TEXT;
  ALTER TABLE exports ADD COLUMN document_bytes ${t.big};
  ALTER TABLE exports ADD COLUMN document_uploaded_at ${t.big};
    `,
    // 7: telling Rossum — when we last tried, and what Rossum ended up with ("status failed_export",
    // "left alone: annotation was in to_review", "gone: ..."), for `status` and the operators; and whether a
    // note was ever sent, so only a retry that may have posted one looks for it (Rossum pages notes by 20).
    `
  ALTER TABLE ack_outcomes ADD COLUMN last_attempt_at ${t.big};
  ALTER TABLE ack_outcomes ADD COLUMN result TEXT;
  ALTER TABLE ack_outcomes ADD COLUMN note_attempted_at ${t.big};
  `,
    // 8: batches — documents collected per mapping × target and sent as one file. An entry is the document's
    // rendered share; when the batch is sent, each entry becomes an `exports` row (status uploaded, the batch's
    // file as its remote path), so acks, deadlines and Rossum's answers work per document as for single exports.
    `
  CREATE TABLE batches (
    id ${t.id},
    mapping_name TEXT NOT NULL,
    target TEXT NOT NULL,
    number ${t.big} NOT NULL,
    status TEXT NOT NULL,
    opened_at ${t.big} NOT NULL,
    closes_at ${t.big} NOT NULL,
    closed_at ${t.big},
    lease_owner TEXT,
    lease_expires_at ${t.big},
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at ${t.big},
    file_name TEXT,
    sha256 TEXT,
    bytes ${t.big},
    remote_path TEXT,
    sent_at ${t.big},
    error TEXT
  );
  CREATE UNIQUE INDEX batches_open ON batches (mapping_name, target) WHERE status = 'open';
  CREATE INDEX batches_due ON batches (closes_at) WHERE status <> 'sent';
  CREATE TABLE batch_entries (
    id ${t.id},
    batch_id ${t.big} NOT NULL REFERENCES batches (id),
    annotation_id ${t.big} NOT NULL,
    idempotency_key TEXT NOT NULL,
    mapping_hash TEXT NOT NULL,
    entry TEXT NOT NULL,
    document_ref TEXT,
    rossum_base_url TEXT,
    request_id TEXT NOT NULL,
    created_at ${t.big} NOT NULL,
    updated_at ${t.big} NOT NULL,
    replaced INTEGER NOT NULL DEFAULT 0,
    export_id ${t.big} REFERENCES exports (id),
    UNIQUE (batch_id, annotation_id)
  );
  CREATE INDEX batch_entries_key ON batch_entries (idempotency_key);
  ALTER TABLE exports ADD COLUMN batch_id ${t.big};
  CREATE INDEX exports_batch ON exports (batch_id) WHERE batch_id IS NOT NULL;
    `,
    // 9: what the console shows and retries — the rendered bytes of an export whose upload failed transiently
    // (kept only while it is retryable, so a retry uploads exactly the bytes whose sha256 the ledger recorded),
    // and the content of each ack file as it was read (its first bytes; content_bytes is the whole size).
    `
  CREATE TABLE export_payloads (
    export_id ${t.big} PRIMARY KEY REFERENCES exports (id),
    sha256 TEXT NOT NULL,
    content ${t.blob} NOT NULL,
    kept_at ${t.big} NOT NULL
  );
  ALTER TABLE ack_files ADD COLUMN content ${t.blob};
  ALTER TABLE ack_files ADD COLUMN content_bytes ${t.big};
  ALTER TABLE ack_files ADD COLUMN content_encoding TEXT;
  `,
  ];
}

export const sqliteMigrations = migrationsFor(sqliteDialect);
export const postgresMigrations = migrationsFor(postgresDialect);

/** Rows uploaded before the ack columns existed get the name and stem acks are matched on (run after migrating). */
export const UNNAMED_UPLOADS =
  'SELECT id, remote_path FROM exports WHERE remote_path IS NOT NULL AND remote_name IS NULL';
export const NAME_UPLOAD = 'UPDATE exports SET remote_name = ?, remote_stem = ? WHERE id = ?';
