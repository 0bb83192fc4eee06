package callback_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/callback"
	"github.com/jifu-open/jifu/sdk/opensign"
)

// The vector is computed independently with
//
//	printf '%s' '1767225600.{"id":"evt_1"}' | openssl dgst -sha256 -hmac whsec_test -hex
const (
	vecSecret = "whsec_test"
	vecTime   = 1767225600
	vecBody   = `{"id":"evt_1"}`
	vecMAC    = "45b40331de0325606dc5400202ade162460fbe48daf9401adfdcd0d7b4f35470"
)

func TestSignVector(t *testing.T) {
	got := callback.Sign([]byte(vecSecret), time.Unix(vecTime, 0), []byte(vecBody))
	if want := "t=1767225600,v1=" + vecMAC; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	secret := []byte(vecSecret)
	at := time.Unix(vecTime, 0)
	good := "t=1767225600,v1=" + vecMAC
	other := strings.Repeat("0", 64)
	tests := []struct {
		name   string
		secret []byte
		header string
		body   string
		now    time.Time
		code   string
	}{
		{"valid", secret, good, vecBody, at, ""},
		{"valid, receiver clock 4m late", secret, good, vecBody, at.Add(4 * time.Minute), ""},
		{"valid, receiver clock 4m early", secret, good, vecBody, at.Add(-4 * time.Minute), ""},
		{"valid with spaces and unknown scheme", secret, " t=1767225600 , v0=zz, v1=" + vecMAC, vecBody, at, ""},
		{"upper-case hex", secret, "t=1767225600,v1=" + strings.ToUpper(vecMAC), vecBody, at, ""},
		{"rotation: second v1 matches", secret, "t=1767225600,v1=" + other + ",v1=" + vecMAC, vecBody, at, ""},
		{"tampered body", secret, good, `{"id":"evt_2"}`, at, opensign.CodeMismatch},
		{"body with extra space", secret, good, vecBody + " ", at, opensign.CodeMismatch},
		{"wrong secret", []byte("whsec_other"), good, vecBody, at, opensign.CodeMismatch},
		{"tampered timestamp", secret, "t=1767225601,v1=" + vecMAC, vecBody, at, opensign.CodeMismatch},
		{"stale", secret, good, vecBody, at.Add(6 * time.Minute), opensign.CodeStale},
		{"future", secret, good, vecBody, at.Add(-6 * time.Minute), opensign.CodeStale},
		{"empty header", secret, "", vecBody, at, opensign.CodeMissing},
		{"no v1", secret, "t=1767225600", vecBody, at, opensign.CodeMissing},
		{"no t", secret, "v1=" + vecMAC, vecBody, at, opensign.CodeMissing},
		{"two t", secret, "t=1,t=1767225600,v1=" + vecMAC, vecBody, at, opensign.CodeMissing},
		{"short v1", secret, "t=1767225600,v1=abc", vecBody, at, opensign.CodeMissing},
		{"non-hex v1", secret, "t=1767225600,v1=" + strings.Repeat("g", 64), vecBody, at, opensign.CodeMissing},
		{"negative t", secret, "t=-5,v1=" + vecMAC, vecBody, at, opensign.CodeMissing},
		{"t with sign", secret, "t=+1767225600,v1=" + vecMAC, vecBody, at, opensign.CodeMissing},
		{"item without =", secret, "t=1767225600;v1=" + vecMAC, vecBody, at, opensign.CodeMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := callback.Verify(tt.secret, tt.header, []byte(tt.body), tt.now, 0)
			if got := jifu.ErrorCode(err); got != tt.code {
				t.Errorf("Verify code = %q (%v), want %q", got, err, tt.code)
			}
		})
	}
}

// FuzzParseSignature: the parser never panics, and what it accepts renders
// back to a header it parses the same way.
func FuzzParseSignature(f *testing.F) {
	for _, s := range []string{"t=1767225600,v1=" + vecMAC, "", "t=1", "v1=,t=", "t=1,v1=" + vecMAC + ",v1=" + vecMAC, ",,,", "t==,v1=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		s, err := callback.ParseSignature(h)
		if err != nil {
			if jifu.ErrorCode(err) != opensign.CodeMissing {
				t.Fatalf("code %q for %q", jifu.ErrorCode(err), h)
			}
			return
		}
		if s.Timestamp <= 0 || len(s.V1) == 0 {
			t.Fatalf("accepted %q as %+v", h, s)
		}
		again := "t=" + strconv.FormatInt(s.Timestamp, 10)
		for _, v := range s.V1 {
			again += ",v1=" + v
		}
		s2, err := callback.ParseSignature(again)
		if err != nil || s2.Timestamp != s.Timestamp || strings.Join(s2.V1, ",") != strings.Join(s.V1, ",") {
			t.Fatalf("round trip of %q: %+v, %v", h, s2, err)
		}
	})
}

// TestDocsVerifyScript runs the openssl script of docs/CALLBACKS.md on a
// callback signed now, on a tampered body and on an old signature.
func TestDocsVerifyScript(t *testing.T) {
	for _, tool := range []string{"bash", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (make tools installs it): %v", tool, err)
		}
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "CALLBACKS.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```bash\n# verify-callback\n")
	script, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/CALLBACKS.md has no verify-callback script")
	}
	body := []byte(`{"id":"evt_1","data":{"note":"a \"quoted\" line\nand another"}}` + "\n")
	secret := []byte("whsec_docs")
	tests := []struct {
		name, header, body, want string
	}{
		{"fresh", callback.Sign(secret, time.Now(), body), string(body), "valid"},
		{"rotation, second v1", "t=" + strconv.FormatInt(time.Now().Unix(), 10) + ",v1=" + strings.Repeat("0", 64) + "," +
			strings.Split(callback.Sign(secret, time.Now(), body), ",")[1], string(body), "valid"},
		{"tampered", callback.Sign(secret, time.Now(), body), strings.Replace(string(body), "evt_1", "evt_2", 1), "invalid"},
		{"old", callback.Sign(secret, time.Now().Add(-10*time.Minute), body), string(body), "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "body.json"), []byte(tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "SIG="+tt.header, "SECRET="+string(secret))
			out, err := cmd.CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != tt.want {
				t.Errorf("script: %v: %s, want %s", err, out, tt.want)
			}
		})
	}
}
