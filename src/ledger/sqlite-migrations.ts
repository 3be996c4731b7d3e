/** Applied in order; `PRAGMA user_version` records how many ran. Append only, never edit a shipped one. */
export const sqliteMigrations: readonly string[] = [
  `
  CREATE TABLE exports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    annotation_id INTEGER NOT NULL,
    mapping_name TEXT NOT NULL,
    mapping_hash TEXT NOT NULL,
    target TEXT NOT NULL,
    planned_path TEXT NOT NULL,
    remote_path TEXT,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    status TEXT NOT NULL,
    error_code TEXT,
    error TEXT,
    reply TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    uploaded_at INTEGER
  );
  CREATE INDEX exports_annotation ON exports (annotation_id);
  CREATE INDEX exports_status ON exports (status, created_at);
  CREATE INDEX exports_remote ON exports (target, remote_path);
  CREATE TABLE export_requests (
    export_id INTEGER NOT NULL REFERENCES exports (id),
    request_id TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (export_id, request_id)
  );
  CREATE TABLE export_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    export_id INTEGER NOT NULL REFERENCES exports (id),
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
  );
  CREATE INDEX export_events_export ON export_events (export_id, id);
  `,
];
