<?php
// php clients/php/test.php: checks every vector in spec/vectors.json; exits 1 on failure.

declare(strict_types=1);

require __DIR__ . '/ogsign.php';

$failures = 0;
$checks = 0;
function check(bool $ok, string $what): void
{
    global $failures, $checks;
    $checks++;
    if (!$ok) {
        $failures++;
        fwrite(STDERR, "FAIL: $what\n");
    }
}
function throws(callable $f): bool
{
    try {
        $f();
    } catch (InvalidArgumentException $e) {
        return true;
    }
    return false;
}

$file = json_decode(file_get_contents(__DIR__ . '/../../spec/vectors.json'), true, 512, JSON_THROW_ON_ERROR);
check(count($file['vectors']) > 0, 'vectors.json has vectors');
foreach ($file['vectors'] as $v) {
    $query = ogproxy_canonical_query($v['params']);
    check($query === $v['canonical_query'], "{$v['name']}: canonical query $query");
    $sig = ogproxy_signature($v['secret'], $v['path'], $query);
    check($sig === $v['sig'], "{$v['name']}: sig $sig");
    $url = ogproxy_sign_url('https://og.example.com' . $v['path'], $v['secret'], $v['params']);
    $want = "https://og.example.com{$v['path']}?{$v['canonical_query']}&sig={$v['sig']}";
    check($url === $want, "{$v['name']}: url $url");
}

check(count($file['secrets']['cases']) > 0, 'vectors.json has secret cases');
foreach ($file['secrets']['cases'] as $c) {
    if (!empty($c['error'])) {
        check(throws(fn () => ogproxy_signing_secret($c['env'])), "{$c['name']}: refused");
        check(throws(fn () => ogproxy_sign_url('https://og.example.com/og.png', $c['env'], ['title' => 'x'])), "{$c['name']}: url refused");
        continue;
    }
    check(ogproxy_signing_secret($c['env']) === $c['signing_secret'], "{$c['name']}: signing secret");
    $url = ogproxy_sign_url('https://og.example.com' . $c['path'], $c['env'], $c['params']);
    check(substr($url, -strlen('&sig=' . $c['sig'])) === '&sig=' . $c['sig'], "{$c['name']}: url $url");
}

check(count($file['limits']['cases']) > 0, 'vectors.json has limit cases');
foreach ($file['limits']['cases'] as $c) {
    if (!empty($c['nfc']) && !class_exists('Normalizer')) {
        continue; // no intl extension: the check counts code points as given
    }
    $base = 'https://og.example.com/og.png';
    $unchecked = ogproxy_sign_url($base, 's3cret-s3cret-s3cret', $c['params']); // signs anything
    if ($c['refused'] === null) {
        check(!throws(fn () => ogproxy_check_params($c['params'])), "{$c['name']}: accepted");
        check(ogproxy_sign_url($base, 's3cret-s3cret-s3cret', $c['params'], true) === $unchecked, "{$c['name']}: signed");
        continue;
    }
    $param = $c['refused'] === 'query' ? null : $c['refused'];
    try {
        ogproxy_check_params($c['params']);
        check(false, "{$c['name']}: refused");
    } catch (OgproxyLimitException $e) {
        check($e->param === $param, "{$c['name']}: refused, naming " . var_export($e->param, true));
    }
    check(throws(fn () => ogproxy_sign_url($base, 's3cret-s3cret-s3cret', $c['params'], true)), "{$c['name']}: url refused");
}
try {
    ogproxy_check_params(['title' => str_repeat('x', 201)]);
} catch (OgproxyLimitException $e) {
    check($e->getMessage() === "Invalid parameter 'title': is 201 characters long, at most 200 allowed", 'message: ' . $e->getMessage());
}
check(throws(fn () => ogproxy_check_params(['title' => "caf\xe9"])), 'not UTF-8 refused');

$secret = 's3cret-s3cret-s3cret';
$want = ogproxy_sign_url('https://og.example.com/og.png', $secret, [['title', 'x']]);
check(ogproxy_sign_url('https://og.example.com', $secret, [['title', 'x']]) === $want, 'bare origin');
check(ogproxy_sign_url('https://og.example.com/', $secret, ['title' => 'x']) === $want, 'bare origin with /, assoc');
check(ogproxy_sign_url('https://og.example.com', $secret, ['title' => 'x', 'subtitle' => null]) === $want, 'null skipped');
check(ogproxy_canonical_query(['title' => "!'()*"]) === 'title=%21%27%28%29%2A', "!'()* encoded");
check(ogproxy_canonical_query(['palette' => true, 'n' => 3]) === 'n=3&palette=true', 'scalars');
check(throws(fn () => ogproxy_sign_url('https://og.example.com/og.png?v=1', $secret, ['title' => 'x'])), 'query rejected');
check(throws(fn () => ogproxy_sign_url('https://og.example.com/og.png#x', $secret, ['title' => 'x'])), 'fragment rejected');
check(throws(fn () => ogproxy_sign_url('https://og.example.com/og.png', $secret, [['sig', 'x']])), 'sig rejected');
check(throws(fn () => ogproxy_sign_url('https://og.example.com/og.png', $secret, ['sig' => 'x'])), 'sig rejected, assoc');
check(throws(fn () => ogproxy_sign_url('https://og.example.com/og.png', '', ['title' => 'x'])), 'empty secret rejected');

echo $failures ? "$failures of $checks checks failed\n" : "all $checks checks passed\n";
exit($failures ? 1 : 0);
