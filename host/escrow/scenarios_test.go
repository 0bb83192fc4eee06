package escrow_test

// The seventeen scenarios of the IPS seed (ips-escrow-custody-api.txt), one
// test each, every one through a real WASM guest (testdata/guest: the app
// calls escrow_call under wazero, the host supplies the app and the user).
// The concurrency tests (over-subscription race, concurrent replays, the
// mixed listing race) call the service directly from many goroutines
// (newEnv's second argument says which); so do the few steps that need the
// service's own hooks (an SMS carrier failure).

import (
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jifu-open/jifu/host/escrow"
)

// S01 用户开户: only a real-name user, confirmed by SMS; wrong and expired
// codes refused; replays return the original account.
func TestS01OpenAccount(t *testing.T) {
	e := newEnv(t, true)
	u := e.person("inv", 0)

	e.refused(escrow.ErrDenied, "", escrow.OpOpenAccount, escrow.OpenAccount{MerBillNo: bill("OA"), Role: "investor"})
	if _, err := e.pool.Exec(t.Context(), `INSERT INTO escrow_test_realnames VALUES ($1, false, 'x', 'y')`, e.prefix+"-anon"); err != nil {
		t.Fatal(err)
	}
	e.refused(escrow.ErrNotRealName, e.prefix+"-anon", escrow.OpOpenAccount, escrow.OpenAccount{MerBillNo: bill("OA"), Role: "investor"})
	e.refused(escrow.ErrNotRealName, e.prefix+"-ghost", escrow.OpOpenAccount, escrow.OpenAccount{MerBillNo: bill("OA"), Role: "investor"})

	b := bill("OA")
	r := e.ok(u, escrow.OpOpenAccount, escrow.OpenAccount{MerBillNo: b, Role: "investor"})
	if r.State != escrow.StateAwaitingSMS || r.AccountID != 0 {
		t.Fatalf("open before SMS: %+v", r)
	}
	code := e.sms.lastCode(t, u)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	e.refused(escrow.ErrSMSCodeWrong, u, escrow.OpSMSConfirm, escrow.SMSConfirm{MerBillNo: b, SmsCode: wrong})
	e.refused(escrow.ErrDenied, e.prefix+"-other", escrow.OpSMSConfirm, escrow.SMSConfirm{MerBillNo: b, SmsCode: code})
	if q := e.ok("", escrow.OpQuery, escrow.Query{MerBillNo: b}); q.State != escrow.StateAwaitingSMS {
		t.Fatalf("query: %+v", q)
	}
	r = e.ok(u, escrow.OpSMSConfirm, escrow.SMSConfirm{MerBillNo: b, SmsCode: code})
	if r.State != escrow.StateDone || r.AccountID == 0 {
		t.Fatalf("open: %+v", r)
	}
	again := e.ok(u, escrow.OpSMSConfirm, escrow.SMSConfirm{MerBillNo: b, SmsCode: code})
	if again.AccountID != r.AccountID || !again.Replayed {
		t.Fatalf("confirm replay: %+v", again)
	}
	if rp := e.ok(u, escrow.OpOpenAccount, escrow.OpenAccount{MerBillNo: b, Role: "investor"}); rp.AccountID != r.AccountID {
		t.Fatalf("open replay: %+v", rp)
	}
	e.refused(escrow.ErrIdempotencyConflict, u, escrow.OpOpenAccount, escrow.OpenAccount{MerBillNo: b, Role: "borrower"})
	e.refused(escrow.ErrAccountExists, u, escrow.OpOpenAccount, escrow.OpenAccount{MerBillNo: bill("OA"), Role: "investor"})
	e.wantBalance(u, "investor", 0, 0)

	// An expired code, and five wrong tries, kill the confirmation.
	b2 := bill("OA")
	e.ok(u, escrow.OpOpenAccount, escrow.OpenAccount{MerBillNo: b2, Role: "borrower"})
	code2 := e.sms.lastCode(t, u)
	e.clock.Add(11 * time.Minute)
	e.refused(escrow.ErrSMSCodeExpired, u, escrow.OpSMSConfirm, escrow.SMSConfirm{MerBillNo: b2, SmsCode: code2})
	b3 := bill("OA")
	e.ok(u, escrow.OpOpenAccount, escrow.OpenAccount{MerBillNo: b3, Role: "borrower"})
	code3 := e.sms.lastCode(t, u)
	for range 5 {
		e.refused(escrow.ErrSMSCodeWrong, u, escrow.OpSMSConfirm, escrow.SMSConfirm{MerBillNo: b3, SmsCode: flip(code3)})
	}
	e.refused(escrow.ErrSMSCodeExpired, u, escrow.OpSMSConfirm, escrow.SMSConfirm{MerBillNo: b3, SmsCode: code3})
	e.refused(escrow.ErrNotFound, "", escrow.OpBalance, escrow.Balance{User: u, Role: "borrower"})

	// A carrier failure leaves no request behind: the same bill works later.
	e.sms.fail.Store(true)
	b4 := bill("OA")
	if _, err := e.svc.OpenAccount(t.Context(), escrow.Actor{App: e.app, User: u}, escrow.OpenAccount{MerBillNo: b4, Role: "guarantor"}); err == nil {
		t.Fatal("open with the SMS carrier down succeeded")
	}
	e.sms.fail.Store(false)
	e.sms.limit.Store(true)
	e.refused(escrow.ErrSMSLimit, u, escrow.OpOpenAccount, escrow.OpenAccount{MerBillNo: b4, Role: "guarantor"})
	e.sms.limit.Store(false)
	e.ok(u, escrow.OpOpenAccount, escrow.OpenAccount{MerBillNo: b4, Role: "guarantor"})
	e.check()
}

func flip(code string) string {
	b := []byte(code)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}

// S02 平台发布借款标: the borrower confirms by SMS; the listing opens with its
// whole amount as capacity and the borrower's margin frozen.
func TestS02RegisterLoan(t *testing.T) {
	e := newEnv(t, true)
	bor := e.party("bor", "borrower", 50_000)
	stranger := e.person("x", 0)
	e.refused(escrow.ErrNotFound, "", escrow.OpRegisterLoan, escrow.RegisterLoan{MerBillNo: bill("RL"), BidNo: bill("L"),
		Borrower: stranger, LendAmt: 100, TrdLendRate: "9", RaiseDays: 3})
	e.refused(escrow.ErrInvalid, "", escrow.OpRegisterLoan, escrow.RegisterLoan{MerBillNo: bill("RL"), BidNo: bill("L"),
		Borrower: bor, LendAmt: 100, TrdLendRate: "-1", RaiseDays: 3})

	bidNo, b := bill("L"), bill("RL")
	e.ok("", escrow.OpRegisterLoan, escrow.RegisterLoan{MerBillNo: b, BidNo: bidNo, Borrower: bor, LendAmt: 1_000_000,
		GuaranteesAmt: 20_000, TrdLendRate: "12.5", RaiseDays: 10})
	e.refused(escrow.ErrNotFound, "", escrow.OpBid, escrow.Bid{MerBillNo: bill("B"), BidNo: bidNo, Investor: bor, TrdAmt: 1})
	r := e.ok(bor, escrow.OpSMSConfirm, escrow.SMSConfirm{MerBillNo: b, SmsCode: e.sms.lastCode(t, bor)})
	if r.State != escrow.StateDone || r.Remaining != 1_000_000 {
		t.Fatalf("confirm: %+v", r)
	}
	e.wantBalance(bor, "borrower", 30_000, 0)
	e.refused(escrow.ErrWrongState, "", escrow.OpRegisterLoan, escrow.RegisterLoan{MerBillNo: bill("RL"), BidNo: bidNo,
		Borrower: bor, LendAmt: 5, TrdLendRate: "1", RaiseDays: 1})

	// A margin the borrower cannot cover keeps the listing unregistered.
	b2 := bill("RL")
	e.ok("", escrow.OpRegisterLoan, escrow.RegisterLoan{MerBillNo: b2, BidNo: bill("L"), Borrower: bor, LendAmt: 100,
		GuaranteesAmt: 40_000, TrdLendRate: "8", RaiseDays: 1})
	e.refused(escrow.ErrInsufficientFunds, bor, escrow.OpSMSConfirm, escrow.SMSConfirm{MerBillNo: b2, SmsCode: e.sms.lastCode(t, bor)})
	e.wantBalance(bor, "borrower", 30_000, 0)
	e.check()
}

