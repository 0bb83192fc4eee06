package cardpay_test

import (
	"crypto/rand"
	"testing"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/cardpay/dukpt"
	"github.com/jifu-open/jifu/host/database/dbtest"
)

// SeedBDK is idempotent, refuses another key, and seals a demo key again
// for a service with another master key, whose readers then work.
func TestSeedBDK(t *testing.T) {
	e := setup(t)
	key, _ := dukpt.ParseKey("00112233445566778899AABBCCDDEEFF")
	for i := 0; i < 2; i++ {
		if err := e.svc.SeedBDK(e.ctx, "seed-aes", cardpay.SchemeAES, key); err != nil {
			t.Fatal(err)
		}
	}
	other, _ := dukpt.ParseKey("FFEEDDCCBBAA99887766554433221100")
	if err := e.svc.SeedBDK(e.ctx, "seed-aes", cardpay.SchemeAES, other); jifu.ErrorCode(err) != jifu.CodeConflict {
		t.Fatalf("another key: %v", err)
	}
	if err := e.svc.SeedBDK(e.ctx, "seed-aes", cardpay.SchemeTDES, key); jifu.ErrorCode(err) != jifu.CodeConflict {
		t.Fatalf("another scheme: %v", err)
	}
	sealed := func() string {
		var b []byte
		if err := dbtest.Pool(t).QueryRow(e.ctx, `SELECT key_enc FROM card_bdks WHERE id = 'seed-aes'`).Scan(&b); err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	first := sealed()
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	svc2, err := cardpay.New(dbtest.Pool(t), master, nil, cardpay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Another master key: sealed again (the row changes), then kept (it
	// opens under that key now).
	if err := svc2.SeedBDK(e.ctx, "seed-aes", cardpay.SchemeAES, key); err != nil {
		t.Fatal(err)
	}
	second := sealed()
	if second == first {
		t.Fatal("not sealed again under the other master key")
	}
	if err := svc2.SeedBDK(e.ctx, "seed-aes", cardpay.SchemeAES, key); err != nil || sealed() != second {
		t.Fatalf("sealed again although it opens: %v", err)
	}
	// A different key under the new master key is still a conflict.
	if err := svc2.SeedBDK(e.ctx, "seed-aes", cardpay.SchemeAES, other); jifu.ErrorCode(err) != jifu.CodeConflict {
		t.Fatalf("another key: %v", err)
	}
}
