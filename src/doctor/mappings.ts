import { formatDiagnostic } from '../config/index.ts';
import { describeError } from '../errors.ts';
import { checkMappingFile, mappingFiles } from '../mapping/index.ts';
import type { CheckResult } from './report.ts';

/** What `check` says about the mappings folder: each file's problems with file:line:column. */
export function checkMappings(dir: string): CheckResult[] {
  let files: string[];
  try {
    files = mappingFiles(dir);
  } catch (error) {
    return [
      {
        area: 'mappings',
        subject: dir,
        check: 'check',
        status: 'fail',
        detail: describeError(error),
        fix: 'set mappingsDir to the folder with the mapping files',
      },
    ];
  }
  const results: CheckResult[] = [];
  for (const file of files) {
    const diagnostics = checkMappingFile(file);
    if (diagnostics.length === 0) continue;
    const shown = diagnostics.slice(0, 3).map((diagnostic) => formatDiagnostic(diagnostic));
    if (diagnostics.length > 3) shown.push(`… ${diagnostics.length - 3} more`);
    results.push({
      area: 'mappings',
      subject: file,
      check: 'check',
      status: 'fail',
      detail: shown.join('; '),
      fix: `rossum-sftp-bridge check ${file} lists every problem; fix them in the file`,
    });
  }
  if (results.length === 0) {
    results.push({
      area: 'mappings',
      subject: dir,
      check: 'check',
      status: 'ok',
      detail: `${files.length} mapping file(s), no problems`,
    });
  }
  return results;
}
