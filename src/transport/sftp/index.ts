export { SftpTarget } from './target.ts';
export type { SftpPoolStats } from './context.ts';
