// Package ogsign signs ogproxy Open Graph image URLs.
//
// The message is path + "?" + canonical query; sig is unpadded base64url of
// HMAC-SHA256(HMAC-SHA256(secret, "ogproxy.url.v1"), message). See the ogproxy README.
package ogsign

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"sort"
	"strings"
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