// S03 担保方对标的担保: with a margin (frozen from the guarantor's account)
// or without; one guarantor per listing; only the guarantor may.
func TestS03Guarantor(t *testing.T) {
	e := newEnv(t, true)
	bor := e.party("bor", "borrower", 0)
	g := e.party("g", "guarantor", 100_000)
	l1, l2 := e.listing(bor, 500_000, 0), e.listing(bor, 500_000, 0)

	e.refused(escrow.ErrDenied, "", escrow.OpRegisterGuarantor, escrow.RegisterGuarantor{MerBillNo: bill("G"), BidNo: l1, Guarantor: g, MarginAmt: 1})
	e.refused(escrow.ErrInsufficientFunds, g, escrow.OpRegisterGuarantor, escrow.RegisterGuarantor{MerBillNo: bill("G"), BidNo: l1, Guarantor: g, MarginAmt: 100_001})
	e.ok(g, escrow.OpRegisterGuarantor, escrow.RegisterGuarantor{MerBillNo: bill("G"), BidNo: l1, Guarantor: g, MarginAmt: 60_000})
	e.wantBalance(g, "guarantor", 40_000, 0)
	e.refused(escrow.ErrWrongState, g, escrow.OpRegisterGuarantor, escrow.RegisterGuarantor{MerBillNo: bill("G"), BidNo: l1, Guarantor: g})
	e.ok(g, escrow.OpRegisterGuarantor, escrow.RegisterGuarantor{MerBillNo: bill("G"), BidNo: l2, Guarantor: g})
	e.wantBalance(g, "guarantor", 40_000, 0)
	e.check()
}

// S04 投资人投标(一次性放款): bids freeze funds, cumulative bids never above
// the loan amount, and one transfer releases every bid to the borrower.
func TestS04InvestOneTime(t *testing.T) {
	e := newEnv(t, true)
	bor := e.party("bor", "borrower", 10_000)
	i1, i2 := e.party("i1", "investor", 70_000), e.party("i2", "investor", 70_000)
	bidNo := e.listing(bor, 100_000, 0)

	// Another user (or the platform) may bid for i1 only under i1's auto-bid contract.
	e.refused(escrow.ErrNotAuthorized, i2, escrow.OpBid, escrow.Bid{MerBillNo: bill("B"), BidNo: bidNo, Investor: i1, TrdAmt: 10})
	e.refused(escrow.ErrInsufficientFunds, i1, escrow.OpBid, escrow.Bid{MerBillNo: bill("B"), BidNo: bidNo, Investor: i1, TrdAmt: 70_001})
	r := e.ok(i1, escrow.OpBid, escrow.Bid{MerBillNo: bill("B"), BidNo: bidNo, Investor: i1, TrdAmt: 60_000})
	if r.Remaining != 40_000 {
		t.Fatalf("capacity left %d", r.Remaining)
	}
	e.refused(escrow.ErrOversubscribed, i2, escrow.OpBid, escrow.Bid{MerBillNo: bill("B"), BidNo: bidNo, Investor: i2, TrdAmt: 40_001})
	e.ok(i2, escrow.OpBid, escrow.Bid{MerBillNo: bill("B"), BidNo: bidNo, Investor: i2, TrdAmt: 40_000})
	e.refused(escrow.ErrOversubscribed, i2, escrow.OpBid, escrow.Bid{MerBillNo: bill("B"), BidNo: bidNo, Investor: i2, TrdAmt: 1})
	e.wantBalance(i1, "investor", 10_000, 60_000)
	e.wantBalance(i2, "investor", 30_000, 40_000)

	tb := bill("T")
	r = e.ok("", escrow.OpTransfer, escrow.Transfer{MerBillNo: tb, TransferType: "invest", BidNo: bidNo, Fee: 1_000})
	if r.Amount != 100_000 || r.Released != 100_000 {
		t.Fatalf("release: %+v", r)
	}
	e.wantBalance(i1, "investor", 10_000, 0)
	e.wantBalance(bor, "borrower", 109_000, 0)
	if rp := e.ok("", escrow.OpTransfer, escrow.Transfer{MerBillNo: tb, TransferType: "invest", BidNo: bidNo, Fee: 1_000}); !rp.Replayed || rp.Amount != 100_000 {
		t.Fatalf("release replay: %+v", rp)
	}
	e.refused(escrow.ErrWrongState, "", escrow.OpTransfer, escrow.Transfer{MerBillNo: bill("T"), TransferType: "invest", BidNo: bidNo})
	e.wantBalance(bor, "borrower", 109_000, 0)
	e.check()
}

