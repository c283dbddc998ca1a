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

/** The longest title the server accepts, in code points after NFC and trimming. */
export const MAX_TITLE: 200;
/** The longest subtitle the server accepts, in code points after NFC and trimming. */
export const MAX_SUBTITLE: 300;
/** The longest signed query (`sig` included) the server reads; 414 beyond. */
export const MAX_QUERY_BYTES: 4096;

/** What the server would refuse: a parameter (400; `param` names it) or the query's length (414; `param` is null). */
export class OgLimitError extends Error {
  readonly param: string | null;
}

/**
 * Throws OgLimitError for what the server refuses whatever the template: control characters (in
 * every parameter but `html`), a title over 200 or a subtitle over 300 characters, a parameter given
 * twice, no title without `html`, a signed query over 4 KiB.
 */
export function checkParams(params: OgParams): void;

export interface SignOptions {
  /** Throw OgLimitError for what the server would refuse (see checkParams). Default false. */
  check?: boolean;
}

/**
 * Returns `baseUrl + "?" + canonicalQuery(params) + "&sig=" + signature`.
 *
 * @param baseUrl the image endpoint, e.g. `https://og.example.com/og.png`; a bare origin gets
 *   `/og.png`. A query or fragment is an error.
 * @throws Error if `baseUrl` has a query or fragment, a parameter is named `sig`, or a secret is under 16 bytes;
 *   OgLimitError with `{ check: true }` for what the server would refuse.
 */
export function signOgUrl(
  baseUrl: string | URL,
  secret: OgSecret,
  params: OgParams,
  options?: SignOptions,
): Promise<string>;

/**
 * The canonical query: every parameter UTF-8 and percent-encoded with only `A-Z a-z 0-9 - . _ ~`
 * left as is, sorted by encoded name then encoded value, written `name=value` and joined with `&`.
 */
export function canonicalQuery(params: OgParams): string;

/** The `sig` value: base64url (no padding) HMAC-SHA256 over `path + "?" + canonicalQuery(params)`, `secret` being one key. */
export function signature(secret: OgSecret, path: string, params: OgParams): Promise<string>;
