/**
 * Template and expression injection: text that a template engine or expression evaluator would execute. Log4j
 * lookups (`${jndi:…}`, and the nested `${${lower:j}ndi:…}` / `${::-j}` forms used to evade filters) are flagged
 * outright. The other delimiters — `{{ }}`, `${ }`, `#{ }`, `*{ }`, `<%= %>`, `{% %}` — are everyday template
 * syntax in benign text (a Vue snippet in a blog post, "Hello ${name}"), so they count only when their content is
 * code: arithmetic between numbers (the `{{7*7}}` probe), a call, dunder attributes, or a reach for the runtime
 * (constructor, process, Runtime, …).
 */
import type { Hit } from '../types.js';

const LOG4J_LOOKUPS = [
  'jndi:',
  'lower:',
  'upper:',
  '::-',
  'env:',
  'sys:',
  'java:',
  'date:',
  'ctx:',
  'main:',
  'bundle:',
  'k8s:',
  'docker:',
  'spring:',
  'web:',
  'log4j:',
  'sd:',
  'map:',
  'marker:',
  'event:',
  'base64:',
];

const RUNTIME_WORDS = [
  'constructor',
  'prototype',
  'process',
  'require',
  'mainmodule',
  'child_process',
  'runtime',
  'getclass',
  'forname',
  'classloader',
  'eval',
  'exec',
  'system',
  'popen',
  'subprocess',
  'import ',
  '__',
  'apply',
  'globals',
  'builtins',
  'getenv',
  'self.',
  'config.',
];

/** Template content that computes or reaches for the runtime, as opposed to naming a variable. */
function isCode(content: string): boolean {
  const text = content.toLowerCase();
  if (text.includes('(')) return true;
  for (const word of RUNTIME_WORDS) if (text.includes(word)) return true;
  // `7*7`, `7 * 7`: arithmetic between literal numbers is what template probes evaluate.
  let sawNumber = false;
  let sawOperator = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (sawNumber && sawOperator) return true;
      sawNumber = true;
      sawOperator = false;
      while (i + 1 < text.length && text.charCodeAt(i + 1) >= 48 && text.charCodeAt(i + 1) <= 57) i++;
    } else if ('*+/-%'.includes(text[i]!) && sawNumber) sawOperator = true;
    else if (text[i] !== ' ') {
      sawNumber = false;
      sawOperator = false;
    }
  }
  return false;
}

const DELIMITERS: Array<[string, string]> = [
  ['{{', '}}'],
  ['${', '}'],
  ['#{', '}'],
  ['*{', '}'],
  ['@{', '}'],
  ['<%', '%>'],
  ['{%', '%}'],
];

const MAX_CONTENT = 512;

export function detectTemplate(value: string): Hit | null {
  if (!value.includes('{') && !value.includes('<%')) return null;
  for (let at = value.indexOf('${'); at !== -1; at = value.indexOf('${', at + 2)) {
    const rest = value.slice(at + 2, at + 40).toLowerCase();
    // `${${lower:j}ndi:` nests lookups: look past any leading `${`.
    const inner = rest.replace(/^(\$\{)+/, '');
    for (const lookup of LOG4J_LOOKUPS)
      if (inner.startsWith(lookup)) return { fragment: value.slice(at, at + 80), confidence: 'high' };
  }
  for (const [open, close] of DELIMITERS) {
    let from = 0;
    // The first close after an opening is reused for every opening before it: one pass per delimiter pair.
    let end = -1;
    for (let checked = 0; checked < 256; checked++) {
      const at = value.indexOf(open, from);
      if (at === -1) break;
      if (end < at + open.length) end = value.indexOf(close, at + open.length);
      if (end === -1) break;
      from = at + open.length;
      if (end - at > MAX_CONTENT) continue;
      if (isCode(value.slice(at + open.length, end)))
        return { fragment: value.slice(at, Math.min(end + close.length, at + 100)), confidence: 'high' };
    }
  }
  return null;
}
