package ogsign

import (
	"encoding/json"
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
