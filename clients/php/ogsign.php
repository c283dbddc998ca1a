<?php
// Signs ogproxy Open Graph image URLs (PHP 7.4+, no extensions beyond the default hash).
//
// message = path . "?" . canonical query; sig = unpadded base64url of
// HMAC-SHA256(HMAC-SHA256(secret, "ogproxy.url.v1"), message). See the ogproxy README.

declare(strict_types=1);

/**
 * The parameters as a list of [name, value] strings: $params is a list of [name, value]
 * pairs (names may repeat) or an associative array; null values are left out, booleans
 * are 'true' and 'false'.
 */
function ogproxy_pairs(array $params): array
{
    $isList = $params === [] || array_keys($params) === range(0, count($params) - 1);
    $pairs = [];
    foreach ($params as $name => $value) {
        if ($isList) {
            if (!is_array($value) || count($value) !== 2) {
                throw new InvalidArgumentException('a list of params must hold [name, value] pairs');
            }
            [$name, $value] = array_values($value);
        }
        if ($value === null) {
            continue;
        }
        if (is_bool($value)) {
            $value = $value ? 'true' : 'false';
        } elseif (!is_scalar($value)) {
            throw new InvalidArgumentException("the value of '$name' must be a scalar or null");
        }
        if ((string) $name === 'sig') {
            throw new InvalidArgumentException("'sig' is reserved for the signature");
        }
        $pairs[] = [(string) $name, (string) $value];
    }
    return $pairs;
}

/**
 * The canonical query: names and values percent-encoded (rawurlencode is RFC 3986:
 * it leaves exactly A-Z a-z 0-9 - . _ ~, with upper-case hex), sorted by encoded name
 * then encoded value (byte order), joined as name=value with "&".
 *
 * @param array $params see ogproxy_pairs
 */
function ogproxy_canonical_query(array $params): string
{
    $pairs = array_map(fn ($p) => [rawurlencode($p[0]), rawurlencode($p[1])], ogproxy_pairs($params));
    usort($pairs, fn ($a, $b) => strcmp($a[0], $b[0]) ?: strcmp($a[1], $b[1]));
    return implode('&', array_map(fn ($p) => $p[0] . '=' . $p[1], $pairs));
}

/** The sig for $path . "?" . $canonicalQuery, with $secret as the key itself. */
function ogproxy_signature(string $secret, string $path, string $canonicalQuery): string
{
    if ($secret === '') {
        throw new InvalidArgumentException('the secret must not be empty');
    }
    $key = hash_hmac('sha256', 'ogproxy.url.v1', $secret, true);
    $mac = hash_hmac('sha256', $path . '?' . $canonicalQuery, $key, true);
    return rtrim(strtr(base64_encode($mac), '+/', '-_'), '=');
}

/**
 * The key that signs, from a secret read the way the server reads OGPROXY_SECRET:
 * comma-separated, each item trimmed of ASCII whitespace (space, tab, CR, LF, VT, FF),
 * empty items dropped, the last one signs. Every item must be at least 16 bytes.
 */
function ogproxy_signing_secret(string $secret): string
{
    $items = array_values(array_filter(
        array_map(fn ($s) => trim($s, " \t\n\r\v\f"), explode(',', $secret)),
        fn ($s) => $s !== ''
    ));
    foreach ($items as $item) {
        if (strlen($item) < 16) {
            throw new InvalidArgumentException('a signing secret must be at least 16 bytes');
        }
    }
    if ($items === []) {
        throw new InvalidArgumentException('a signing secret must be at least 16 bytes (none given)');
    }
    return $items[count($items) - 1];
}

/** What the server would refuse: parameter $param (400), or the query's length when null (414). */
class OgproxyLimitException extends InvalidArgumentException
{
    public ?string $param;

    public function __construct(?string $param, string $problem)
    {
        $this->param = $param;
        parent::__construct($param === null ? $problem : "Invalid parameter '$param': $problem");
    }
}

