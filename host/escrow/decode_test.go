package escrow_test

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/escrow"
)

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name, op, body string
		want           any // nil: refused with ErrInvalid
	}{
		{"bid", "bid", `{"MerBillNo":"B1","BidNo":"L1","Investor":"u1","TrdAmt":100}`,
			&escrow.Bid{MerBillNo: "B1", BidNo: "L1", Investor: "u1", TrdAmt: 100}},
		{"unknown op", "steal", `{}`, nil},
		{"unknown field", "bid", `{"MerBillNo":"B1","BidNo":"L1","Investor":"u1","TrdAmt":100,"X":1}`, nil},
		{"trailing data", "bid", `{"MerBillNo":"B1","BidNo":"L1","Investor":"u1","TrdAmt":100} {}`, nil},
		{"not json", "bid", `MerBillNo=B1`, nil},
		{"zero amount", "bid", `{"MerBillNo":"B1","BidNo":"L1","Investor":"u1","TrdAmt":0}`, nil},
		{"negative amount", "repay", `{"MerBillNo":"B1","BidNo":"L1","Amount":-5}`, nil},
		{"huge amount", "repay", `{"MerBillNo":"B1","BidNo":"L1","Amount":1000000000000000001}`, nil},
		{"float amount", "repay", `{"MerBillNo":"B1","BidNo":"L1","Amount":1.5}`, nil},
		{"bill with slash", "repay", `{"MerBillNo":"B/1","BidNo":"L1","Amount":5}`, nil},
		{"long bill", "repay", `{"MerBillNo":"` + strings.Repeat("B", 33) + `","BidNo":"L1","Amount":5}`, nil},
		{"user with slash", "withdraw", `{"MerBillNo":"B1","User":"a/b","Role":"investor","Amount":5}`, nil},
		{"bad role", "withdraw", `{"MerBillNo":"B1","User":"u","Role":"platform","Amount":5}`, nil},
		{"sms code letters", "sms_confirm", `{"MerBillNo":"B1","SmsCode":"12345a"}`, nil},
		{"sms code", "sms_confirm", `{"MerBillNo":"B1","SmsCode":"012345"}`, &escrow.SMSConfirm{MerBillNo: "B1", SmsCode: "012345"}},
		{"rate over 100", "register_loan", `{"MerBillNo":"B1","BidNo":"L","Borrower":"b","LendAmt":5,"TrdLendRate":"100.01","RaiseDays":1}`, nil},
		{"rate precision", "register_loan", `{"MerBillNo":"B1","BidNo":"L","Borrower":"b","LendAmt":5,"TrdLendRate":"1.00001","RaiseDays":1}`, nil},
		{"raise days", "register_loan", `{"MerBillNo":"B1","BidNo":"L","Borrower":"b","LendAmt":5,"TrdLendRate":"1","RaiseDays":0}`, nil},
		{"invest with amount", "transfer", `{"MerBillNo":"B1","TransferType":"invest","BidNo":"L","Amount":5}`, nil},
		{"debt transfer two bills", "transfer", `{"MerBillNo":"B1","TransferType":"debt_transfer","BidNo":"L","Bills":["a","b"]}`, nil},
		{"unknown transfer type", "transfer", `{"MerBillNo":"B1","TransferType":"gift","BidNo":"L","Amount":5}`, nil},
		{"unfreeze type", "unfreeze", `{"MerBillNo":"B1","BidNo":"L","UnfreezeType":"investor","Amount":5}`, nil},
		{"min rate on repay", "authorize", `{"MerBillNo":"B1","Kind":"auto_repay","MaxAmount":5,"MinRate":"1","ValidDays":1}`, nil},
		{"total below max", "authorize", `{"MerBillNo":"B1","Kind":"auto_bid","MaxAmount":5,"TotalLimit":4,"ValidDays":1}`, nil},
		{"same seller and buyer", "register_debt_transfer", `{"MerBillNo":"B1","BidNo":"L","Seller":"u","Buyer":"u","Principal":1,"Price":1}`, nil},
		{"topup channel", "topup", `{"MerBillNo":"B1","User":"u","Role":"investor","Amount":5,"Channel":"cash"}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := escrow.Decode(tc.op, []byte(tc.body))
			if tc.want == nil {
				if escrow.ReasonOf(err) != escrow.ErrInvalid || jifu.ErrorCode(err) != jifu.CodeInvalid {
					t.Fatalf("Decode = %+v, %v; want invalid", got, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Decode = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	if _, err := escrow.Decode("bid", make([]byte, escrow.MaxRequestBytes+1)); escrow.ReasonOf(err) != escrow.ErrInvalid {
		t.Fatalf("oversize: %v", err)
	}
}

// FuzzDecode: no input panics the decoders, a refusal is always invalid, and
// an accepted request re-encodes to one that decodes to the same value.
func FuzzDecode(f *testing.F) {
	ops := []string{"open_account", "sms_confirm", "register_loan", "register_guarantor", "bid", "register_debt_transfer",
		"transfer", "repay", "unfreeze", "topup", "withhold_topup", "withdraw", "authorize", "revoke", "query", "balance", "x"}
	f.Add(uint8(4), []byte(`{"MerBillNo":"B1","BidNo":"L1","Investor":"u1","TrdAmt":100}`))
	f.Add(uint8(6), []byte(`{"MerBillNo":"B1","TransferType":"invest","BidNo":"L","Bills":["a","b"],"Fee":3}`))
	f.Add(uint8(2), []byte(`{"MerBillNo":"B1","BidNo":"L","Borrower":"b","LendAmt":5,"TrdLendRate":"12.50","RaiseDays":1}`))
	f.Add(uint8(12), []byte(`{"MerBillNo":"B1","Kind":"auto_bid","MaxAmount":5,"TotalLimit":9,"MinRate":"8","ValidDays":1}`))
	f.Add(uint8(9), []byte(`{"MerBillNo":"B1","User":"u","Role":"investor","Amount":5,"Channel":"withhold"}`))
	f.Fuzz(func(t *testing.T, i uint8, body []byte) {
		op := ops[int(i)%len(ops)]
		got, err := escrow.Decode(op, body)
		if err != nil {
			if escrow.ReasonOf(err) != escrow.ErrInvalid {
				t.Fatalf("refusal %v is not invalid", err)
			}
			return
		}
		again, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		got2, err := escrow.Decode(op, again)
		if err != nil || !reflect.DeepEqual(got, got2) {
			t.Fatalf("round trip of %s: %+v, %v; want %+v", again, got2, err, got)
		}
	})
}

// ProRata keeps every fen, never gives anyone more than one fen above their
// exact share, and gives the remainder to the largest holder.
func TestProRata(t *testing.T) {
	got := escrow.ProRata(1_001, []escrow.Line{{"a", 60}, {"b", 40}})
	if got[0].Amount != 601 || got[1].Amount != 400 {
		t.Fatalf("%+v", got)
	}
	got = escrow.ProRata(10, []escrow.Line{{"a", 1}, {"b", 1}, {"c", 1}})
	if got[0].Amount != 3 || got[1].Amount != 3 || got[2].Amount != 4 {
		t.Fatalf("ties go to the last: %+v", got)
	}
	// Products beyond int64 are exact.
	got = escrow.ProRata(escrow.MaxAmount, []escrow.Line{{"a", escrow.MaxAmount - 1}, {"b", 1}})
	if got[0].Amount+got[1].Amount != escrow.MaxAmount || got[1].Amount != 1 {
		t.Fatalf("%+v", got)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		n := 1 + r.IntN(20)
		ws := make([]escrow.Line, n)
		var total int64
		for i := range ws {
			ws[i] = escrow.Line{User: string(rune('a' + i)), Amount: 1 + r.Int64N(1_000_000)}
			total += ws[i].Amount
		}
		amount := 1 + r.Int64N(10_000_000)
		lines := escrow.ProRata(amount, ws)
		var sum int64
		for i, l := range lines {
			sum += l.Amount
			exact := float64(amount) * float64(ws[i].Amount) / float64(total)
			if float64(l.Amount) < exact-1 || float64(l.Amount) > exact+float64(n) {
				t.Fatalf("line %d = %d, exact %.2f", i, l.Amount, exact)
			}
		}
		if sum != amount {
			t.Fatalf("sum %d, want %d", sum, amount)
		}
	}
}
