/**
 * How a failure behaves towards Rossum: `permanent` is final (200 + `error`, annotation → `failed_export`),
 * `transient` is retried (503, Rossum calls again), `either` depends on the case (the entry says which).
 */
export type Retry = 'permanent' | 'transient' | 'either';

export interface CatalogueEntry {
  /** The folder that raises it (docs group the table by it). */
  area: 'payload' | 'config' | 'routing' | 'mapping' | 'transport' | 'ledger' | 'rossum' | 'acks' | 'export' | 'cli';
  retry: Retry;
  /** What happened, in the operator's words. */
  meaning: string;
  /** What the operator should do about it. */
  action: string;
}

/**
 * Every error code the bridge reports, in one place: `BridgeError` accepts only these codes (tsc checks it),
 * `npm run schema` renders them into docs/errors.md, and test/errors checks that every code thrown in src/ is here.
 */
export const ERROR_CATALOGUE = {
  PAYLOAD_INVALID: {
    area: 'payload',
    retry: 'permanent',
    meaning:
      'The export payload (or a payload file given to the CLI) is not the shape Rossum sends: a field is missing, has the wrong type, or a datapoint id repeats.',
    action:
      'Check the hook is an `annotation_content`/export hook with `payload.annotation` and `content` sideloaded; the message names the path.',
  },
  CONFIG_INVALID: {
    area: 'config',
    retry: 'permanent',
    meaning:
      'A config or mapping file (or a target built from it) does not parse or validate; every problem is listed as `file:line:column: key: message`.',
    action: 'Fix the file at the named position; `rossum-sftp-bridge check` lists all problems at once.',
  },
  ROUTE_NOT_FOUND: {
    area: 'routing',
    retry: 'permanent',
    meaning: "No route matches the annotation's queue and there is no fallback route.",
    action:
      'Add the queue id to a route, add a route without `queues`, or set `settings.mapping` and `settings.target` on the hook.',
  },
  ROUTE_INCOMPLETE: {
    area: 'routing',
    retry: 'permanent',
    meaning: 'The hook settings name a mapping or a target, but nothing supplies the other one.',
    action: 'Name both in the hook settings, or add a route that supplies the missing one.',
  },
  MAPPING_NOT_FOUND: {
    area: 'routing',
    retry: 'permanent',
    meaning: 'The route (or hook settings) chose a mapping that is not in the mappings folder.',
    action: 'Add the mapping file, or correct the name in the route or hook settings.',
  },
  TARGET_NOT_FOUND: {
    area: 'routing',
    retry: 'permanent',
    meaning: 'The route (or hook settings) chose a target that is not configured under `targets`.',
    action: 'Configure the target, or correct the name in the route or hook settings.',
  },
  MAPPING_REQUIRED_FIELD: {
    area: 'mapping',
    retry: 'permanent',
    meaning: 'A field the mapping needs is missing from the annotation or empty.',
    action: 'Fill in the named field in Rossum and export again (the message points at the datapoint).',
  },
  MAPPING_INVALID_NUMBER: {
    area: 'mapping',
    retry: 'permanent',
    meaning: 'A value the mapping formats or calculates with is not a number.',
    action: 'Correct the value in Rossum so it has a normalized amount.',
  },
  MAPPING_INVALID_DATE: {
    area: 'mapping',
    retry: 'permanent',
    meaning: 'A value the mapping formats as a date is not a date.',
    action: 'Correct the value in Rossum so it has a normalized date.',
  },
  MAPPING_UNMAPPED_VALUE: {
    area: 'mapping',
    retry: 'permanent',
    meaning: "A value is not listed in the mapping's value map (e.g. a currency or VAT code the ERP does not know).",
    action: 'Correct the value in Rossum, or add it to the map in the mapping file.',
  },
  MAPPING_UNENCODABLE: {
    area: 'mapping',
    retry: 'permanent',
    meaning: 'A character cannot be written in the output encoding and the mapping says `unencodable: error`.',
    action: 'Correct the value in Rossum, or set `unencodable: transliterate` or `replace` in the mapping.',
  },
  MAPPING_VALUE_TOO_LONG: {
    area: 'mapping',
    retry: 'permanent',
    meaning: 'A value is wider than its fixed-width field and the field does not truncate.',
    action: 'Shorten the value in Rossum, or set `truncate: true` on the field.',
  },
  MAPPING_INVALID_XML_CHAR: {
    area: 'mapping',
    retry: 'permanent',
    meaning: 'A value contains characters XML 1.0 does not allow.',
    action: 'Remove them in Rossum, or set `xml.invalid_chars` to drop or replace.',
  },
  MAPPING_LINE_BREAK: {
    area: 'mapping',
    retry: 'permanent',
    meaning: 'A value contains a line break where the format does not allow one.',
    action: 'Remove it in Rossum, or set `csv.line_breaks: strip` / `collapse_whitespace` on the field.',
  },
  MAPPING_NO_ROWS: {
    area: 'mapping',
    retry: 'permanent',
    meaning: 'The output needs at least one line item and the annotation has none.',
    action: 'Add the line items in Rossum, or change `no_rows` in the mapping.',
  },
  MAPPING_CALC: {
    area: 'mapping',
    retry: 'permanent',
    meaning: 'A calculation in the mapping cannot be evaluated for this document (e.g. division by zero).',
    action: 'Correct the values in Rossum, or guard the calculation in the mapping.',
  },
  MAPPING_INVALID: {
    area: 'mapping',
    retry: 'permanent',
    meaning:
      'The mapping cannot produce valid output for this document (a self-referencing value, a delimiter with no quote character).',
    action: 'Fix the mapping file as the message says; `rossum-sftp-bridge test` reproduces it.',
  },
  MAPPING_RENDER_FAILED: {
    area: 'mapping',
    retry: 'permanent',
    meaning: 'Rendering failed for a reason the mapping did not anticipate.',
    action: 'Reproduce with `rossum-sftp-bridge render` on the payload and report it with the message.',
  },
  CONNECT_FAILED: {
    area: 'transport',
    retry: 'transient',
    meaning: 'The SFTP server refused the connection or its host name does not resolve.',
    action: 'Check the target URL and that the server is up; Rossum retries.',
  },
  CONNECT_TIMEOUT: {
    area: 'transport',
    retry: 'transient',
    meaning: 'The SSH handshake or an operation did not finish in time.',
    action: 'Check the network path to the server and `pool.connectTimeoutMs`; Rossum retries.',
  },
  CONNECTION_LOST: {
    area: 'transport',
    retry: 'transient',
    meaning: 'The connection dropped during an operation.',
    action: "Usually passes; if it repeats, check the server's session limits and logs.",
  },
  HOST_KEY_MISMATCH: {
    area: 'transport',
    retry: 'transient',
    meaning: 'The server presented a different host key than configured; the connection was refused.',
    action:
      "Confirm the new fingerprint with the server's administrator before updating `hostKey`/`knownHosts`; it may be an attack.",
  },
  HOST_KEY_UNKNOWN: {
    area: 'transport',
    retry: 'either',
    meaning: 'No host key is configured for the server (or the knownHosts file cannot be read: permanent).',
    action:
      "Verify the presented fingerprint with the server's administrator and add it as `hostKey` or to `knownHosts`.",
  },
  AUTH_REJECTED: {
    area: 'transport',
    retry: 'transient',
    meaning: "The server rejected the user's password or key.",
    action: "Check the credentials configured for the target (or in the hook's secrets).",
  },
  CREDENTIALS_MISSING: {
    area: 'transport',
    retry: 'permanent',
    meaning: "The target takes credentials from the hook's secrets, and the call carried none (or no username).",
    action: "Set `password` or `privateKey` (and the username) in the Rossum hook's secrets.",
  },
  CREDENTIALS_INVALID: {
    area: 'transport',
    retry: 'permanent',
    meaning: 'The private key cannot be read or used (wrong passphrase, unreadable file).',
    action: 'Check `privateKey`/`privateKeyPath` and the passphrase.',
  },
  PERMISSION_DENIED: {
    area: 'transport',
    retry: 'transient',
    meaning: 'The server refused a write, rename or listing in the target folder.',
    action: 'Let the target user write to the folder; Rossum retries once it is fixed.',
  },
  NOT_FOUND: {
    area: 'transport',
    retry: 'either',
    meaning:
      'A file or folder does not exist on the target (the target folder itself, with `createDirs` off, is transient).',
    action: 'Create the folder or turn on `upload.createDirs`.',
  },
  TARGET_EXISTS: {
    area: 'transport',
    retry: 'permanent',
    meaning:
      'The file already exists and the policy is `onExisting: fail`, or every version name is taken; nothing was changed.',
    action: 'Let the ERP pick up or remove the file, or choose `onExisting: version`.',
  },
  DOCUMENT_UNAVAILABLE: {
    area: 'export',
    retry: 'either',
    meaning:
      "The original document a mapping uploads beside the data file could not be fetched from Rossum: transient for a refused or expired token (401/403), a timeout, 429 or 5xx (Rossum's retry brings a fresh token). A 429 is first waited out within the same delivery (up to 3 times, when its Retry-After is at most 5 s). Permanent when Rossum no longer has it (404/410) or the payload names no document.",
    action:
      'The message names the document and the HTTP status. Give the hook a token_owner (so calls carry rossum_authorization_token) or set rossum.token; set document.required: false to upload the data file alone.',
  },
  DOCUMENT_TOO_LARGE: {
    area: 'export',
    retry: 'permanent',
    meaning:
      "The original document is larger than the mapping's document.max_bytes (declared by Rossum, or counted while it streamed); nothing was published and a partly written temporary file was removed.",
    action: 'Raise document.max_bytes in the mapping if the ERP takes such files, then export again.',
  },
  DOCUMENT_NOT_TRUSTED: {
    area: 'export',
    retry: 'permanent',
    meaning:
      'The payload points the document download at a host that is neither rossum.baseUrl nor in rossum.allowedHosts (or not https): no token is sent there.',
    action: 'Set rossum.baseUrl, or add the host to rossum.allowedHosts if it really is your Rossum.',
  },
  PATH_ESCAPE: {
    area: 'transport',
    retry: 'permanent',
    meaning:
      'A file name from document data would leave the target folder (`..`, absolute path, symlink); it was refused.',
    action: 'Fix the file name template or the value it uses.',
  },
  SIZE_MISMATCH: {
    area: 'transport',
    retry: 'transient',
    meaning: 'The server stored fewer bytes than were sent; the file was not published.',
    action: "Check the server's disk space and quotas; Rossum retries.",
  },
  OPERATION_TIMEOUT: {
    area: 'transport',
    retry: 'transient',
    meaning: 'The server did not answer an operation in time; the connection was dropped.',
    action: "Check the server's load; raise the operation timeout if it is always slow.",
  },
  ABORTED: {
    area: 'transport',
    retry: 'transient',
    meaning: 'The operation was cancelled (reply deadline or shutdown) before it finished.',
    action: "None when it is rare; if frequent, raise the hook's `timeout_s` or check the server's speed.",
  },
  TARGET_CLOSED: {
    area: 'transport',
    retry: 'transient',
    meaning: 'The target was shutting down when an operation began.',
    action: 'None: it happens during restarts and Rossum retries.',
  },
  UNSUPPORTED: {
    area: 'transport',
    retry: 'either',
    meaning:
      'The server does not support an operation the config needs (e.g. `posix-rename@openssh.com` for `rename: posix`: permanent).',
    action: 'Choose another `upload.rename` mode, or ask for the extension on the server.',
  },
  IO_FAILED: {
    area: 'transport',
    retry: 'transient',
    meaning: 'Another file-system or SFTP failure (the target folder is a file, a generic server failure).',
    action: 'Read the message and the server logs; Rossum retries.',
  },
  LEDGER_UNAVAILABLE: {
    area: 'ledger',
    retry: 'transient',
    meaning: 'The ledger database cannot be opened or reached.',
    action: "Check `ledger.url`, the file's folder and permissions, or the PostgreSQL server.",
  },
  LEDGER_LEASE_LOST: {
    area: 'ledger',
    retry: 'transient',
    meaning: 'Another worker took over an export or ack outcome this one was still working on (its lease expired).',
    action: 'None when rare; if frequent, look for stalled processes or clock problems.',
  },
  OWNER_DIED: {
    area: 'export',
    retry: 'transient',
    meaning: 'Recorded in the ledger: the process that was uploading this export ended before it finished.',
    action: 'None: the next delivery from Rossum retries it.',
  },
  UPLOAD_INTERRUPTED: {
    area: 'export',
    retry: 'transient',
    meaning: 'Recorded in the ledger: the upload had not reached the server when the process ended.',
    action: 'None: the next delivery from Rossum retries it.',
  },
  INTERNAL: {
    area: 'export',
    retry: 'transient',
    meaning: 'Recorded in the ledger: a failure that is not a bridge error (a bug or an unexpected library error).',
    action: 'Read the logged message and report it; Rossum retries.',
  },
  ROSSUM_UNAUTHORIZED: {
    area: 'rossum',
    retry: 'permanent',
    meaning: 'The Rossum API refused the token (401/403) for a call other than login.',
    action: 'Renew the token, or give the user access to the queue.',
  },
  ROSSUM_LOGIN_FAILED: {
    area: 'rossum',
    retry: 'permanent',
    meaning: 'Logging in to the Rossum API failed, or no username/password is configured.',
    action: 'Check `rossum.username`/`password` (or configure a token).',
  },
  ROSSUM_RATE_LIMITED: {
    area: 'rossum',
    retry: 'transient',
    meaning: 'The Rossum API answered 429.',
    action: 'None: the ack loop waits `Retry-After` and tries again.',
  },
  ROSSUM_SERVER_ERROR: {
    area: 'rossum',
    retry: 'transient',
    meaning: 'The Rossum API answered with a 5xx status.',
    action: 'None: retried; check status.rossum.ai if it lasts.',
  },
  ROSSUM_UNREACHABLE: {
    area: 'rossum',
    retry: 'transient',
    meaning: 'The Rossum API cannot be reached (DNS, connection refused, TLS).',
    action: 'Check the network path and `rossum.baseUrl`.',
  },
  ROSSUM_TIMEOUT: {
    area: 'rossum',
    retry: 'transient',
    meaning: 'The Rossum API did not answer in time.',
    action: 'None: retried; raise `rossum.timeoutMs` if it is always slow.',
  },
  ROSSUM_REQUEST_REJECTED: {
    area: 'rossum',
    retry: 'permanent',
    meaning: 'The Rossum API rejected a request (4xx other than 401/403/429, or a redirect).',
    action: 'Read the message; check that the base URL is the API root ending in `/api`.',
  },
  ROSSUM_BAD_RESPONSE: {
    area: 'rossum',
    retry: 'either',
    meaning: 'The Rossum API answered with something that is not the expected JSON (non-JSON bodies are retried).',
    action: 'Check that the base URL points at the Rossum API, not a proxy or login page.',
  },
  ROSSUM_CONFIG_INVALID: {
    area: 'rossum',
    retry: 'permanent',
    meaning:
      'The Rossum API settings are invalid, or there is no API root (no `baseUrl` and no usable `base_url` in the payload).',
    action: 'Fix `rossum` in the config (set `baseUrl` explicitly when in doubt).',
  },
  ROSSUM_HOST_NOT_ALLOWED: {
    area: 'rossum',
    retry: 'permanent',
    meaning:
      "The export payload's `base_url` names a host outside `rossum.allowedHosts` (default `*.rossum.app`, `*.rossum.ai`) or is not https: no credentials are sent there, so Rossum is not told.",
    action:
      'Set `rossum.baseUrl` to your Rossum API root, or add the host to `rossum.allowedHosts` if it really is your Rossum.',
  },
  HOOK_CALL_OPTIONS_INVALID: {
    area: 'rossum',
    retry: 'permanent',
    meaning: 'The options for calling a webhook as Rossum would (the `send` command) are invalid.',
    action: 'Correct the options as the message says.',
  },
  ACK_INVALID: {
    area: 'acks',
    retry: 'permanent',
    meaning:
      'An ERP answer file cannot be read (not well-formed, no reference or status, unknown status, wrong encoding).',
    action:
      'Have the ERP write the agreed format, or fix the ack convention in the config; the file stays for inspection.',
  },
  ACK_FILE_NOT_REGULAR: {
    area: 'transport',
    retry: 'permanent',
    meaning:
      'An ack file is a symlink, folder or device, or was swapped for another file between listing and reading; it is never read through.',
    action: 'Find who placed a link in the ack folder (the ERP writes plain files); the entry is moved to invalid/.',
  },
  ACK_FILE_TOO_LARGE: {
    area: 'transport',
    retry: 'permanent',
    meaning: 'An ack file is larger than `acks.limits.maxFileBytes`; reading stopped at the limit.',
    action:
      'Check the ERP output (an ack is small); raise `acks.limits.maxFileBytes` only for a known large format. The file is moved to invalid/.',
  },
  BAD_ARGUMENT: {
    area: 'cli',
    retry: 'permanent',
    meaning: 'A command-line argument is not valid (an annotation id, an age, a state).',
    action: 'Correct the argument as the message says.',
  },
  SEND_USAGE: {
    area: 'cli',
    retry: 'permanent',
    meaning: 'The `send` command was called with missing or conflicting options.',
    action: 'Run `rossum-sftp-bridge send --help`.',
  },
} as const satisfies Record<string, CatalogueEntry>;