// S05 投资人投标(随投随放): release bid by bid while the listing keeps raising;
// the total never exceeds the amount.
func TestS05InvestAsYouGo(t *testing.T) {
	e := newEnv(t, true)
	bor := e.party("bor", "borrower", 0)
	i1 := e.party("i1", "investor", 100_000)
	bidNo := e.listing(bor, 50_000, 0)
	b1, b2, b3 := bill("B"), bill("B"), bill("B")
	e.ok(i1, escrow.OpBid, escrow.Bid{MerBillNo: b1, BidNo: bidNo, Investor: i1, TrdAmt: 20_000})
	e.ok(i1, escrow.OpBid, escrow.Bid{MerBillNo: b2, BidNo: bidNo, Investor: i1, TrdAmt: 10_000})
	r := e.ok("", escrow.OpTransfer, escrow.Transfer{MerBillNo: bill("T"), TransferType: "invest", BidNo: bidNo, Bills: []string{b1}})
	if r.Amount != 20_000 || r.Released != 20_000 {
		t.Fatalf("first release: %+v", r)
	}
	e.wantBalance(bor, "borrower", 20_000, 0)
	e.wantBalance(i1, "investor", 70_000, 10_000)
	e.refused(escrow.ErrWrongState, "", escrow.OpTransfer, escrow.Transfer{MerBillNo: bill("T"), TransferType: "invest", BidNo: bidNo, Bills: []string{b1}})
	e.refused(escrow.ErrNotFound, "", escrow.OpTransfer, escrow.Transfer{MerBillNo: bill("T"), TransferType: "invest", BidNo: bidNo, Bills: []string{"nope"}})
	e.refused(escrow.ErrOversubscribed, i1, escrow.OpBid, escrow.Bid{MerBillNo: bill("B"), BidNo: bidNo, Investor: i1, TrdAmt: 20_001})
	e.ok(i1, escrow.OpBid, escrow.Bid{MerBillNo: b3, BidNo: bidNo, Investor: i1, TrdAmt: 20_000})
	r = e.ok("", escrow.OpTransfer, escrow.Transfer{MerBillNo: bill("T"), TransferType: "invest", BidNo: bidNo, Bills: []string{b2, b3}})
	if r.Released != 50_000 {
		t.Fatalf("second release: %+v", r)
	}
	e.wantBalance(bor, "borrower", 50_000, 0)
	e.wantBalance(i1, "investor", 50_000, 0)

	// Bids still frozen at the deadline return to the investor by expiry.
	l2 := e.listing(bor, 10_000, 0)
	e.ok(i1, escrow.OpBid, escrow.Bid{MerBillNo: bill("B"), BidNo: l2, Investor: i1, TrdAmt: 5_000})
	e.clock.Add(31 * 24 * time.Hour)
	e.refused(escrow.ErrWrongState, i1, escrow.OpBid, escrow.Bid{MerBillNo: bill("B"), BidNo: l2, Investor: i1, TrdAmt: 1})
	if _, err := e.l.ExpireHolds(t.Context(), e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.wantBalance(i1, "investor", 50_000, 0)
	e.refused(escrow.ErrWrongState, "", escrow.OpTransfer, escrow.Transfer{MerBillNo: bill("T"), TransferType: "invest", BidNo: l2})
	e.check()
}

// released sets up a listing of 100,000 fen fully bid by i1 (60%) and i2
// (40%) and released.
func released(e *env) (bor, i1, i2, bidNo string) {
	e.t.Helper()
	bor = e.party("bor", "borrower", 0)
	i1, i2 = e.party("i1", "investor", 60_000), e.party("i2", "investor", 40_000)
	bidNo = e.listing(bor, 100_000, 0)
	e.ok(i1, escrow.OpBid, escrow.Bid{MerBillNo: bill("B"), BidNo: bidNo, Investor: i1, TrdAmt: 60_000})
	e.ok(i2, escrow.OpBid, escrow.Bid{MerBillNo: bill("B"), BidNo: bidNo, Investor: i2, TrdAmt: 40_000})
	e.ok("", escrow.OpTransfer, escrow.Transfer{MerBillNo: bill("T"), TransferType: "invest", BidNo: bidNo})
	return
}

// S06 个人债权转让: the buyer's price is frozen, then transferred to the
// seller; the claim (all or part) moves to the buyer and later repayments
// follow it.
func TestS06DebtTransfer(t *testing.T) {
	e := newEnv(t, true)
	bor, i1, i2, bidNo := released(e)
	buyer := e.party("buyer", "investor", 50_000)

	e.refused(escrow.ErrDenied, "", escrow.OpRegisterDebt, escrow.RegisterDebtTransfer{MerBillNo: bill("D"), BidNo: bidNo, Seller: i1, Buyer: buyer, Principal: 1, Price: 1})
	e.refused(escrow.ErrExceedsClaim, buyer, escrow.OpRegisterDebt, escrow.RegisterDebtTransfer{MerBillNo: bill("D"), BidNo: bidNo, Seller: i1, Buyer: buyer, Principal: 60_001, Price: 1})
	e.refused(escrow.ErrInsufficientFunds, buyer, escrow.OpRegisterDebt, escrow.RegisterDebtTransfer{MerBillNo: bill("D"), BidNo: bidNo, Seller: i1, Buyer: buyer, Principal: 30_000, Price: 50_001})
	d := bill("D")
	e.ok(buyer, escrow.OpRegisterDebt, escrow.RegisterDebtTransfer{MerBillNo: d, BidNo: bidNo, Seller: i1, Buyer: buyer, Principal: 30_000, Price: 29_000})
	e.wantBalance(buyer, "investor", 21_000, 29_000)
	// The reserved part cannot be sold twice.
	e.refused(escrow.ErrExceedsClaim, buyer, escrow.OpRegisterDebt, escrow.RegisterDebtTransfer{MerBillNo: bill("D"), BidNo: bidNo, Seller: i1, Buyer: buyer, Principal: 30_001, Price: 1})

	e.ok("", escrow.OpTransfer, escrow.Transfer{MerBillNo: bill("T"), TransferType: "debt_transfer", BidNo: bidNo, Bills: []string{d}})
	e.wantBalance(buyer, "investor", 21_000, 0)
	e.wantBalance(i1, "investor", 29_000, 0)
	e.refused(escrow.ErrWrongState, "", escrow.OpTransfer, escrow.Transfer{MerBillNo: bill("T"), TransferType: "debt_transfer", BidNo: bidNo, Bills: []string{d}})

	// Claims are now i1 30,000, i2 40,000, buyer 30,000.
	e.topUp(bor, "borrower", 10_000)
	r := e.ok(bor, escrow.OpRepay, escrow.Repay{MerBillNo: bill("R"), BidNo: bidNo, Amount: 10_000})
	want := map[string]int64{i1: 3_000, i2: 4_000, buyer: 3_000}
	for _, ln := range r.Lines {
		if want[ln.User] != ln.Amount {
			t.Errorf("repay line %s = %d, want %d", ln.User, ln.Amount, want[ln.User])
		}
	}
	e.check()
}

// S07 借款人还款 (manual): the borrower pays the holders pro rata with the
// stated rounding; others may not; a shortfall changes nothing.
func TestS07Repay(t *testing.T) {
	e := newEnv(t, true)
	bor, i1, i2, bidNo := released(e)
	// i1 holds 60%, i2 40%: 1,001 fen split 600.6 / 400.4 → 600 / 400, the
	// remainder 1 to the largest holder.
	e.refused(escrow.ErrNotAuthorized, i1, escrow.OpRepay, escrow.Repay{MerBillNo: bill("R"), BidNo: bidNo, Amount: 1_001})
	e.refused(escrow.ErrNotAuthorized, "", escrow.OpRepay, escrow.Repay{MerBillNo: bill("R"), BidNo: bidNo, Amount: 1_001})
	e.refused(escrow.ErrInsufficientFunds, bor, escrow.OpRepay, escrow.Repay{MerBillNo: bill("R"), BidNo: bidNo, Amount: 100_001})
	e.wantBalance(bor, "borrower", 100_000, 0)
	r := e.ok(bor, escrow.OpRepay, escrow.Repay{MerBillNo: bill("R"), BidNo: bidNo, Amount: 1_001})
	if len(r.Lines) != 2 || r.Lines[0].User != i1 || r.Lines[0].Amount != 601 || r.Lines[1].Amount != 400 {
		t.Fatalf("lines %+v", r.Lines)
	}
	e.wantBalance(i1, "investor", 601, 0)
	e.wantBalance(i2, "investor", 400, 0)
	e.wantBalance(bor, "borrower", 98_999, 0)
	e.check()
}

// S08 担保方代偿: the guarantor pays the holders (or the named ones), its
// margin on the listing first.
func TestS08Compensation(t *testing.T) {
	e := newEnv(t, true)
	_, i1, i2, bidNo := released(e)
	e.refused(escrow.ErrWrongState, "", escrow.OpTransfer, escrow.Transfer{MerBillNo: bill("T"), TransferType: "compensation", BidNo: bidNo, Amount: 10})
	g := e.party("g", "guarantor", 20_000)
	e.ok(g, escrow.OpRegisterGuarantor, escrow.RegisterGuarantor{MerBillNo: bill("G"), BidNo: bidNo, Guarantor: g, MarginAmt: 5_000})
	e.wantBalance(g, "guarantor", 15_000, 0)
	// Margin (5,000) and custody (15,000) together cannot cover 20,001.
	e.refused(escrow.ErrInsufficientFunds, "", escrow.OpTransfer, escrow.Transfer{MerBillNo: bill("T"), TransferType: "compensation", BidNo: bidNo, Amount: 20_001})
	e.wantBalance(g, "guarantor", 15_000, 0)
	e.ok("", escrow.OpTransfer, escrow.Transfer{MerBillNo: bill("T"), TransferType: "compensation", BidNo: bidNo, Amount: 10_000})
	e.wantBalance(g, "guarantor", 10_000, 0) // the margin paid 5,000 of it
	e.refused(escrow.ErrExceedsMargin, "", escrow.OpUnfreeze, escrow.Unfreeze{MerBillNo: bill("U"), BidNo: bidNo, UnfreezeType: "guarantor", Amount: 1})
	e.wantBalance(i1, "investor", 6_000, 0)
	e.wantBalance(i2, "investor", 4_000, 0)
	e.refused(escrow.ErrNotFound, "", escrow.OpTransfer, escrow.Transfer{MerBillNo: bill("T"), TransferType: "compensation", BidNo: bidNo, Amount: 1, Payees: []string{g}})
	e.ok("", escrow.OpTransfer, escrow.Transfer{MerBillNo: bill("T"), TransferType: "compensation", BidNo: bidNo, Amount: 5_000, Payees: []string{i2}})
	e.wantBalance(i2, "investor", 9_000, 0)
	e.wantBalance(g, "guarantor", 5_000, 0)
	e.check()
}

// S09 借款人针对代偿的还款: the borrower repays the guarantor, never more than
// was compensated.
func TestS09CompensationRepay(t *testing.T) {
	e := newEnv(t, true)
	bor, _, _, bidNo := released(e)
	g := e.party("g", "guarantor", 10_000)
	e.ok(g, escrow.OpRegisterGuarantor, escrow.RegisterGuarantor{MerBillNo: bill("G"), BidNo: bidNo, Guarantor: g})
	e.ok("", escrow.OpTransfer, escrow.Transfer{MerBillNo: bill("T"), TransferType: "compensation", BidNo: bidNo, Amount: 8_000})
	e.refused(escrow.ErrExceedsDebt, bor, escrow.OpTransfer, escrow.Transfer{MerBillNo: bill("T"), TransferType: "compensation_repay", BidNo: bidNo, Amount: 8_001})
	e.refused(escrow.ErrNotAuthorized, "", escrow.OpTransfer, escrow.Transfer{MerBillNo: bill("T"), TransferType: "compensation_repay", BidNo: bidNo, Amount: 1})
	e.ok(bor, escrow.OpTransfer, escrow.Transfer{MerBillNo: bill("T"), TransferType: "compensation_repay", BidNo: bidNo, Amount: 5_000})
	e.ok(bor, escrow.OpTransfer, escrow.Transfer{MerBillNo: bill("T"), TransferType: "compensation_repay", BidNo: bidNo, Amount: 3_000})
	e.refused(escrow.ErrExceedsDebt, bor, escrow.OpTransfer, escrow.Transfer{MerBillNo: bill("T"), TransferType: "compensation_repay", BidNo: bidNo, Amount: 1})
	e.wantBalance(g, "guarantor", 10_000, 0)
	e.wantBalance(bor, "borrower", 92_000, 0)
	e.check()
}

// S10 托管账户充值(网银): the bank debits the card; a refusal books nothing; a
// lost answer stays bank_pending until a query learns the outcome.
func TestS10TopUpOnlineBank(t *testing.T) {
	e := newEnv(t, true)
	u := e.person("u", 10_000)
	e.open(u, "investor")
	e.refused(escrow.ErrDenied, "", escrow.OpTopUp, escrow.TopUp{MerBillNo: bill("TU"), User: u, Role: "investor", Amount: 1, Channel: "online_bank"})
	e.refused(escrow.ErrNotFound, u, escrow.OpTopUp, escrow.TopUp{MerBillNo: bill("TU"), User: u, Role: "borrower", Amount: 1, Channel: "online_bank"})

	e.ok(u, escrow.OpTopUp, escrow.TopUp{MerBillNo: bill("TU"), User: u, Role: "investor", Amount: 4_000, Channel: "online_bank"})
	e.wantBalance(u, "investor", 4_000, 0)
	if e.card(u) != 6_000 {
		t.Fatalf("card %d", e.card(u))
	}
	declined := bill("TU")
	e.refused(escrow.ErrBankDeclined, u, escrow.OpTopUp, escrow.TopUp{MerBillNo: declined, User: u, Role: "investor", Amount: 6_001, Channel: "online_bank"})
	e.refused(escrow.ErrBankDeclined, "", escrow.OpQuery, escrow.Query{MerBillNo: declined})
	e.wantBalance(u, "investor", 4_000, 0)

	// The bank books the debit but its answer is lost.
	lost := bill("TU")
	e.bank.loseAnswer.Store(1)
	r := e.ok(u, escrow.OpTopUp, escrow.TopUp{MerBillNo: lost, User: u, Role: "investor", Amount: 1_000, Channel: "online_bank"})
	if r.State != escrow.StateBankPending {
		t.Fatalf("lost answer: %+v", r)
	}
	e.wantBalance(u, "investor", 4_000, 0)
	if q := e.ok("", escrow.OpQuery, escrow.Query{MerBillNo: lost}); q.State != escrow.StateDone {
		t.Fatalf("query: %+v", q)
	}
	e.wantBalance(u, "investor", 5_000, 0)
	if e.card(u) != 5_000 {
		t.Fatalf("card %d after the lost answer", e.card(u))
	}
	// The bank never got the order: a replay sends it.
	down := bill("TU")
	e.bank.failBefore.Store(1)
	if r := e.ok(u, escrow.OpTopUp, escrow.TopUp{MerBillNo: down, User: u, Role: "investor", Amount: 500, Channel: "online_bank"}); r.State != escrow.StateBankPending {
		t.Fatalf("bank down: %+v", r)
	}
	if r := e.ok(u, escrow.OpTopUp, escrow.TopUp{MerBillNo: down, User: u, Role: "investor", Amount: 500, Channel: "online_bank"}); r.State != escrow.StateDone {
		t.Fatalf("replay: %+v", r)
	}
	e.wantBalance(u, "investor", 5_500, 0)
	e.check()
}

// S11 托管账户充值(委托收款-用户发起): the user's withholding top-up needs the
// withhold mandate.
func TestS11TopUpWithholdByUser(t *testing.T) {
	e := newEnv(t, true)
	u := e.person("bor", 10_000)
	e.open(u, "borrower")
	e.refused(escrow.ErrNotAuthorized, u, escrow.OpTopUp, escrow.TopUp{MerBillNo: bill("TU"), User: u, Role: "borrower", Amount: 1_000, Channel: "withhold"})
	e.ok(u, escrow.OpAuthorize, escrow.Authorize{MerBillNo: bill("A"), Kind: "withhold", MaxAmount: 2_000, ValidDays: 365})
	e.refused(escrow.ErrNotAuthorized, u, escrow.OpTopUp, escrow.TopUp{MerBillNo: bill("TU"), User: u, Role: "borrower", Amount: 2_001, Channel: "withhold"})
	e.ok(u, escrow.OpTopUp, escrow.TopUp{MerBillNo: bill("TU"), User: u, Role: "borrower", Amount: 2_000, Channel: "withhold"})
	e.wantBalance(u, "borrower", 2_000, 0)
	e.check()
}

// S12 托管账户充值(委托收款-商户发起): the platform withholds under the
// mandate after the user confirms the SMS.
func TestS12WithholdByMerchant(t *testing.T) {
	e := newEnv(t, true)
	u := e.person("bor", 10_000)
	e.open(u, "borrower")
	e.refused(escrow.ErrNotAuthorized, "", escrow.OpWithholdTopUp, escrow.WithholdTopUp{MerBillNo: bill("W"), User: u, Role: "borrower", Amount: 3_000})
	e.ok(u, escrow.OpAuthorize, escrow.Authorize{MerBillNo: bill("A"), Kind: "withhold", MaxAmount: 5_000, ValidDays: 30})
	b := bill("W")
	r := e.ok("", escrow.OpWithholdTopUp, escrow.WithholdTopUp{MerBillNo: b, User: u, Role: "borrower", Amount: 3_000})
	if r.State != escrow.StateAwaitingSMS {
		t.Fatalf("withhold: %+v", r)
	}
	e.wantBalance(u, "borrower", 0, 0)
	if msg := e.sms.last(t, u); !strings.Contains(msg, "代扣充值30.00元") {
		t.Fatalf("the SMS does not state the amount: %q", msg)
	}
	code := e.sms.lastCode(t, u)
	e.refused(escrow.ErrSMSCodeWrong, "", escrow.OpSMSConfirm, escrow.SMSConfirm{MerBillNo: b, SmsCode: flip(code)})
	r = e.ok(u, escrow.OpSMSConfirm, escrow.SMSConfirm{MerBillNo: b, SmsCode: code})
	if r.State != escrow.StateDone {
		t.Fatalf("confirm: %+v", r)
	}
	e.wantBalance(u, "borrower", 3_000, 0)
	if e.card(u) != 7_000 {
		t.Fatalf("card %d", e.card(u))
	}
	// Past the mandate's validity nothing is withheld.
	e.clock.Add(31 * 24 * time.Hour)
	e.refused(escrow.ErrNotAuthorized, "", escrow.OpWithholdTopUp, escrow.WithholdTopUp{MerBillNo: bill("W"), User: u, Role: "borrower", Amount: 1})
	e.check()
}

// S13 托管账户提现: the amount is held until the bank pays the card; a refusal
// releases it; a lost answer keeps it frozen until settled.
func TestS13Withdraw(t *testing.T) {
	e := newEnv(t, true)
	u := e.party("u", "investor", 10_000)
	card := e.card(u)
	e.refused(escrow.ErrDenied, "", escrow.OpWithdraw, escrow.Withdraw{MerBillNo: bill("WD"), User: u, Role: "investor", Amount: 1})
	e.refused(escrow.ErrInsufficientFunds, u, escrow.OpWithdraw, escrow.Withdraw{MerBillNo: bill("WD"), User: u, Role: "investor", Amount: 10_001})
	e.ok(u, escrow.OpWithdraw, escrow.Withdraw{MerBillNo: bill("WD"), User: u, Role: "investor", Amount: 4_000})
	e.wantBalance(u, "investor", 6_000, 0)
	if e.card(u) != card+4_000 {
		t.Fatalf("card %d", e.card(u))
	}
	// The bank refuses (the card was deleted): the hold returns.
	if _, err := e.pool.Exec(t.Context(), `DELETE FROM escrow_test_cards WHERE user_id = $1`, u); err != nil {
		t.Fatal(err)
	}
	e.refused(escrow.ErrBankDeclined, u, escrow.OpWithdraw, escrow.Withdraw{MerBillNo: bill("WD"), User: u, Role: "investor", Amount: 1_000})
	e.wantBalance(u, "investor", 6_000, 0)
	if _, err := e.pool.Exec(t.Context(), `INSERT INTO escrow_test_cards VALUES ($1, 0)`, u); err != nil {
		t.Fatal(err)
	}
	lost := bill("WD")
	e.bank.loseAnswer.Store(1)
	if r := e.ok(u, escrow.OpWithdraw, escrow.Withdraw{MerBillNo: lost, User: u, Role: "investor", Amount: 2_500}); r.State != escrow.StateBankPending {
		t.Fatalf("lost: %+v", r)
	}
	e.wantBalance(u, "investor", 3_500, 2_500)
	e.ok(u, escrow.OpQuery, escrow.Query{MerBillNo: lost})
	e.wantBalance(u, "investor", 3_500, 0)
	if e.card(u) != 2_500 {
		t.Fatalf("card %d", e.card(u))
	}
	e.check()
}

// S14 解冻担保方保证金: in batches until zero, never beyond.
func TestS14UnfreezeGuarantorMargin(t *testing.T) {
	e := newEnv(t, true)
	bor := e.party("bor", "borrower", 0)
	g := e.party("g", "guarantor", 30_000)
	bidNo := e.listing(bor, 100_000, 0)
	e.refused(escrow.ErrWrongState, "", escrow.OpUnfreeze, escrow.Unfreeze{MerBillNo: bill("U"), BidNo: bidNo, UnfreezeType: "guarantor", Amount: 1})
	e.ok(g, escrow.OpRegisterGuarantor, escrow.RegisterGuarantor{MerBillNo: bill("G"), BidNo: bidNo, Guarantor: g, MarginAmt: 30_000})
	for i, want := range []int64{20_000, 5_000, 0} {
		amt := []int64{10_000, 15_000, 5_000}[i]
		e.refused(escrow.ErrExceedsMargin, "", escrow.OpUnfreeze, escrow.Unfreeze{MerBillNo: bill("U"), BidNo: bidNo, UnfreezeType: "guarantor", Amount: want + amt + 1})
		r := e.ok("", escrow.OpUnfreeze, escrow.Unfreeze{MerBillNo: bill("U"), BidNo: bidNo, UnfreezeType: "guarantor", Amount: amt})
		if r.Remaining != want {
			t.Fatalf("batch %d: remaining %d, want %d", i, r.Remaining, want)
		}
	}
	e.refused(escrow.ErrExceedsMargin, "", escrow.OpUnfreeze, escrow.Unfreeze{MerBillNo: bill("U"), BidNo: bidNo, UnfreezeType: "guarantor", Amount: 1})
	e.wantBalance(g, "guarantor", 30_000, 0)
	e.check()
}

// S15 解冻借款人保证金: the borrower's margin frozen at registration returns in
// batches until zero.
func TestS15UnfreezeBorrowerMargin(t *testing.T) {
	e := newEnv(t, true)
	bor := e.party("bor", "borrower", 9_000)
	bidNo := e.listing(bor, 100_000, 9_000)
	e.wantBalance(bor, "borrower", 0, 0)
	r := e.ok("", escrow.OpUnfreeze, escrow.Unfreeze{MerBillNo: bill("U"), BidNo: bidNo, UnfreezeType: "borrower", Amount: 4_000})
	if r.Remaining != 5_000 {
		t.Fatalf("remaining %d", r.Remaining)
	}
	e.refused(escrow.ErrExceedsMargin, "", escrow.OpUnfreeze, escrow.Unfreeze{MerBillNo: bill("U"), BidNo: bidNo, UnfreezeType: "borrower", Amount: 5_001})
	if r := e.ok("", escrow.OpUnfreeze, escrow.Unfreeze{MerBillNo: bill("U"), BidNo: bidNo, UnfreezeType: "borrower", Amount: 5_000}); r.Remaining != 0 {
		t.Fatalf("remaining %d", r.Remaining)
	}
	e.wantBalance(bor, "borrower", 9_000, 0)
	e.check()
}

// S16 投资人设置自动投标: the platform bids for the investor only within the
// contract: per bid, in total, on rates at or above the minimum, before expiry,
// until revoked.
func TestS16AutoBid(t *testing.T) {
	e := newEnv(t, true)
	bor := e.party("bor", "borrower", 0)
	inv := e.party("inv", "investor", 100_000)
	bidNo := e.listing(bor, 100_000, 0) // 10.00%
	bid := func(amount int64) escrow.Bid {
		return escrow.Bid{MerBillNo: bill("B"), BidNo: bidNo, Investor: inv, TrdAmt: amount}
	}
	e.refused(escrow.ErrNotAuthorized, "", escrow.OpBid, bid(1_000))
	e.refused(escrow.ErrDenied, "", escrow.OpAuthorize, escrow.Authorize{MerBillNo: bill("A"), Kind: "auto_bid", MaxAmount: 5_000, ValidDays: 1})
	e.ok(inv, escrow.OpAuthorize, escrow.Authorize{MerBillNo: bill("A"), Kind: "auto_bid", MaxAmount: 5_000, TotalLimit: 8_000, MinRate: "10.5", ValidDays: 10})
	e.refused(escrow.ErrNotAuthorized, "", escrow.OpBid, bid(1_000)) // rate below the minimum
	e.ok(inv, escrow.OpAuthorize, escrow.Authorize{MerBillNo: bill("A"), Kind: "auto_bid", MaxAmount: 5_000, TotalLimit: 8_000, MinRate: "9", ValidDays: 10})
	e.refused(escrow.ErrNotAuthorized, "", escrow.OpBid, bid(5_001))
	e.ok("", escrow.OpBid, bid(5_000))
	e.refused(escrow.ErrNotAuthorized, "", escrow.OpBid, bid(3_001)) // over the total
	e.ok("", escrow.OpBid, bid(3_000))
	e.wantBalance(inv, "investor", 92_000, 8_000)
	e.ok(inv, escrow.OpAuthorize, escrow.Authorize{MerBillNo: bill("A"), Kind: "auto_bid", MaxAmount: 1_000, ValidDays: 1})
	e.clock.Add(25 * time.Hour)
	e.refused(escrow.ErrNotAuthorized, "", escrow.OpBid, bid(1_000)) // expired
	e.ok(inv, escrow.OpAuthorize, escrow.Authorize{MerBillNo: bill("A"), Kind: "auto_bid", MaxAmount: 1_000, ValidDays: 1})
	e.ok("", escrow.OpBid, bid(1_000))
	e.ok(inv, escrow.OpRevoke, escrow.Revoke{MerBillNo: bill("RV"), Kind: "auto_bid"})
	e.refused(escrow.ErrNotAuthorized, "", escrow.OpBid, bid(1_000))
	e.refused(escrow.ErrNotFound, inv, escrow.OpRevoke, escrow.Revoke{MerBillNo: bill("RV"), Kind: "auto_bid"})
	e.wantBalance(inv, "investor", 91_000, 9_000)
	e.check()
}

// S17 借款人设置自动还款: the platform repays for the borrower under the
// authorization, only for the listing it names and within its limit.
func TestS17AutoRepay(t *testing.T) {
	e := newEnv(t, true)
	bor, i1, _, bidNo := released(e)
	other := e.listing(bor, 1_000, 0)
	e.refused(escrow.ErrNotAuthorized, "", escrow.OpRepay, escrow.Repay{MerBillNo: bill("R"), BidNo: bidNo, Amount: 1_000})
	e.ok(bor, escrow.OpAuthorize, escrow.Authorize{MerBillNo: bill("A"), Kind: "auto_repay", MaxAmount: 2_000, BidNo: bidNo, ValidDays: 365})
	e.refused(escrow.ErrNotAuthorized, "", escrow.OpRepay, escrow.Repay{MerBillNo: bill("R"), BidNo: bidNo, Amount: 2_001})
	e.refused(escrow.ErrNotAuthorized, "", escrow.OpRepay, escrow.Repay{MerBillNo: bill("R"), BidNo: other, Amount: 100})
	e.ok("", escrow.OpRepay, escrow.Repay{MerBillNo: bill("R"), BidNo: bidNo, Amount: 2_000})
	e.ok("", escrow.OpRepay, escrow.Repay{MerBillNo: bill("R"), BidNo: bidNo, Amount: 2_000})
	e.wantBalance(i1, "investor", 2_400, 0)
	e.wantBalance(bor, "borrower", 96_000, 0)
	e.check()
}

// The over-subscription race: many investors bid at once on one listing;
// exactly as many bids as fit succeed, the rest are refused, and the frozen
// total equals the loan amount.
func TestOversubscriptionRace(t *testing.T) {
	e := newEnv(t, false)
	bor := e.party("bor", "borrower", 0)
	bidNo := e.listing(bor, 100_000, 0)
	const n = 24
	invs := make([]string, n)
	for i := range invs {
		invs[i] = e.party("i"+string(rune('a'+i)), "investor", 30_000)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted int
		refused  int
	)
	for i := range invs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := escrow.Bid{MerBillNo: bill("B"), BidNo: bidNo, Investor: invs[i], TrdAmt: 30_000}
			_, err := e.svc.Bid(t.Context(), escrow.Actor{App: e.app, User: invs[i]}, body)
			mu.Lock()
			defer mu.Unlock()
			switch escrow.ReasonOf(err) {
			case "":
				if err != nil {
					t.Errorf("bid: %v", err)
					return
				}
				accepted++
			case escrow.ErrOversubscribed:
				refused++
			default:
				t.Errorf("bid: %v", err)
			}
		}()
	}
	wg.Wait()
	if accepted != 3 || refused != n-3 {
		t.Fatalf("accepted %d refused %d, want 3 and %d", accepted, refused, n-3)
	}
	var frozen int64
	for _, u := range invs {
		_, f := e.balance(u, "investor")
		frozen += f
	}
	if frozen != 90_000 {
		t.Fatalf("frozen %d, want 90000", frozen)
	}
	e.check()
}

