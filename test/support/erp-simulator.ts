import {
  chownSync,
  copyFileSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
  openSync,
  writeSync,
  closeSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import iconv from 'iconv-lite';

export const erpFixturesDir = fileURLToPath(new URL('../fixtures/erp/', import.meta.url));

export interface CsvAckRow {
  file: string;
  status: 'OK' | 'ERROR' | string;
  code?: string;
  message?: string;
}

/**
 * A legacy ERP's outbound side: writes acknowledgement files into a folder the way ERPs do —
 * companion .ok/.err files (windows-1252, CRLF), namespaced XML acks, batch CSV acks — and, when
 * asked, slowly (growing in chunks) or under a temporary name first.
 */
export class ErpSimulator {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  /** Copies a file from test/fixtures/erp, optionally under another name. */
  fixture(name: string, as = name): string {
    const path = join(this.dir, as);
    copyFileSync(join(erpFixturesDir, name), path);
    this.ownLikeTheFolder(path);
    return as;
  }

  ok(stem: string): string {
    return this.write(`${stem}.ok`, Buffer.alloc(0));
  }

  err(stem: string, lines: string[], encoding = 'windows-1252'): string {
    return this.write(`${stem}.err`, iconv.encode(lines.map((line) => `${line}\r\n`).join(''), encoding));
  }

  xml(
    name: string,
    ack: {
      sourceFile: string;
      status: string;
      errors?: Array<{ code: string; text: string }>;
      documentNumber?: string;
    },
  ): string {
    const errors = ack.errors?.length
      ? `  <Errors>\n${ack.errors.map((e) => `    <Error code="${e.code}">${escapeXml(e.text)}</Error>`).join('\n')}\n  </Errors>\n`
      : '';
    const documentNumber = ack.documentNumber ? `  <DocumentNumber>${ack.documentNumber}</DocumentNumber>\n` : '';
    const text = `<?xml version="1.0" encoding="UTF-8"?>\n<Acknowledgement xmlns="urn:example:erp:ack:1">\n  <SourceFile>${escapeXml(ack.sourceFile)}</SourceFile>\n  <Status>${ack.status}</Status>\n${errors}${documentNumber}</Acknowledgement>\n`;
    return this.write(name, Buffer.from(text, 'utf8'));
  }

  csv(name: string, rows: CsvAckRow[], encoding = 'windows-1252'): string {
    const lines = [
      'file;status;code;message',
      ...rows.map((row) => [row.file, row.status, row.code ?? '', row.message ?? ''].join(';')),
    ];
    return this.write(name, iconv.encode(lines.map((line) => `${line}\r\n`).join(''), encoding));
  }

  /** Any bytes under any name (for unreadable or unmatched files). */
  raw(name: string, bytes: Buffer | string): string {
    return this.write(name, typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes);
  }

  /** An error file written slowly under its final name (no temp name), as ERPs that stream their output do. */
  errSlowly(stem: string, lines: string[], chunks: number, delayMs: number, encoding = 'windows-1252'): Promise<void> {
    return this.writeSlowly(
      `${stem}.err`,
      iconv.encode(lines.map((line) => `${line}\r\n`).join(''), encoding),
      chunks,
      delayMs,
    );
  }

  /** Writes the file in `chunks` pieces, `delayMs` apart, as a slow ERP job does; resolves when complete. */
  async writeSlowly(name: string, bytes: Buffer, chunks: number, delayMs: number): Promise<void> {
    const path = join(this.dir, name);
    const fd = openSync(path, 'w');
    this.ownLikeTheFolder(path);
    try {
      const size = Math.ceil(bytes.length / chunks);
      for (let offset = 0; offset < bytes.length; offset += size) {
        writeSync(fd, bytes, offset, Math.min(size, bytes.length - offset));
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    } finally {
      closeSync(fd);
    }
  }

  read(name: string): Buffer {
    return readFileSync(join(this.dir, name));
  }

  private write(name: string, bytes: Buffer): string {
    // Written under a temporary dot-name, then renamed: what a careful ERP does.
    const temp = join(this.dir, `.${name}.tmp`);
    writeFileSync(temp, bytes);
    this.ownLikeTheFolder(temp);
    renameSync(temp, join(this.dir, name));
    return name;
  }

  private ownLikeTheFolder(path: string): void {
    const folder = statSync(this.dir);
    chownSync(path, folder.uid, folder.gid);
  }
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
