/**
 * A small interpreter for the subset of JSON Schema that `schema.ts` uses. The runtime package has no
 * dependencies, so it cannot pull in ajv; interpreting the shipped schema (instead of hand-writing checks
 * beside it) keeps one source of truth.
 */

export interface SchemaIssue {
  /** JSON path of the offending key, e.g. `network.allow[2]`. */
  key: string;
  message: string;
  hint: string;
}

type Schema = {
  type?: string;
  enum?: readonly unknown[];
  properties?: Record<string, Schema>;
  additionalProperties?: boolean | Schema;
  items?: Schema;
  minLength?: number;
};

export function validateAgainstSchema(value: unknown, schema: Schema, key = ''): SchemaIssue[] {
  const issues: SchemaIssue[] = [];
  visit(value, schema, key, issues);
  return issues;
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number' && Number.isInteger(value)) return 'integer';
  return typeof value;
}

function visit(value: unknown, schema: Schema, key: string, issues: SchemaIssue[]): void {
  const where = key || '(top level)';
  const actual = typeOf(value);
  if (schema.type && !(actual === schema.type || (schema.type === 'number' && actual === 'integer'))) {
    issues.push({ key: where, message: `expected ${schema.type}, got ${actual}`, hint: hintForType(schema) });
    return;
  }
  if (schema.enum && !schema.enum.includes(value)) {
    issues.push({
      key: where,
      message: `${JSON.stringify(value)} is not one of ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}`,
      hint: suggest(String(value), schema.enum.map(String)) ?? `use one of ${schema.enum.join(', ')}`,
    });
  }
  if (typeof value === 'string' && schema.minLength !== undefined && value.length < schema.minLength) {
    issues.push({ key: where, message: 'must not be empty', hint: 'remove the empty entry' });
  }
  if (actual === 'array' && schema.items) {
    (value as unknown[]).forEach((item, i) => {
      visit(item, schema.items!, `${key}[${i}]`, issues);
    });
  }
  if (actual === 'object') {
    const known = schema.properties ?? {};
    for (const [name, child] of Object.entries(value as Record<string, unknown>)) {
      const childKey = key ? `${key}.${name}` : name;
      const childSchema = known[name];
      if (childSchema) visit(child, childSchema, childKey, issues);
      else if (schema.additionalProperties === false) {
        issues.push({
          key: childKey,
          message: `unknown key "${name}"`,
          hint: suggest(name, Object.keys(known)) ?? `allowed keys here: ${Object.keys(known).join(', ')}`,
        });
      } else if (typeof schema.additionalProperties === 'object') {
        visit(child, schema.additionalProperties, childKey, issues);
      }
    }
  }
}

function hintForType(schema: Schema): string {
  if (schema.type === 'array') return 'write a list, e.g. ["https://api.example.com/**"]';
  if (schema.enum) return `use one of ${schema.enum.join(', ')}`;
  return `write ${/^[aeiou]/.test(schema.type ?? '') ? 'an' : 'a'} ${schema.type}`;
}

/** "did you mean" for typos: the closest candidate within an edit distance of 2. */
function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of candidates) {
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best === undefined ? undefined : `did you mean "${best}"?`;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}
