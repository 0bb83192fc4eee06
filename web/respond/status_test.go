package respond

import "testing"

func TestStatusOfOpenAPICodes(t *testing.T) {
	for code, want := range map[string]int{"signature_missing": 401, "timestamp_expired": 401, "app_key_unknown": 401,
		"signature_mismatch": 401, "nonce_replayed": 409, "rate_limited": 429} {
		if got := Status(code); got != want {
			t.Errorf("Status(%s) = %d, want %d", code, got, want)
		}
	}
}
