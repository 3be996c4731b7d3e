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
];
