/**
 * The architecture of the bridge, as rules `npm run lint:layers` enforces (docs/architecture.md explains it).
 *
 * Layers, top to bottom; a folder may import from its own layer and the layers below, never above:
 *
 *   cli                                          the command line (the only user of dev/, see dev-tools-only-from-cli)
 *   process, doctor                              entry points: serve (webhook → export), acks (ERP answers → Rossum); doctor (checks everything they depend on)
 *   config                                       assembles the bridge config from the modules' own schemas
 *   webhook, ack, console                        Rossum's hook over HTTP; the ERP's answers in ack folders; the operator console
 *   export                                       one export: route, render, upload once, reply
 *   mapping, transport, ledger, rossum           what an export is made of
 *   annotation, config-loading, observability,   foundations that know nothing of the bridge's flow
 *   schema-docs, errors
 *
 * Paths are matched without the extension: scripts/lint-layers.ts cruises a JavaScript copy of src/
 * (dependency-cruiser cannot read TypeScript 7 sources itself) that keeps type-only imports.
 */

const cli = '^src/cli/';
const processes = '^src/(process|doctor)/';
const config = '^src/config/';
const webhookAndAck = '^src/(webhook|ack|console)/';
const exportFlow = '^src/export/';
const modules = '^src/(mapping|transport|ledger|rossum)/';
const foundations = '^src/(annotation|config-loading|observability|schema-docs)/|^src/errors\\.(js|ts)$';
const dev = '^src/dev/';

/** Everything above a layer, as one pattern. */
const above = (...patterns) => patterns.join('|');

module.exports = {
  forbidden: [
    {
      name: 'foundations-import-no-layer-above',
      comment:
        'annotation, config-loading, observability, schema-docs and errors are the floor every other folder stands on; ' +
        'if they imported a module (e.g. observability reading transport types) a change there would ripple through everything.',
      severity: 'error',
      from: { path: foundations },
      to: { path: above(cli, processes, config, webhookAndAck, exportFlow, modules) },
    },
    {
      name: 'modules-stay-below-export',
      comment:
        'mapping, transport, ledger and rossum are the parts an export is made of; they are reusable on their own ' +
        '(the CLI renders with mapping alone) only while they know nothing of the export flow, the webhook, acks or config.',
      severity: 'error',
      from: { path: modules },
      to: { path: above(cli, processes, config, webhookAndAck, exportFlow) },
    },
    {
      name: 'export-stays-below-webhook-and-ack',
      comment:
        'export turns one payload into one upload and one reply; it must not know how the payload arrived (HTTP) ' +
        'or how the ERP answers later (acks), so the same flow serves the webhook, the CLI and tests.',
      severity: 'error',
      from: { path: exportFlow },
      to: { path: above(cli, processes, config, webhookAndAck) },
    },
    {
      name: 'webhook-and-ack-stay-below-config',
      comment:
        'webhook and ack receive the parts of the config they need as typed values; reading the whole config ' +
        'would tie every module to every other module\'s settings.',
      severity: 'error',
      from: { path: webhookAndAck },
      to: { path: above(cli, processes, config) },
    },
    {
      name: 'config-stays-below-entry-points',
      comment:
        'config assembles the schemas the modules declare (one declaration per setting); it sits above them and ' +
        'below the processes that load it, and never starts anything itself.',
      severity: 'error',
      from: { path: config },
      to: { path: above(cli, processes) },
    },
    {
      name: 'entry-points-stay-below-cli',
      comment: 'serve and acks are assembled the same way for the CLI, tests and embedders; they must not depend on argument parsing.',
      severity: 'error',
      from: { path: processes },
      to: { path: above(cli) },
    },
    {
      name: 'dev-tools-only-from-cli',
      comment: 'dev/ starts a local sshd and other tools for `rossum-sftp-bridge dev`; production code paths must never reach them.',
      severity: 'error',
      from: { pathNot: `${cli}|${dev}` },
      to: { path: dev },
    },
    {
      name: 'enter-folders-through-index',
      comment:
        'each folder exports a small typed surface from its index.ts; importing another folder\'s inner files ' +
        'would make every internal rename a change for its users.',
      severity: 'error',
      from: { path: '^src/([^/]+)/' },
      to: { path: '^src/[^/]+/', pathNot: ['^src/$1/', '^src/[^/]+/index\\.(js|ts)$'] },
    },
    {
      name: 'every-folder-has-a-layer',
      comment: 'a folder (or a file directly in src/) that no layer names is guarded by none of the rules above; give it a layer here first.',
      severity: 'error',
      from: {},
      to: { path: '^src/', pathNot: [cli, processes, config, webhookAndAck, exportFlow, modules, foundations, dev].join('|') },
    },
    {
      name: 'src-never-imports-test',
      comment: 'the product must run without its test harness; what both need belongs in src/.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^test/' },
    },
    {
      name: 'no-circular',
      comment: 'a cycle means two folders are one concept in two places; neither can be understood, tested or loaded first alone.',
      severity: 'error',
      from: { pathNot: '^src/mapping/' },
      to: { circular: true },
    },
    {
      name: 'no-circular-out-of-mapping',
      comment:
        'the mapping language is recursive (a value holds conditions, a condition values, a table both), so its own files may ' +
        'import each other; a cycle that leaves the folder is still two concepts tangled.',
      severity: 'error',
      from: { path: '^src/mapping/' },
      to: { circular: true, viaSomeNot: '^src/mapping/' },
    },
    {
      name: 'no-unresolvable',
      comment: 'an import that resolves to nothing is a typo or a file that moved; it would fail at run time.',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    moduleSystems: ['es6'],
    // The bridge is ESM on Node: resolve packages the way Node's `import` does.
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'node', 'default'], mainFields: ['module', 'main'] },
  },
};
