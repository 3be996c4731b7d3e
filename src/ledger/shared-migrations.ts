/** Migrations whose SQL is the same for SQLite and PostgreSQL, written once so the dialects cannot drift. */

/**
 * Index only the rows a lookup can match. A new claim has no remote name yet and no ack state, so it
 * no longer writes five index pages; nothing looked exports up by remote_path.
 */
export const PARTIAL_INDEXES = `
  DROP INDEX exports_remote;
  DROP INDEX exports_remote_name;
  CREATE INDEX exports_remote_name ON exports (target, remote_name) WHERE remote_name IS NOT NULL;
  DROP INDEX exports_remote_stem;
  CREATE INDEX exports_remote_stem ON exports (target, remote_stem) WHERE remote_stem IS NOT NULL;
  DROP INDEX exports_ack_deadline;
  CREATE INDEX exports_ack_deadline ON exports (ack_deadline_at) WHERE ack_state = 'awaiting_ack';
  DROP INDEX exports_ack_adopt;
  CREATE INDEX exports_ack_adopt ON exports (mapping_name, uploaded_at) WHERE status = 'uploaded' AND ack_state IS NULL;
  `;