// Replays: the same bill replayed concurrently has one effect; other content
// under the same bill is refused.
func TestIdempotency(t *testing.T) {
	e := newEnv(t, false)
	bor, _, _, bidNo := released(e)
	b := bill("R")
	req := escrow.Repay{MerBillNo: b, BidNo: bidNo, Amount: 1_000}
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.svc.Repay(t.Context(), escrow.Actor{App: e.app, User: bor}, req); err != nil {
				t.Errorf("replay: %v", err)
			}
		}()
	}
	wg.Wait()
	e.wantBalance(bor, "borrower", 99_000, 0)
	e.refused(escrow.ErrIdempotencyConflict, bor, escrow.OpRepay, escrow.Repay{MerBillNo: b, BidNo: bidNo, Amount: 1_001})
	e.refused(escrow.ErrIdempotencyConflict, bor, escrow.OpUnfreeze, escrow.Unfreeze{MerBillNo: b, BidNo: bidNo, UnfreezeType: "borrower", Amount: 1})
	e.refused(escrow.ErrNotFound, bor, escrow.OpSMSConfirm, escrow.SMSConfirm{MerBillNo: b, SmsCode: "123456"})
	// A refused request leaves no trace: its bill is free for a good one.
	b2 := bill("R")
	e.refused(escrow.ErrInsufficientFunds, bor, escrow.OpRepay, escrow.Repay{MerBillNo: b2, BidNo: bidNo, Amount: 1_000_000})
	e.refused(escrow.ErrNotFound, "", escrow.OpQuery, escrow.Query{MerBillNo: b2})
	e.ok(bor, escrow.OpRepay, escrow.Repay{MerBillNo: b2, BidNo: bidNo, Amount: 1_000})
	e.wantBalance(bor, "borrower", 98_000, 0)
	e.check()
}

