/**
 * The policy's JSON Schema. This object is the single source: `schema/perimeter.schema.json` is generated from
 * it (`npm run generate:schema`, checked by a test), and `validate.ts` interprets it at load time, so editors,
 * CI and the runtime can never disagree about what a valid policy is.
 */

const mode = {
  type: 'string',
  enum: ['block', 'alert', 'allow'],
  description: 'block: deny and report; alert: report but let it happen; allow: do not check.',
} as const;

const stringList = (description: string) =>
  ({ type: 'array', items: { type: 'string', minLength: 1 }, description }) as const;

const networkRules = {
  type: 'object',
  additionalProperties: false,
  properties: {
    allow: stringList('Network patterns: "[METHOD] scheme://host[:port][/path-glob]" or "unix:/path".'),
  },
} as const;

const fsRules = {
  type: 'object',
  additionalProperties: false,
  properties: {
    read: stringList('Path globs this code may read.'),
    write: stringList('Path globs this code may write.'),
  },
} as const;

const processRules = {
  type: 'object',
  additionalProperties: false,
  properties: {
    allow: stringList(
      'Programs code may start: an absolute path or a name resolved through PATH, optionally followed by argument globs ("/usr/bin/git status", "convert * -resize * **"; `*` within one argument, `**` any remaining arguments). A shell allowed with no arguments may run any script.',
    ),
  },
} as const;

const envRules = {
  type: 'object',
  additionalProperties: false,
  properties: { allow: stringList('Environment variable names code may read ("*" suffix allowed: "AWS_*").') },
} as const;

export const policySchema = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'https://perimeter.dev/schema/perimeter.schema.json',
  title: 'Perimeter policy',
  description: 'What one serverless function and its dependencies may do at run time.',
  type: 'object',
  additionalProperties: false,
  properties: {
    $schema: { type: 'string' },
    mode: { ...mode, description: 'Default mode for every capability. Defaults to "block".' },
    network: {
      type: 'object',
      additionalProperties: false,
      properties: {
        mode,
        allow: networkRules.properties.allow,
        platform: {
          type: 'boolean',
          description: "Allow the platform's own runtime endpoints (e.g. AWS_LAMBDA_RUNTIME_API). Defaults to true.",
        },
      },
    },
    fs: { ...fsRules, properties: { mode, ...fsRules.properties } },
    process: {
      ...processRules,
      properties: {
        mode,
        ...processRules.properties,
        unguardedNode: {
          type: 'boolean',
          description:
            'Let node child processes run without the guard (no --require in their NODE_OPTIONS). Defaults to false.',
        },
      },
    },
    env: { ...envRules, properties: { mode, ...envRules.properties } },
    worker: {
      type: 'object',
      additionalProperties: false,
      description: 'worker_threads Workers. Denied unless allowed; an allowed worker runs under this same policy.',
      properties: {
        mode,
        allow: { type: 'boolean', description: 'Let code start worker threads. Defaults to false.' },
      },
    },
    addon: {
      type: 'object',
      additionalProperties: false,
      description: 'Native addons (.node files loaded by require or process.dlopen).',
      properties: {
        mode,
        allow: stringList(
          'Globs of .node files that may be loaded, matched against the real path (relative globs: from the policy file).',
        ),
      },
    },
    packages: {
      type: 'object',
      description: 'Narrower rules for one dependency ("*" for every dependency without its own entry).',
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        properties: { network: networkRules, fs: fsRules, process: processRules, env: envRules },
      },
    },
  },
} as const;
