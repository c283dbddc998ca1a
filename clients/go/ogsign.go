// Package ogsign signs ogproxy Open Graph image URLs.
//
// The message is path + "?" + canonical query; sig is unpadded base64url of
// HMAC-SHA256(HMAC-SHA256(secret, "ogproxy.url.v1"), message). See the ogproxy README.
//
// CheckParams (or SignURLChecked) refuses before signing what the server refuses
// whatever the template; spec/vectors.json ("limits") holds the cases.
package ogsign

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"unicode/utf8"
)

const (
	salt        = "ogproxy.url.v1"
	defaultPath = "/og.png"
)

// escape percent-encodes the UTF-8 bytes of s, leaving only A-Z a-z 0-9 - . _ ~.
// (url.QueryEscape writes "+" for a space and url.PathEscape keeps sub-delimiters.)
func escape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// CanonicalQuery encodes the pairs, sorts them by encoded name then encoded value
// and joins them as name=value with "&". A pair named "sig" is an error.
func CanonicalQuery(params [][2]string) (string, error) {
	enc := make([][2]string, len(params))
	for i, p := range params {
		if p[0] == "sig" {
			return "", errors.New(`ogsign: "sig" is reserved for the signature`)
		}
		enc[i] = [2]string{escape(p[0]), escape(p[1])}
	}
	sort.Slice(enc, func(i, j int) bool {
		if enc[i][0] != enc[j][0] {
			return enc[i][0] < enc[j][0]
		}
		return enc[i][1] < enc[j][1]
	})
	parts := make([]string, len(enc))
	for i, p := range enc {
		parts[i] = p[0] + "=" + p[1]
	}
	return strings.Join(parts, "&"), nil
}

func mac(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// Signature returns the sig for path + "?" + canonicalQuery, with secret as the key itself.
func Signature(secret, path, canonicalQuery string) string {
	key := mac([]byte(secret), salt)
	return base64.RawURLEncoding.EncodeToString(mac(key, path+"?"+canonicalQuery))
}

// MinSecretBytes is the shortest secret the server accepts, in bytes of UTF-8.
const MinSecretBytes = 16

// SigningSecret returns the key that signs, from a secret read the way the server
// reads OGPROXY_SECRET: comma-separated, each item trimmed of ASCII whitespace (space,
// tab, CR, LF, VT, FF), empty items dropped, the last one signs. Every item must be
// at least MinSecretBytes long.
func SigningSecret(secret string) (string, error) {
	var items []string
	for _, part := range strings.Split(secret, ",") {
		if item := strings.Trim(part, " \t\n\r\v\f"); item != "" {
			items = append(items, item)
		}
	}
	for _, item := range items {
		if len(item) < MinSecretBytes {
			return "", errors.New("ogsign: a signing secret must be at least 16 bytes")
		}
	}
	if len(items) == 0 {
		return "", errors.New("ogsign: a signing secret must be at least 16 bytes (none given)")
	}
	return items[len(items)-1], nil
}

// SignURL returns base + "?" + canonical query + "&sig=" + signature. base is the
// image endpoint (https://og.example.com/og.png); a bare origin gets /og.png.
// secret may be the value of OGPROXY_SECRET as it is (see SigningSecret).
// Parameters may repeat. A base with a query or fragment is an error.
func SignURL(base, secret string, params [][2]string) (string, error) {
	secret, err := SigningSecret(secret)
	if err != nil {
		return "", err
	}
	if strings.ContainsAny(base, "?#") {
		return "", errors.New("ogsign: base must not carry a query or fragment")
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	path := u.EscapedPath()
	if path == "" || path == "/" {
		path = defaultPath
		base = strings.TrimSuffix(base, "/") + defaultPath
	}
	query, err := CanonicalQuery(params)
	if err != nil {
		return "", err
	}
	return base + "?" + query + "&sig=" + Signature(secret, path, query), nil
}

// What the server refuses whatever the template.
const (
	MaxTitle      = 200  // characters (code points), after trimming
	MaxSubtitle   = 300  // characters (code points), after trimming
	MaxQueryBytes = 4096 // the whole signed query, sig included; the server answers 414 beyond
)

var limits = map[string]int{"title": MaxTitle, "subtitle": MaxSubtitle}

// LimitError is what the server would refuse: parameter Param (400), or the whole
// query's length when Param is "" (414).
type LimitError struct {
	Param, Problem string
}

func (e *LimitError) Error() string {
	if e.Param == "" {
		return "ogsign: " + e.Problem
	}
	return fmt.Sprintf("ogsign: invalid parameter '%s': %s", e.Param, e.Problem)
}

// isSpace is what the server trims at both ends (Python's str.strip): unlike
// unicode.IsSpace it includes U+001C-001F.
func isSpace(r rune) bool {
	switch {
	case r >= '\t' && r <= '\r', r >= 0x1c && r <= ' ', r == 0x85, r == 0xa0, r == 0x1680:
		return true
	case r >= 0x2000 && r <= 0x200a, r == 0x2028, r == 0x2029, r == 0x202f, r == 0x205f:
		return true
	}
	return r == 0x3000
}

func isControl(r rune) bool {
	return r <= 0x1f || (r >= 0x7f && r <= 0x9f) || r == 0x2028 || r == 0x2029
}

// CheckParams returns a *LimitError for what the server refuses whatever the template:
// a value that is not UTF-8 or holds a control character (every parameter but html),
// a title over MaxTitle or a subtitle over MaxSubtitle characters once trimmed, a
// parameter given twice, no title without html, a signed query over MaxQueryBytes.
// The server also NFC-normalises before counting, which the standard library cannot:
// decomposed text (e + U+0301) counts longer here, so may be refused first.
// What depends on the template is the server's to check (`ogproxy sign` checks it all).
func CheckParams(params [][2]string) error {
	seen := map[string]string{}
	for _, p := range params {
		name := p[0]
		if _, twice := seen[name]; twice {
			return &LimitError{name, "given more than once"}
		}
		if !utf8.ValidString(p[1]) {
			return &LimitError{name, "is not valid UTF-8"}
		}
		value := strings.TrimFunc(p[1], isSpace)
		seen[name] = value
		if name == "html" {
			continue
		}
		if strings.IndexFunc(value, isControl) >= 0 {
			return &LimitError{name, "contains control characters"}
		}
		n := utf8.RuneCountInString(value)
		if limit, ok := limits[name]; ok && n > limit {
			return &LimitError{name, fmt.Sprintf("is %d characters long, at most %d allowed", n, limit)}
		}
	}
	if _, html := seen["html"]; !html {
		if title, ok := seen["title"]; !ok {
			return &LimitError{"title", "is required"}
		} else if title == "" {
			return &LimitError{"title", "must not be empty"}
		}
	}
	query, err := CanonicalQuery(params)
	if err != nil {
		return err
	}
	if n := len(query) + len("&sig=") + 43; n > MaxQueryBytes {
		return &LimitError{"", fmt.Sprintf("query string too long: %d bytes signed, at most %d allowed", n, MaxQueryBytes)}
	}
	return nil
}

// SignURLChecked is SignURL after CheckParams: a *LimitError for what the server
// would refuse.
func SignURLChecked(base, secret string, params [][2]string) (string, error) {
	if err := CheckParams(params); err != nil {
		return "", err
	}
	return SignURL(base, secret, params)
}
