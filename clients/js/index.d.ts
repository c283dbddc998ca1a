/** A parameter value; `null` and `undefined` leave the parameter out, anything else goes through `String()`. */
export type OgParamValue = string | number | boolean | bigint | null | undefined;

/**
 * Query parameters to sign: a plain object, `[name, value]` pairs (repeated names allowed),
 * or `URLSearchParams`. The name `sig` is reserved.
 */
export type OgParams =
  | URLSearchParams
  | Iterable<readonly [string, OgParamValue]>
  | { readonly [name: string]: OgParamValue };

/**
 * The signing secret: the value of `OGPROXY_SECRET` as it is (comma-separated, each item trimmed
 * of ASCII whitespace, the last one signs, each at least 16 bytes of UTF-8) or one key as raw bytes.
 */
export type OgSecret = string | Uint8Array;

/** The key that signs: the last item of an `OGPROXY_SECRET` value. @throws Error if an item is under 16 bytes. */
export function signingSecret(secret: OgSecret): string | Uint8Array;

/**
 * Returns `baseUrl + "?" + canonicalQuery(params) + "&sig=" + signature`.
 *
 * @param baseUrl the image endpoint, e.g. `https://og.example.com/og.png`; a bare origin gets
 *   `/og.png`. A query or fragment is an error.
 * @throws Error if `baseUrl` has a query or fragment, a parameter is named `sig`, or a secret is under 16 bytes.
 */
export function signOgUrl(baseUrl: string | URL, secret: OgSecret, params: OgParams): Promise<string>;

/**
 * The canonical query: every parameter UTF-8 and percent-encoded with only `A-Z a-z 0-9 - . _ ~`
 * left as is, sorted by encoded name then encoded value, written `name=value` and joined with `&`.
 */
export function canonicalQuery(params: OgParams): string;

/** The `sig` value: base64url (no padding) HMAC-SHA256 over `path + "?" + canonicalQuery(params)`, `secret` being one key. */
export function signature(secret: OgSecret, path: string, params: OgParams): Promise<string>;
