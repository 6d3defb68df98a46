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
  properties: { allow: stringList('Executables (absolute paths or names resolved through PATH) code may start.') },
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
    process: { ...processRules, properties: { mode, ...processRules.properties } },
    env: { ...envRules, properties: { mode, ...envRules.properties } },
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
