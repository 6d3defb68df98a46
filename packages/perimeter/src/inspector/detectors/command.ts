/**
 * OS command injection: a shell metacharacter that ends or nests a command (`;`, `|`, `||`, `&`, `&&`, newline,
 * `$(`, backtick) followed by a command name a payload would run. Requiring the command word keeps "Ben & Jerry's"
 * and "Yes | No" benign; requiring the metacharacter keeps "Cat 5e cable" benign. `${IFS}` (the shell's field
 * separator used to avoid spaces) is never in benign text. One forward pass.
 */
import type { Hit } from '../types.js';

const COMMANDS = new Set([
  'cat',
  'ls',
  'id',
  'whoami',
  'uname',
  'nc',
  'ncat',
  'netcat',
  'curl',
  'wget',
  'bash',
  'sh',
  'zsh',
  'dash',
  'ksh',
  'csh',
  'tcsh',
  'ping',
  'rm',
  'sleep',
  'echo',
  'printf',
  'powershell',
  'pwsh',
  'cmd',
  'cmd.exe',
  'python',
  'python3',
  'perl',
  'php',
  'ruby',
  'node',
  'nslookup',
  'dig',
  'host',
  'chmod',
  'chown',
  'kill',
  'pkill',
  'env',
  'printenv',
  'ifconfig',
  'base64',
  'tftp',
  'telnet',
  'sudo',
  'su',
  'head',
  'tail',
  'awk',
  'touch',
  'mkfifo',
  'xterm',
  'eval',
  'exec',
  'pwd',
  'hostname',
  'net',
  'dir',
  'type',
  'certutil',
  'bitsadmin',
  'mshta',
  'rundll32',
  'regsvr32',
  'wmic',
  'scp',
  'ftp',
  'socat',
  'openssl',
  'find',
  'xargs',
  'dd',
  'cp',
  'mv',
  'tar',
  'crontab',
  'systemctl',
  'shutdown',
  'reboot',
  'passwd',
  'useradd',
]);

// The shell's field-separator variable, spelled without a template literal's placeholder syntax.
const IFS = '$' + '{IFS}';

function isSpace(c: string | undefined): boolean {
  return c === ' ' || c === '\t' || c === '\r';
}

function isCommandChar(c: number): boolean {
  return (
    (c >= 97 && c <= 122) ||
    (c >= 65 && c <= 90) ||
    (c >= 48 && c <= 57) ||
    c === 46 ||
    c === 47 ||
    c === 95 ||
    c === 45
  );
}

/** The command word starting at `at` (after blanks and `${IFS}`), by its base name. */
function commandAt(value: string, at: number): string | null {
  let i = at;
  for (;;) {
    while (isSpace(value[i])) i++;
    if (value.startsWith(IFS, i)) i += 6;
    else if (value.startsWith('$IFS', i)) i += 4;
    else break;
  }
  const start = i;
  while (i < value.length && isCommandChar(value.charCodeAt(i))) i++;
  if (i === start) return null;
  const next = value[i];
  // A command is followed by its arguments, the end, or another metacharacter, not by more of a word.
  if (!(next === undefined || isSpace(next) || next === '\n' || ';|&)`$<>'.includes(next))) return null;
  const word = value.slice(start, i);
  const slash = word.lastIndexOf('/');
  const name = slash === -1 ? word : word.slice(slash + 1);
  return COMMANDS.has(name) ? word : null;
}

/**
 * Markdown prose that quotes a shell command in a code span ("run `ls -la` in your terminal") carries the same
 * characters as a payload; it is reported with low confidence when the metacharacter is inside a backtick span and
 * the value has several words of prose outside the spans.
 */
function insideProseCodeSpan(value: string, at: number): boolean {
  let spans = 0;
  let inside = false;
  let proseWords = 0;
  let wordLength = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '`') {
      inside = !inside;
      spans++;
      wordLength = 0;
      continue;
    }
    if (i === at && !inside) return false;
    if (inside) continue;
    const code = c.charCodeAt(0);
    if ((code >= 97 && code <= 122) || (code >= 65 && code <= 90)) wordLength++;
    else {
      if (wordLength >= 2 && (c === ' ' || c === '.' || c === ',' || c === '\n')) proseWords++;
      wordLength = 0;
    }
  }
  if (wordLength >= 2) proseWords++;
  return spans >= 2 && spans % 2 === 0 && proseWords >= 3;
}

// A single character class: a value without any metacharacter is skipped in one native pass.
const METACHARACTERS = /[;|&\n`$]/;

/**
 * Shellshock (CVE-2014-6271 and its follow-ups): bash imported a function definition from any environment value
 * starting `() {` and ran what followed it. CGI-style platforms still copy headers into the environment; no benign
 * value starts like a bash function body.
 */
function shellshock(value: string): Hit | null {
  let i = 0;
  while (value.charCodeAt(i) === 32 || value.charCodeAt(i) === 9) i++;
  if (value.charCodeAt(i) !== 40 /* ( */ || value.charCodeAt(i + 1) !== 41 /* ) */) return null;
  let j = i + 2;
  while (value.charCodeAt(j) === 32 || value.charCodeAt(j) === 9) j++;
  return value.charCodeAt(j) === 123 /* { */ ? { fragment: value.slice(i, i + 80), confidence: 'high' } : null;
}

export function detectCommand(value: string): Hit | null {
  const functionImport = shellshock(value);
  if (functionImport !== null) return functionImport;
  if (!METACHARACTERS.test(value)) return null;
  const ifs = value.indexOf(IFS);
  if (ifs !== -1) return { fragment: value.slice(Math.max(0, ifs - 20), ifs + 60), confidence: 'high' };
  let low: Hit | null = null;
  for (let i = 0; i < value.length; i++) {
    // Character codes, not one-character strings: this loop runs over every value with a metacharacter.
    const c = value.charCodeAt(i);
    let after = -1;
    if (c === 59 /* ; */ || c === 10 /* \n */ || c === 96 /* ` */) after = i + 1;
    else if (c === 124 /* | */ || c === 38 /* & */) after = value.charCodeAt(i + 1) === c ? i + 2 : i + 1;
    else if (c === 36 /* $ */ && value.charCodeAt(i + 1) === 40 /* ( */) after = i + 2;
    if (after === -1) continue;
    const command = commandAt(value, after);
    if (command === null) continue;
    const found: Hit = { fragment: value.slice(Math.max(0, i - 20), after + command.length + 40), confidence: 'high' };
    if (!insideProseCodeSpan(value, i)) return found;
    low ??= { ...found, confidence: 'low' };
    // Only the first metacharacter in a code span is examined for prose: it is a linear scan of the value.
    return low;
  }
  return low;
}
