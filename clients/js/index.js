// Signed ogproxy image URLs. Zero dependencies; Web Crypto only.
// Runs in Node 18+, Deno, Bun, Cloudflare Workers, Vercel Edge and browsers.

const SALT = 'ogproxy.url.v1';
const DEFAULT_PATH = '/og.png';
const utf8 = new TextEncoder();

async function subtleCrypto() {
  // Node 18 has no global crypto. The non-literal specifier keeps bundlers from
  // trying to resolve node:crypto in browser builds.
  const specifier = 'node:crypto';
  const crypto =
    globalThis.crypto ?? (await import(/* webpackIgnore: true */ /* @vite-ignore */ specifier)).webcrypto;
  if (!crypto?.subtle) throw new Error('Web Crypto is unavailable (browsers only offer it on https)');
  return crypto.subtle;
}

// UTF-8, then percent-encode all but A-Z a-z 0-9 - . _ ~ (hex upper case).
// encodeURIComponent also leaves !'()* alone, so those are escaped by hand.
const encode = (s) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());

function pairsOf(params) {
  if (params == null) return [];
  if (typeof params === 'string') throw new TypeError('params must be an object, pairs or URLSearchParams');
  const items = typeof params[Symbol.iterator] === 'function' ? params : Object.entries(params);
  const pairs = [];
  for (const [name, value] of items) {
    if (value === null || value === undefined) continue;
    if (String(name) === 'sig') throw new Error("'sig' is reserved for the signature");
    pairs.push([String(name), String(value)]);
  }
  return pairs;
}

/** The canonical query string: encoded, sorted by name then value, `sig` excluded. */
export function canonicalQuery(params) {
  return pairsOf(params)
    .map(([name, value]) => [encode(name), encode(value)])
    .sort(([n1, v1], [n2, v2]) => (n1 < n2 ? -1 : n1 > n2 ? 1 : v1 < v2 ? -1 : v1 > v2 ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join('&');
}

async function hmac(subtle, key, data) {
  const k = await subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return new Uint8Array(await subtle.sign('HMAC', k, data));
}

function base64url(bytes) {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

const MIN_SECRET_BYTES = 16;
const EDGE_WHITESPACE = /^[ \t\n\r\v\f]+|[ \t\n\r\v\f]+$/g;

/**
 * The key that signs, from a secret read the way the server reads OGPROXY_SECRET:
 * comma-separated, each item trimmed of ASCII whitespace, empty items dropped, the last
 * one signs; every item must be at least 16 bytes of UTF-8. Bytes are one key as is.
 */
export function signingSecret(secret) {
  if (typeof secret !== 'string') {
    if (!(secret?.byteLength >= MIN_SECRET_BYTES)) throw new Error(`a signing secret must be at least ${MIN_SECRET_BYTES} bytes`);
    return secret;
  }
  const items = secret.split(',').map((s) => s.replace(EDGE_WHITESPACE, '')).filter(Boolean);
  if (!items.length || items.some((s) => utf8.encode(s).length < MIN_SECRET_BYTES)) {
    throw new Error(`a signing secret must be at least ${MIN_SECRET_BYTES} bytes (OGPROXY_SECRET: comma-separated, the last signs)`);
  }
  return items[items.length - 1];
}

/** The `sig` for `path + "?" + canonicalQuery(params)`, with `secret` as the key itself. */
export async function signature(secret, path, params) {
  const raw = typeof secret === 'string' ? utf8.encode(secret) : secret;
  if (!raw?.byteLength) throw new Error('a signing secret must not be empty');
  const subtle = await subtleCrypto();
  const key = await hmac(subtle, raw, utf8.encode(SALT));
  return base64url(await hmac(subtle, key, utf8.encode(`${path}?${canonicalQuery(params)}`)));
}

// What the server refuses whatever the template (spec/vectors.json, `limits`).
export const MAX_TITLE = 200; // characters (code points), after trimming
export const MAX_SUBTITLE = 300;
export const MAX_QUERY_BYTES = 4096; // the whole query, sig included; 414 beyond
const LIMITS = { title: MAX_TITLE, subtitle: MAX_SUBTITLE };
const SIG_BYTES = '&sig='.length + 43;
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/u;
// The server trims what Python's str.strip() does: not String.prototype.trim's set
// (which takes U+FEFF and leaves U+001C-001F and U+0085).
const SPACE = '\\t\\n\\v\\f\\r\\u001c-\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const EDGES = new RegExp(`^[${SPACE}]+|[${SPACE}]+$`, 'gu');

/** What the server would refuse: a parameter (`param` names it), or the query's length (`param` null). */
export class OgLimitError extends Error {
  constructor(param, problem) {
    super(param === null ? problem : `Invalid parameter '${param}': ${problem}`);
    this.name = 'OgLimitError';
    this.param = param;
  }
}

function checkPairs(pairs) {
  const seen = new Map();
  for (const [name, raw] of pairs) {
    if (seen.has(name)) throw new OgLimitError(name, 'given more than once');
    const value = raw.normalize('NFC').replace(EDGES, '');
    seen.set(name, value);
    if (name === 'html') continue;
    if (CONTROL.test(value)) throw new OgLimitError(name, 'contains control characters');
    const length = [...value].length; // code points, not UTF-16 units
    const limit = LIMITS[name];
    if (limit !== undefined && length > limit) {
      throw new OgLimitError(name, `is ${length} characters long, at most ${limit} allowed`);
    }
  }
  if (!seen.has('html') && !seen.get('title')) {
    throw new OgLimitError('title', seen.has('title') ? 'must not be empty' : 'is required');
  }
  const bytes = canonicalQuery(pairs).length + SIG_BYTES; // the canonical query is ASCII
  if (bytes > MAX_QUERY_BYTES) {
    throw new OgLimitError(null, `Query string too long: ${bytes} bytes signed, at most ${MAX_QUERY_BYTES} allowed`);
  }
}

/**
 * Throws OgLimitError for what the server refuses whatever the template: control
 * characters (in every parameter but html), a title over 200 or a subtitle over 300
 * characters (after NFC and trimming, as the server counts), a parameter given twice, no
 * title without html, a signed query over 4 KiB. What depends on the template is the
 * server's to check (`ogproxy sign` checks it all).
 */
export function checkParams(params) {
  checkPairs(pairsOf(params));
}

/**
 * `baseUrl` (the image endpoint, e.g. https://og.example.com/og.png; a bare origin
 * gets /og.png) with the canonical query and its `sig` appended. `secret` may be the
 * value of OGPROXY_SECRET as it is (see signingSecret). With `{ check: true }` it
 * throws OgLimitError for what the server would refuse (see checkParams).
 */
export async function signOgUrl(baseUrl, secret, params, { check = false } = {}) {
  baseUrl = String(baseUrl);
  if (/[?#]/.test(baseUrl)) throw new Error('baseUrl must not carry a query or fragment');
  const { pathname } = new URL(baseUrl);
  const bare = pathname === '/';
  const path = bare ? DEFAULT_PATH : pathname;
  const base = bare ? baseUrl.replace(/\/$/, '') + DEFAULT_PATH : baseUrl;
  const pairs = pairsOf(params); // once: params may be a one-shot iterator
  if (check) checkPairs(pairs);
  const sig = await signature(signingSecret(secret), path, pairs);
  return `${base}?${canonicalQuery(pairs)}&sig=${sig}`;
}
