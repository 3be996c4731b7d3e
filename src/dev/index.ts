export { startSshd, ensurePasswordUser, freePort, type StartSshdOptions, type SshdInstance, type PasswordUser } from './sshd.ts';
