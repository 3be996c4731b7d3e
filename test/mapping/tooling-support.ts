export { checkMappingFile, loadMappings } from '../../src/mapping/index.ts';
export { mappingJsonSchema as mappingJsonSchemaForTests } from '../../src/mapping/docs.ts';
