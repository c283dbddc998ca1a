package ogsign

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

type vector struct {
	Name           string      `json:"name"`
	Secret         string      `json:"secret"`
	Path           string      `json:"path"`
	Params         [][2]string `json:"params"`
	CanonicalQuery string      `json:"canonical_query"`
	Sig            string      `json:"sig"`
}

func TestVectors(t *testing.T) {
	data, err := os.ReadFile("../../spec/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct{ Vectors []vector }
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range file.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			query, err := CanonicalQuery(v.Params)
			if err != nil || query != v.CanonicalQuery {
				t.Fatalf("CanonicalQuery = %q, %v; want %q", query, err, v.CanonicalQuery)
			}
			if sig := Signature(v.Secret, v.Path, query); sig != v.Sig {
				t.Errorf("Signature = %q; want %q", sig, v.Sig)
			}
			got, err := SignURL("https://og.example.com"+v.Path, v.Secret, v.Params)
			want := "https://og.example.com" + v.Path + "?" + v.CanonicalQuery + "&sig=" + v.Sig
			if err != nil || got != want {
				t.Errorf("SignURL = %q, %v; want %q", got, err, want)
			}
		})
	}
}

type secretCase struct {
	Name          string      `json:"name"`
	Env           string      `json:"env"`
	SigningSecret string      `json:"signing_secret"`
	Path          string      `json:"path"`
	Params        [][2]string `json:"params"`
	Sig           string      `json:"sig"`
	Error         bool        `json:"error"`
}

func TestSecretRule(t *testing.T) {
	data, err := os.ReadFile("../../spec/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Secrets struct{ Cases []secretCase }
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Secrets.Cases) == 0 {
		t.Fatal("no secret cases")
	}
	for _, c := range file.Secrets.Cases {
		t.Run(c.Name, func(t *testing.T) {
			got, err := SigningSecret(c.Env)
			if c.Error {
				if err == nil {
					t.Fatalf("SigningSecret(%q) = %q; want an error", c.Env, got)
				}
				return
			}
			if err != nil || got != c.SigningSecret {
				t.Fatalf("SigningSecret(%q) = %q, %v; want %q", c.Env, got, err, c.SigningSecret)
			}
			url, err := SignURL("https://og.example.com"+c.Path, c.Env, c.Params)
			if err != nil || !strings.HasSuffix(url, "&sig="+c.Sig) {
				t.Errorf("SignURL = %q, %v; want sig %q", url, err, c.Sig)
			}
		})
	}
}

func TestBareOrigin(t *testing.T) {
	params := [][2]string{{"title", "x"}}
	want, _ := SignURL("https://og.example.com/og.png", "s3cret-s3cret-s3cret", params)
	for _, base := range []string{"https://og.example.com", "https://og.example.com/"} {
		if got, err := SignURL(base, "s3cret-s3cret-s3cret", params); err != nil || got != want {
			t.Errorf("SignURL(%q) = %q, %v; want %q", base, got, err, want)
		}
	}
}

func TestErrors(t *testing.T) {
	ok := [][2]string{{"title", "x"}}
	cases := []struct {
		base, secret string
		params       [][2]string
	}{
		{"https://og.example.com/og.png?v=1", "s3cret-s3cret-s3cret", ok},
		{"https://og.example.com/og.png#x", "s3cret-s3cret-s3cret", ok},
		{"https://og.example.com/og.png", "s3cret-s3cret-s3cret", [][2]string{{"sig", "abc"}}},
		{"https://og.example.com/og.png", "", ok},
		{"https://og.example.com/og.png", "short", ok},
	}
	for _, c := range cases {
		if got, err := SignURL(c.base, c.secret, c.params); err == nil {
			t.Errorf("SignURL(%q, %q, %q) = %q; want an error", c.base, c.secret, c.params, got)
		}
	}
}

func TestEscape(t *testing.T) {
	if got := escape("!'()* ~"); got != "%21%27%28%29%2A%20~" {
		t.Errorf("escape = %q", got)
	}
	for c := 0; c < 256; c++ {
		s := escape(string([]byte{byte(c)}))
		unreserved := strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~", rune(c))
		if unreserved != (len(s) == 1) {
			t.Errorf("escape(%#x) = %q", c, s)
		}
	}
}

type limitCase struct {
	Name    string      `json:"name"`
	Params  [][2]string `json:"params"`
	Refused *string     `json:"refused"`
	NFC     bool        `json:"nfc"`
}

func TestLimits(t *testing.T) {
	data, err := os.ReadFile("../../spec/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Limits struct{ Cases []limitCase }
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Limits.Cases) == 0 {
		t.Fatal("no limit cases")
	}
	const base, secret = "https://og.example.com/og.png", "s3cret-s3cret-s3cret"
	for _, c := range file.Limits.Cases {
		t.Run(c.Name, func(t *testing.T) {
			if c.NFC {
				t.Skip("Go's standard library has no NFC: the check counts code points as given")
			}
			unchecked, err := SignURL(base, secret, c.Params)
			if err != nil {
				t.Fatalf("SignURL: %v", err) // unchecked unless asked: signs anything
			}
			checked, err := SignURLChecked(base, secret, c.Params)
			if c.Refused == nil {
				if err := CheckParams(c.Params); err != nil || checked != unchecked {
					t.Fatalf("CheckParams = %v; SignURLChecked = %q, want %q", err, checked, unchecked)
				}
				return
			}
			want := *c.Refused
			if want == "query" {
				want = ""
			}
			var limit *LimitError
			if !errors.As(CheckParams(c.Params), &limit) || limit.Param != want {
				t.Fatalf("CheckParams = %v; want a LimitError for %q", CheckParams(c.Params), want)
			}
			if !errors.As(err, &limit) {
				t.Fatalf("SignURLChecked = %q, %v; want a LimitError", checked, err)
			}
		})
	}
}

func TestLimitErrorsSayWhatTheServerSays(t *testing.T) {
	err := CheckParams([][2]string{{"title", strings.Repeat("x", 201)}})
	want := "ogsign: invalid parameter 'title': is 201 characters long, at most 200 allowed"
	if err == nil || err.Error() != want {
		t.Errorf("CheckParams = %v; want %q", err, want)
	}
	if err := CheckParams([][2]string{{"title", "caf\xe9"}}); err == nil {
		t.Errorf("CheckParams accepted a title that is not UTF-8")
	}
}
