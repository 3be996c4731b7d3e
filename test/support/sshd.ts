export { startSshd, ensurePasswordUser, freePort, type SshdInstance, type StartSshdOptions, type PasswordUser } from '../../src/dev/sshd.ts';