// Cancelling: frozen bids of a failed listing (流标) and a frozen debt-transfer
// price go back to their owners, capacity and claims with them.
func TestCancel(t *testing.T) {
	e := newEnv(t, false)
	bor, i1, i2, bidNo := released(e)
	buyer := e.party("buyer", "investor", 10_000)
	d := bill("D")
	e.ok(buyer, escrow.OpRegisterDebt, escrow.RegisterDebtTransfer{MerBillNo: d, BidNo: bidNo, Seller: i1, Buyer: buyer, Principal: 60_000, Price: 9_000})
	e.refused(escrow.ErrInvalid, "", escrow.OpCancel, escrow.Cancel{MerBillNo: bill("C"), CancelType: "debt_transfer", BidNo: bidNo})
	e.ok("", escrow.OpCancel, escrow.Cancel{MerBillNo: bill("C"), CancelType: "debt_transfer", BidNo: bidNo, Bills: []string{d}})
	e.wantBalance(buyer, "investor", 10_000, 0)
	e.refused(escrow.ErrWrongState, "", escrow.OpCancel, escrow.Cancel{MerBillNo: bill("C"), CancelType: "debt_transfer", BidNo: bidNo, Bills: []string{d}})
	// The reservation is free again: the whole claim can be sold.
	e.ok(buyer, escrow.OpRegisterDebt, escrow.RegisterDebtTransfer{MerBillNo: bill("D"), BidNo: bidNo, Seller: i1, Buyer: buyer, Principal: 60_000, Price: 1})

	l2 := e.listing(bor, 50_000, 0)
	b1, b2 := bill("B"), bill("B")
	e.topUp(i2, "investor", 30_000)
	e.ok(i2, escrow.OpBid, escrow.Bid{MerBillNo: b1, BidNo: l2, Investor: i2, TrdAmt: 10_000})
	e.ok(i2, escrow.OpBid, escrow.Bid{MerBillNo: b2, BidNo: l2, Investor: i2, TrdAmt: 20_000})
	r := e.ok("", escrow.OpCancel, escrow.Cancel{MerBillNo: bill("C"), CancelType: "bid", BidNo: l2, Bills: []string{b1}})
	if r.Amount != 10_000 || r.Remaining != 30_000 {
		t.Fatalf("cancel one: %+v", r)
	}
	e.wantBalance(i2, "investor", 10_000, 20_000)
	// The rest expires with the listing; cancelling then only marks it.
	e.clock.Add(31 * 24 * time.Hour)
	if _, err := e.l.ExpireHolds(t.Context(), e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if r := e.ok("", escrow.OpCancel, escrow.Cancel{MerBillNo: bill("C"), CancelType: "bid", BidNo: l2}); r.Amount != 20_000 || r.Remaining != 50_000 {
		t.Fatalf("cancel all: %+v", r)
	}
	e.wantBalance(i2, "investor", 30_000, 0)
	e.refused(escrow.ErrWrongState, "", escrow.OpCancel, escrow.Cancel{MerBillNo: bill("C"), CancelType: "bid", BidNo: l2})
	e.refused(escrow.ErrWrongState, "", escrow.OpTransfer, escrow.Transfer{MerBillNo: bill("T"), TransferType: "invest", BidNo: l2, Bills: []string{b2}})
	e.check()
}

// Bids, releases and cancellations race on one listing; afterwards the
// escrow records and the ledger agree: capacity left + frozen bids +
// released = the loan amount, the claims sum to what was released, and
// every ledger invariant holds.
func TestConcurrentListing(t *testing.T) {
	e := newEnv(t, false)
	bor := e.party("bor", "borrower", 0)
	const amount = 60_000
	bidNo := e.listing(bor, amount, 0)
	invs := make([]string, 6)
	for i := range invs {
		invs[i] = e.party("i"+string(rune('a'+i)), "investor", 20_000)
	}
	a := escrow.Actor{App: e.app}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i, inv := range invs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 4 {
				_, err := e.svc.Bid(t.Context(), escrow.Actor{App: e.app, User: inv},
					escrow.Bid{MerBillNo: bill("CB"), BidNo: bidNo, Investor: inv, TrdAmt: int64(2_000 + 500*((i+j)%4))})
				if r := escrow.ReasonOf(err); err != nil && r != escrow.ErrOversubscribed && r != escrow.ErrInsufficientFunds {
					errs <- err
				}
			}
		}()
	}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 4 {
				var err error
				if k%2 == 0 {
					_, err = e.svc.Transfer(t.Context(), a, escrow.Transfer{MerBillNo: bill("CT"), TransferType: "invest", BidNo: bidNo})
				} else {
					_, err = e.svc.Cancel(t.Context(), a, escrow.Cancel{MerBillNo: bill("CC"), CancelType: "bid", BidNo: bidNo})
				}
				if err != nil && escrow.ReasonOf(err) != escrow.ErrWrongState {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("unexpected: %v", err)
	}
	var frozen, released, claims, capacity int64
	q := func(sql string, v *int64) {
		if err := e.pool.QueryRow(t.Context(), sql, e.app, bidNo).Scan(v); err != nil {
			t.Fatal(err)
		}
	}
	q(`SELECT coalesce(sum(amount), 0) FROM escrow_bids WHERE app = $1 AND bid_no = $2 AND status = 'frozen'`, &frozen)
	q(`SELECT released FROM escrow_loans WHERE app = $1 AND bid_no = $2`, &released)
	q(`SELECT coalesce(sum(principal), 0) FROM escrow_claims WHERE app = $1 AND bid_no = $2`, &claims)
	q(`SELECT a.credits_posted - a.debits_posted - a.debits_pending FROM escrow_loans l JOIN ledger_accounts a ON a.id = l.capacity_id
		WHERE l.app = $1 AND l.bid_no = $2`, &capacity)
	if capacity+frozen+released != amount || claims != released {
		t.Fatalf("capacity %d + frozen %d + released %d != %d, or claims %d != released", capacity, frozen, released, amount, claims)
	}
	bal, _ := e.balance(bor, "borrower")
	if bal != released {
		t.Fatalf("borrower holds %d, released %d", bal, released)
	}
	t.Logf("released %d, frozen %d, capacity left %d", released, frozen, capacity)
	e.check()
}

