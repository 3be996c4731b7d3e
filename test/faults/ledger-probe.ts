import Database from 'better-sqlite3';

export interface ExportRow {
  id: number;
  annotation_id: number;
  status: string;
  remote_path: string | null;
  ack_state: string | null;
  document_path: string | null;
  document_uploaded_at: number | null;
}
export interface AckFileRow {
  file_name: string;
  disposition: string;
  received_at: number;
  archived_to: string | null;
}
export interface OutcomeRow {
  export_id: number;
  kind: string;
  delivery: string;
  last_error: string | null;
}

/**
 * Read-only questions to the ledger the two bridge processes share, asked from outside as an operator's
 * `sqlite3` would: each opens its own read-only connection, so the processes under test see no difference.
 */
export class LedgerProbe {
  constructor(private readonly ledgerPath: string) {}

  /** Exports claimed for upload right now, by any process or by the one with this pid. */
  uploading(ownerPid?: number): number {
    const owner = ownerPid === undefined ? '%' : `%:${ownerPid}:%`;
    return this.read(
      (db) =>
        (
          db
            .prepare("SELECT count(*) AS n FROM exports WHERE status = 'uploading' AND lease_owner LIKE ?")
            .get(owner) as { n: number }
        ).n,
    );
  }

  /** How many of these ack files (by name) the acks process has recorded. */
  ackFilesRecorded(names: ReadonlySet<string>): number {
    const rows = this.read((db) => db.prepare('SELECT file_name FROM ack_files').all() as Array<{ file_name: string }>);
    return rows.filter((row) => names.has(row.file_name.split('/').at(-1) ?? row.file_name)).length;
  }

  /** What the ack loop still has to do: exports awaiting an answer or a deadline, outcomes not yet told, files recorded. */
  ackLoopBacklog(): { awaiting: number; pendingOutcomes: number; ackFiles: number } {
    return this.read((db) => ({
      awaiting: (
        db
          .prepare(
            `SELECT count(*) AS n FROM exports WHERE status = 'uploaded' AND (ack_state IS NULL OR ack_state = 'awaiting_ack')`,
          )
          .get() as { n: number }
      ).n,
      pendingOutcomes: (
        db.prepare(`SELECT count(*) AS n FROM ack_outcomes WHERE delivery = 'pending'`).get() as { n: number }
      ).n,
      ackFiles: (db.prepare('SELECT count(*) AS n FROM ack_files').get() as { n: number }).n,
    }));
  }

  exports(): ExportRow[] {
    return this.read(
      (db) =>
        db
          .prepare(
            'SELECT id, annotation_id, status, remote_path, ack_state, document_path, document_uploaded_at FROM exports',
          )
          .all() as ExportRow[],
    );
  }

  ackFiles(): AckFileRow[] {
    return this.read(
      (db) =>
        db.prepare('SELECT file_name, disposition, received_at, archived_to FROM ack_files').all() as AckFileRow[],
    );
  }

  outcomes(): OutcomeRow[] {
    return this.read(
      (db) =>
        db.prepare('SELECT export_id, kind, delivery, last_error FROM ack_outcomes ORDER BY id').all() as OutcomeRow[],
    );
  }

  private read<T>(question: (db: Database.Database) => T): T {
    const db = new Database(this.ledgerPath, { readonly: true, fileMustExist: true });
    try {
      return question(db);
    } finally {
      db.close();
    }
  }
}
