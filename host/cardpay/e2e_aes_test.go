package cardpay_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/cardpay/dukpt"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/sdk/cardreader"
)

// The ANSI X9.24-3-2017 test BDK (AES-128).
var testAESBDK, _ = dukpt.ParseKey("FEDCBA9876543210F1F1F1F1F1F1F1F1")

// aesMerchant registers a merchant with one AES DUKPT reader and returns
// the reader and its KSN with the counter zeroed.
func (e *env) aesMerchant(t *testing.T) (r *cardreader.Reader, ksn dukpt.AESKSN, mid, secret string) {
	t.Helper()
	if err := e.svc.RegisterBDK(e.ctx, "bdk-aes", cardpay.SchemeAES, testAESBDK); err != nil && jifu.ErrorCode(err) != jifu.CodeConflict {
		t.Fatal(err)
	}
	id := e.nextID.Add(1)
	org := "ORG1"
	mid, secret = fmt.Sprintf("M%05d", id), fmt.Sprintf("pay-secret-%016d", id)
	if err := e.svc.RegisterMerchant(e.ctx, cardpay.Merchant{OrgID: org, MerchantID: mid, Name: "AES " + mid,
		PaySecret: secret, AcquirerMID: fmt.Sprintf("8983100%08d", id)}); err != nil {
		t.Fatal(err)
	}
	ksn, _ = dukpt.ParseAESKSN(fmt.Sprintf("A1B2C3D4%08X00000000", id))
	if err := e.svc.RegisterTerminal(e.ctx, cardpay.Terminal{KSN: ksn.String(), OrgID: org, MerchantID: mid, Type: cardpay.TerminalBluetooth,
		BDKID: "bdk-aes", AcquirerTID: fmt.Sprintf("A%07d", id)}); err != nil {
		t.Fatal(err)
	}
	r, err := cardreader.New(cardreader.Config{OrgID: org, MerchantID: mid, PaySecret: secret,
		IPEK: dukpt.AESInitialKey(testAESBDK, ksn), AES: true, AESKSN: ksn})
	if err != nil {
		t.Fatal(err)
	}
	return r, ksn, mid, secret
}

