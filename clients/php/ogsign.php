<?php
// Signs ogproxy Open Graph image URLs (PHP 7.4+, no extensions beyond the default hash).
//
// message = path . "?" . canonical query; sig = unpadded base64url of
// HMAC-SHA256(HMAC-SHA256(secret, "ogproxy.url.v1"), message). See the ogproxy README.

declare(strict_types=1);

/**
 * The canonical query: names and values percent-encoded (rawurlencode is RFC 3986:
 * it leaves exactly A-Z a-z 0-9 - . _ ~, with upper-case hex), sorted by encoded name
 * then encoded value (byte order), joined as name=value with "&".
 *
 * @param array $params a list of [name, value] pairs (names may repeat) or an
 *                      associative array; null values are left out.
 */
function ogproxy_canonical_query(array $params): string
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
        $pairs[] = [rawurlencode((string) $name), rawurlencode((string) $value)];
    }
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

/**
 * $base with the canonical query and its sig appended. $base is the image endpoint
 * (https://og.example.com/og.png); a bare origin gets /og.png. $secret may be the value
 * of OGPROXY_SECRET as it is (see ogproxy_signing_secret). A query or fragment in $base
 * is an error.
 */
function ogproxy_sign_url(string $base, string $secret, array $params): string
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
    $query = ogproxy_canonical_query($params);
    return $base . '?' . $query . '&sig=' . ogproxy_signature($secret, $path, $query);
}
