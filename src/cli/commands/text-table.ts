/** Plain-text tables for the CLI (columns padded, cells over 60 characters cut). */

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((header, i) =>
    Math.min(60, Math.max(header.length, ...rows.map((row) => (row[i] ?? '').length))),
  );
  const line = (cells: string[]): string =>
    cells
      .map((cell, i) =>
        cell.length > (widths[i] as number)
          ? `${cell.slice(0, (widths[i] as number) - 1)}…`
          : cell.padEnd(widths[i] as number),
      )
      .join('  ')
      .trimEnd();
  return `${[line(headers), ...rows.map(line)].join('\n')}\n`;
}

export function time(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
}