// An AES DUKPT reader pays through the HTTP endpoint to the simulator.
func TestAESReader(t *testing.T) {
	e := setup(t)
	r, ksn, mid, secret := e.aesMerchant(t)

	t.Run("registration checks the scheme", func(t *testing.T) {
		for _, c := range []struct{ ksn, bdk string }{
			{"A1B2C3D4E5F6000000000000", "bdk-test"}, // AES KSN, TDES BDK
			{"FFFF9876543210E00000", "bdk-aes"},      // TDES KSN, AES BDK
		} {
			err := e.svc.RegisterTerminal(e.ctx, cardpay.Terminal{KSN: c.ksn, OrgID: "ORG1", MerchantID: "M00001",
				Type: cardpay.TerminalMPOS, BDKID: c.bdk, AcquirerTID: "X0000001"})
			if jifu.ErrorCode(err) != jifu.CodeInvalid {
				t.Errorf("%s under %s: %v", c.ksn, c.bdk, err)
			}
		}
	})
	t.Run("approve with a format 4 PIN block", func(t *testing.T) {
		req := build(t, r, pay("aes-approve", 2345))
		if len(req.KSN) != 24 || len(req.CardPassword) != 32 {
			t.Fatalf("not an AES request: ksn %s", req.KSN)
		}
		st, res := e.post(t, req)
		if st != 200 || res.Status != cardpay.StatusApproved || len(res.RRN) != 12 || res.PAN != "622202*********0128" {
			t.Fatalf("%d %+v", st, res)
		}
		// Nothing of the card is kept: not the PAN, the track, the
		// encrypted tracks or the format 4 block.
		rows, err := dbtest.Pool(t).Query(e.ctx, `SELECT row_to_json(p)::text FROM card_payments p WHERE merchant_id = $1`, mid)
		if err != nil {
			t.Fatal(err)
		}
		stored, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(stored) != 1 {
			t.Fatalf("%d rows, %v", len(stored), err)
		}
		for _, f := range []string{cardPAN, "30121011234567890", req.EnTracks, req.CardPassword, strings.ToLower(req.CardPassword)} {
			if strings.Contains(stored[0], f) {
				t.Fatalf("the payment row holds card data %q…", f[:4])
			}
		}
		// The simulator checked the translated PIN block (a bad one is 55).
		if count(t, `SELECT count(*) FROM acqsim_journal WHERE rrn = $1 AND status = 'approved'`, res.RRN) != 1 {
			t.Fatal("acquirer has no approved journal row")
		}
		if count(t, `SELECT count(*) FROM card_terminals WHERE ksn_prefix = $1 AND last_counter = 1`, ksn.String()) != 1 {
			t.Fatal("the reader's counter was not recorded")
		}
	})
	t.Run("approve without PIN", func(t *testing.T) {
		p := pay("aes-nopin", 300)
		p.PIN = ""
		if st, res := e.post(t, build(t, r, p)); st != 200 || res.Status != cardpay.StatusApproved {
			t.Fatalf("%d %+v", st, res)
		}
	})
	t.Run("replayed counter", func(t *testing.T) {
		keep := r.Counter()
		r.SetCounter(0) // the next request uses counter 1 again
		st, res := e.post(t, build(t, r, pay("aes-replay", 100)))
		if st != http.StatusForbidden || res.Error == nil || res.Error.Code != jifu.CodeDenied || !strings.Contains(res.Error.Message, "replayed") {
			t.Fatalf("%d %+v", st, res)
		}
		if count(t, `SELECT count(*) FROM card_payments WHERE order_id = 'aes-replay'`) != 0 {
			t.Fatal("a replay left a payment")
		}
		r.SetCounter(keep)
	})
	t.Run("wrong key", func(t *testing.T) {
		// A reader loaded with an initial key from another BDK: its tracks
		// do not decrypt. Declined and recorded, naming the rule.
		other, _ := dukpt.ParseKey("00112233445566778899AABBCCDDEEFF")
		bad, _ := cardreader.New(cardreader.Config{OrgID: "ORG1", MerchantID: mid, PaySecret: secret,
			IPEK: dukpt.AESInitialKey(other, ksn), AES: true, AESKSN: ksn})
		bad.SetCounter(r.Counter())
		st, res := e.post(t, build(t, bad, pay("aes-wrongkey", 100)))
		if st != 200 || res.Status != cardpay.StatusDeclined || res.Rule != "card:tracks" {
			t.Fatalf("%d %+v", st, res)
		}
		r.SetCounter(bad.Counter())
	})
	t.Run("a counter above 2^31", func(t *testing.T) {
		r.SetCounter(0xFFFE0000) // next: FFFE0001, 16 one bits
		req := build(t, r, pay("aes-high", 100))
		if st, res := e.post(t, req); st != 200 || res.Status != cardpay.StatusApproved || req.KSN[16:] != "FFFE0001" {
			t.Fatalf("%s: %d %+v", req.KSN, st, res)
		}
		r.SetCounter(0x7FFFFFFF) // below the last seen, though its bit count is fine
		r.SetCounter(0x80000000)
		if st, res := e.post(t, build(t, r, pay("aes-high-replay", 100))); st != http.StatusForbidden || res.Error == nil {
			t.Fatalf("%d %+v", st, res)
		}
		r.SetCounter(0xFFFE0001)
	})
	t.Run("format 0 PIN block under an AES key", func(t *testing.T) {
		req := build(t, r, pay("aes-iso0", 100))
		req.CardPassword = req.CardPassword[:16]
		req.Sign = req.ComputeSign(secret)
		st, res := e.post(t, req)
		if st != http.StatusBadRequest || res.Error == nil || res.Error.Code != jifu.CodeInvalid {
			t.Fatalf("%d %+v", st, res)
		}
		if count(t, `SELECT count(*) FROM card_payments WHERE order_id = 'aes-iso0'`) != 0 {
			t.Fatal("a refused request left a payment")
		}
	})
	t.Run("TDES KSN of an AES reader's merchant", func(t *testing.T) {
		// A TDES reader unknown to the platform, signed correctly.
		tk, _ := dukpt.ParseKSN("FFFF0000000001E00000")
		td, _ := cardreader.New(cardreader.Config{OrgID: "ORG1", MerchantID: mid, PaySecret: secret,
			IPEK: dukpt.IPEK(testBDK, tk), KSN: tk})
		if st, res := e.post(t, build(t, td, pay("aes-unknown-tdes", 100))); st != http.StatusForbidden || res.Error.Code != jifu.CodeDenied {
			t.Fatalf("%d %+v", st, res)
		}
	})
}
