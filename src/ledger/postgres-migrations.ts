import { PARTIAL_INDEXES } from './shared-migrations.ts';

/** Applied in order inside one transaction under an advisory lock, so racing replicas migrate once. Append only. */
export const postgresMigrations: readonly string[] = [
  `
  CREATE TABLE exports (
    id BIGSERIAL PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    annotation_id BIGINT NOT NULL,
    mapping_name TEXT NOT NULL,
    mapping_hash TEXT NOT NULL,
    target TEXT NOT NULL,
    planned_path TEXT NOT NULL,
    remote_path TEXT,
    sha256 TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    status TEXT NOT NULL,
    error_code TEXT,
    error TEXT,
    reply TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    uploaded_at BIGINT
  );
  CREATE INDEX exports_annotation ON exports (annotation_id);
  CREATE INDEX exports_status ON exports (status, created_at);
  CREATE INDEX exports_remote ON exports (target, remote_path);
  CREATE TABLE export_requests (
    export_id BIGINT NOT NULL REFERENCES exports (id),
    request_id TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (export_id, request_id)
  );
  CREATE TABLE export_events (
    id BIGSERIAL PRIMARY KEY,
    export_id BIGINT NOT NULL REFERENCES exports (id),
    at BIGINT NOT NULL,
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
  ALTER TABLE exports ADD COLUMN ack_deadline_at BIGINT;
  ALTER TABLE exports ADD COLUMN ack_at BIGINT;
  ALTER TABLE exports ADD COLUMN ack_file TEXT;
  ALTER TABLE exports ADD COLUMN erp_reference TEXT;
  ALTER TABLE exports ADD COLUMN hold_until BIGINT;
  ALTER TABLE exports ADD COLUMN hold_state TEXT;
  CREATE INDEX exports_remote_name ON exports (target, remote_name);
  CREATE INDEX exports_remote_stem ON exports (target, remote_stem);
  CREATE INDEX exports_document_ref ON exports (target, document_ref);
  CREATE INDEX exports_ack_deadline ON exports (ack_state, ack_deadline_at);
  CREATE INDEX exports_ack_adopt ON exports (mapping_name, status, ack_state);
  CREATE TABLE ack_files (
    id BIGSERIAL PRIMARY KEY,
    source TEXT NOT NULL,
    file_name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    convention TEXT NOT NULL,
    disposition TEXT NOT NULL,
    error TEXT,
    received_at BIGINT NOT NULL,
    archived_to TEXT,
    archived_at BIGINT,
    UNIQUE (source, file_name, sha256)
  );
  CREATE TABLE ack_outcomes (
    id BIGSERIAL PRIMARY KEY,
    export_id BIGINT NOT NULL REFERENCES exports (id),
    ack_file_id BIGINT REFERENCES ack_files (id),
    dedupe_key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    delivery TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_expires_at BIGINT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT,
    last_error TEXT
  );
  CREATE INDEX ack_outcomes_due ON ack_outcomes (delivery, next_attempt_at);
  CREATE INDEX ack_outcomes_export ON ack_outcomes (export_id, id);
  `,
  // 3: ack outcomes are read per ack file (each file's own outcomes after recording it).
  `CREATE INDEX ack_outcomes_file ON ack_outcomes (ack_file_id);`,
  // 4: the same SQL in both dialects.
  PARTIAL_INDEXES,
];
