export { consoleConfigSchema, consoleUserSchema, type ConsoleConfig, type ConsoleRole } from './config.ts';
export { consolePlugin, type ConsoleOptions } from './plugin.ts';
export { hashPassword, verifyPassword } from './passwords.ts';
