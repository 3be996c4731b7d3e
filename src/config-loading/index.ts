/**
 * Reading YAML files with source positions, so that every config or mapping problem is reported as
 * `file:line:column: key: message`. The lowest layer: it knows YAML and zod, not what the files mean.
 */
export {
  ConfigFileError,
  formatDiagnostic,
  levenshtein,
  loadYamlFile,
  parseYamlSource,
  type Diagnostic,
  type LoadedYaml,
  type YamlLoadOptions,
} from './yaml.ts';
export { formatPath } from './paths.ts';