const OGPROXY_MAX_TITLE = 200;          // characters (code points), after trimming
const OGPROXY_MAX_SUBTITLE = 300;
const OGPROXY_MAX_QUERY_BYTES = 4096;   // the whole signed query, sig included; 414 beyond
// What the server trims at both ends (Python's str.strip), and the control characters.
const OGPROXY_SPACE = '[\t\n\x{0b}\x{0c}\r\x{1c}-\x{20}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]';
const OGPROXY_CONTROL = '/[\x{00}-\x{1f}\x{7f}-\x{9f}\x{2028}\x{2029}]/u';

/**
 * Throws OgproxyLimitException for what the server refuses whatever the template: a
 * value that is not UTF-8 or holds a control character (every parameter but html), a
 * title over 200 or a subtitle over 300 characters once trimmed (and NFC-normalised,
 * with the intl extension; without it decomposed text counts longer), a parameter
 * given twice, no title without html, a signed query over 4 KiB. What depends on the
 * template is the server's to check (`ogproxy sign` checks it all).
 */
function ogproxy_check_params(array $params): void
{
    $pairs = ogproxy_pairs($params);
    $seen = [];
    foreach ($pairs as [$name, $value]) {
        if (array_key_exists($name, $seen)) {
            throw new OgproxyLimitException($name, 'given more than once');
        }
        if (class_exists('Normalizer') && preg_match('//u', $value)) {
            $value = Normalizer::normalize($value, Normalizer::FORM_C);
        }
        $value = preg_replace('/^' . OGPROXY_SPACE . '+|' . OGPROXY_SPACE . '+$/u', '', $value);
        if ($value === null) {
            throw new OgproxyLimitException($name, 'is not valid UTF-8');
        }
        $seen[$name] = $value;
        if ($name === 'html') {
            continue;
        }
        if (preg_match(OGPROXY_CONTROL, $value)) {
            throw new OgproxyLimitException($name, 'contains control characters');
        }
        $limit = ['title' => OGPROXY_MAX_TITLE, 'subtitle' => OGPROXY_MAX_SUBTITLE][$name] ?? null;
        $length = preg_match_all('/./su', $value);
        if ($limit !== null && $length > $limit) {
            throw new OgproxyLimitException($name, "is $length characters long, at most $limit allowed");
        }
    }
    if (!array_key_exists('html', $seen) && ($seen['title'] ?? '') === '') {
        throw new OgproxyLimitException('title', array_key_exists('title', $seen) ? 'must not be empty' : 'is required');
    }
    $bytes = strlen(ogproxy_canonical_query($pairs)) + strlen('&sig=') + 43;
    if ($bytes > OGPROXY_MAX_QUERY_BYTES) {
        throw new OgproxyLimitException(null, "Query string too long: $bytes bytes signed, at most " . OGPROXY_MAX_QUERY_BYTES . ' allowed');
    }
}

/**
 * $base with the canonical query and its sig appended. $base is the image endpoint
 * (https://og.example.com/og.png); a bare origin gets /og.png. $secret may be the value
 * of OGPROXY_SECRET as it is (see ogproxy_signing_secret). A query or fragment in $base
 * is an error. $check: throw OgproxyLimitException for what the server would refuse
 * (see ogproxy_check_params).
 */
function ogproxy_sign_url(string $base, string $secret, array $params, bool $check = false): string
{
    $secret = ogproxy_signing_secret($secret);
    if (strpbrk($base, '?#') !== false) {
        throw new InvalidArgumentException('base must not carry a query or fragment');
    }
    $path = parse_url($base, PHP_URL_PATH);
    if ($path === false) {
        throw new InvalidArgumentException("not a URL: $base");
    }
    if ($path === null || $path === '' || $path === '/') {
        $path = '/og.png';
        $base = rtrim($base, '/') . $path;
    }
    if ($check) {
        ogproxy_check_params($params);
    }
    $query = ogproxy_canonical_query($params);
    return $base . '?' . $query . '&sig=' . ogproxy_signature($secret, $path, $query);
}
