import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { canonicalQuery, checkParams, OgLimitError, signature, signingSecret, signOgUrl } from '../index.js';

const { vectors, secrets, limits } = JSON.parse(readFileSync(new URL('../../../spec/vectors.json', import.meta.url), 'utf8'));
const SECRET = 's3cret-s3cret-s3cret';

for (const v of vectors) {
  test(`vector: ${v.name}`, async () => {
    assert.equal(canonicalQuery(v.params), v.canonical_query);
    assert.equal(await signature(v.secret, v.path, v.params), v.sig);
    assert.equal(
      await signOgUrl('https://og.example.com' + v.path, v.secret, v.params),
      `https://og.example.com${v.path}?${v.canonical_query}&sig=${v.sig}`,
    );
  });
}

test('a plain object, pairs and URLSearchParams sign alike', async () => {
  const [v] = vectors;
  const expected = `https://og.example.com/og.png?${v.canonical_query}&sig=${v.sig}`;
  for (const params of [Object.fromEntries(v.params), v.params, new URLSearchParams(v.params)]) {
    assert.equal(await signOgUrl('https://og.example.com/og.png', v.secret, params), expected);
  }
});

test('a bare origin gets /og.png', async () => {
  const expected = await signOgUrl('https://og.example.com/og.png', SECRET, { title: 'x' });
  assert.match(expected, /^https:\/\/og\.example\.com\/og\.png\?title=x&sig=[\w-]{43}$/);
  assert.equal(await signOgUrl('https://og.example.com', SECRET, { title: 'x' }), expected);
  assert.equal(await signOgUrl('https://og.example.com/', SECRET, { title: 'x' }), expected);
});

test('null and undefined values are left out; others go through String()', async () => {
  const url = await signOgUrl('https://og.example.com/og.png', SECRET, {
    title: 'x',
    subtitle: null,
    template: undefined,
    palette: 1,
  });
  assert.equal(url, await signOgUrl('https://og.example.com/og.png', SECRET, [['palette', '1'], ['title', 'x']]));
  assert.equal(canonicalQuery([['title', 'x'], ['subtitle', null]]), 'title=x');
});

test('sig is rejected as a parameter name', async () => {
  assert.throws(() => canonicalQuery({ title: 'x', sig: 'abc' }), /sig/);
  await assert.rejects(signOgUrl('https://og.example.com/og.png', SECRET, [['sig', 'abc']]), /sig/);
});

test('a base URL with a query or fragment is rejected', async () => {
  for (const base of ['https://og.example.com/og.png?v=1', 'https://og.example.com/og.png#x']) {
    await assert.rejects(signOgUrl(base, SECRET, { title: 'x' }), /query or fragment/);
  }
});

test("!'()* are percent-encoded, and only A-Z a-z 0-9 - . _ ~ are left as is", () => {
  assert.equal(canonicalQuery({ title: "!'()*" }), 'title=%21%27%28%29%2A');
  let all = '';
  for (let c = 0x20; c < 0x7f; c++) all += String.fromCharCode(c);
  const encoded = canonicalQuery({ t: all }).slice(2);
  assert.equal(encoded.replace(/%[0-9A-F]{2}/g, ''), all.replace(/[^A-Za-z0-9\-._~]/g, ''));
  assert.equal(decodeURIComponent(encoded), all);
});

test('an empty secret is rejected', async () => {
  await assert.rejects(signature('', '/og.png', { title: 'x' }), /secret/);
});

for (const c of secrets.cases) {
  test(`secret rule: ${c.name}`, async () => {
    if (c.error) {
      assert.throws(() => signingSecret(c.env), /16 bytes/);
      await assert.rejects(signOgUrl('https://og.example.com/og.png', c.env, { title: 'x' }), /16 bytes/);
      return;
    }
    assert.equal(signingSecret(c.env), c.signing_secret);
    const url = await signOgUrl('https://og.example.com' + c.path, c.env, c.params);
    assert.ok(url.endsWith('&sig=' + c.sig), url);
  });
}

for (const c of limits.cases) {
  test(`limits: ${c.name}`, async () => {
    const base = 'https://og.example.com/og.png';
    const unchecked = await signOgUrl(base, SECRET, c.params); // signs anything unless asked
    if (c.refused === null) {
      checkParams(c.params);
      assert.equal(await signOgUrl(base, SECRET, c.params, { check: true }), unchecked);
      return;
    }
    const param = c.refused === 'query' ? null : c.refused;
    assert.throws(() => checkParams(c.params), (e) => e instanceof OgLimitError && e.param === param);
    await assert.rejects(signOgUrl(base, SECRET, c.params, { check: true }), OgLimitError);
  });
}

test('a limit error says what the server would say', () => {
  assert.throws(() => checkParams({ title: 'x'.repeat(201) }), {
    message: "Invalid parameter 'title': is 201 characters long, at most 200 allowed",
  });
});