// Check names each broken invariant between the records and the books.
func TestCheckFindsViolations(t *testing.T) {
	e := newEnv(t, false)
	bor, i1, _, bidNo := released(e)
	l2 := e.listing(bor, 10_000, 0)
	e.topUp(i1, "investor", 1_000)
	e.ok(i1, escrow.OpBid, escrow.Bid{MerBillNo: bill("B"), BidNo: l2, Investor: i1, TrdAmt: 1_000})
	e.check()
	for _, tc := range []struct {
		name, bidNo, breakSQL, mendSQL string
		want                           []string
	}{
		{"released off by one", bidNo,
			`UPDATE escrow_loans SET released = released - 1 WHERE app = $1 AND bid_no = $2`,
			`UPDATE escrow_loans SET released = released + 1 WHERE app = $1 AND bid_no = $2`,
			[]string{"listing_capacity", "listing_claims"}},
		{"a claim reserved without a transfer", bidNo,
			`UPDATE escrow_claims SET reserved = 1 WHERE app = $1 AND bid_no = $2 AND holder = $3`,
			`UPDATE escrow_claims SET reserved = 0 WHERE app = $1 AND bid_no = $2 AND holder = $3`,
			[]string{"claim_reserved"}},
		{"a frozen bid marked released", l2,
			`UPDATE escrow_bids SET status = 'released' WHERE app = $1 AND bid_no = $2 AND investor = $3`,
			`UPDATE escrow_bids SET status = 'frozen' WHERE app = $1 AND bid_no = $2 AND investor = $3`,
			[]string{"listing_capacity", "bid_holds"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []any{e.app, tc.bidNo}
			if strings.Contains(tc.breakSQL, "$3") {
				args = append(args, i1)
			}
			if _, err := e.pool.Exec(t.Context(), tc.breakSQL, args...); err != nil {
				t.Fatal(err)
			}
			vs, err := e.svc.Check(t.Context())
			if _, merr := e.pool.Exec(t.Context(), tc.mendSQL, args...); merr != nil {
				t.Fatal(merr)
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, v := range vs {
				if !regexp.MustCompile(`\b` + tc.bidNo + `\b`).MatchString(v.Detail) {
					t.Errorf("violation of another listing: %s", v)
				}
				got = append(got, v.Invariant)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("violations %v, want %v", vs, tc.want)
			}
		})
	}
	e.check()
}

// Sweep marks what hold expiry returned: expired bids cancelled, expired
// debt-transfer prices cancelled with the seller's claim freed.
func TestSweep(t *testing.T) {
	e := newEnv(t, false)
	bor, i1, _, bidNo := released(e)
	buyer := e.party("buyer", "investor", 10_000)
	e.ok(buyer, escrow.OpRegisterDebt, escrow.RegisterDebtTransfer{MerBillNo: bill("D"), BidNo: bidNo, Seller: i1, Buyer: buyer, Principal: 60_000, Price: 9_000})
	l2 := e.listing(bor, 10_000, 0)
	b := bill("B")
	e.ok(buyer, escrow.OpBid, escrow.Bid{MerBillNo: b, BidNo: l2, Investor: buyer, TrdAmt: 1_000})
	e.wantBalance(buyer, "investor", 0, 10_000)
	// Other tests' expired leftovers share the database: sweep them first.
	if _, err := e.svc.Sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n, err := e.svc.Sweep(t.Context()); err != nil || n != 0 {
		t.Fatalf("sweep before expiry: %d, %v", n, err)
	}
	e.clock.Add(31 * 24 * time.Hour)
	if _, err := e.l.ExpireHolds(t.Context(), e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.wantBalance(buyer, "investor", 10_000, 0)
	if n, err := e.svc.Sweep(t.Context()); err != nil || n < 2 {
		t.Fatalf("sweep: %d, %v; want at least this test's 2", n, err)
	}
	var bidStatus, debtStatus string
	if err := e.pool.QueryRow(t.Context(), `SELECT (SELECT status FROM escrow_bids WHERE app = $1 AND bill_no = $2),
		(SELECT status FROM escrow_debt_transfers WHERE app = $1 AND seller = $3)`, e.app, b, i1).Scan(&bidStatus, &debtStatus); err != nil {
		t.Fatal(err)
	}
	if bidStatus != "cancelled" || debtStatus != "cancelled" {
		t.Fatalf("after the sweep: bid %s, debt transfer %s", bidStatus, debtStatus)
	}
	e.check()
	// The claim is free to sell again; the expired bid cannot be released.
	e.ok(buyer, escrow.OpRegisterDebt, escrow.RegisterDebtTransfer{MerBillNo: bill("D"), BidNo: bidNo, Seller: i1, Buyer: buyer, Principal: 60_000, Price: 1})
	e.refused(escrow.ErrWrongState, "", escrow.OpTransfer, escrow.Transfer{MerBillNo: bill("T"), TransferType: "invest", BidNo: l2, Bills: []string{b}})
	e.check()
}

// Apps (and a sandbox beside production: another namespace) never see each
// other's accounts, listings or bills.
func TestAppsAreIsolated(t *testing.T) {
	e := newEnv(t, false)
	bor, i1, _, bidNo := released(e)
	other := *e
	other.app = e.app + "x"
	o := &other
	o.refused(escrow.ErrNotFound, "", escrow.OpBalance, escrow.Balance{User: i1, Role: "investor"})
	o.refused(escrow.ErrNotFound, bor, escrow.OpRepay, escrow.Repay{MerBillNo: bill("R"), BidNo: bidNo, Amount: 1})
	o.refused(escrow.ErrNotFound, "", escrow.OpTransfer, escrow.Transfer{MerBillNo: bill("T"), TransferType: "invest", BidNo: bidNo})
	b := bill("R")
	e.ok(bor, escrow.OpRepay, escrow.Repay{MerBillNo: b, BidNo: bidNo, Amount: 100})
	o.refused(escrow.ErrNotFound, "", escrow.OpQuery, escrow.Query{MerBillNo: b})
	e.check()
}
