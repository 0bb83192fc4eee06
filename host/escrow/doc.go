// Package escrow is the custody side of lending over escrow (the IPS 资金管理平台
// v2.0 seed, its seventeen scenarios): custody accounts per party, freezes and
// unfreezes, bids on loan listings that can never over-subscribe them, typed
// transfers (invest, debt transfer, compensation, compensation repayment),
// pro-rata repayment, top-up and withdrawal through a bank, standing
// authorizations (auto-bid, auto-repay, withholding) and SMS confirmations.
//
// Money lives only in the host ledger (package ledger). Each request runs one
// PostgreSQL transaction in which the escrow records and the ledger moves
// (ledger.WithTx) commit or roll back together. Every request carries the
// merchant's bill number (IPS MerBillNo), its idempotency key per app: a
// replay with the same content returns the original response, other content
// fails with idempotency_conflict, and a refused request leaves no trace.
//
//	svc := escrow.New(escrow.Config{Pool: pool, Ledger: l, RealNames: users, SMS: sms, Bank: bank})
//	resp, err := svc.Call(ctx, escrow.Actor{App: "lending", User: "u1"}, "bid",
//		[]byte(`{"MerBillNo":"B1","BidNo":"L1","Investor":"u1","TrdAmt":500000}`))
//
// Who may act: a request that moves a user's money runs when the invocation's
// user is that user (the user confirmed it in the app), or, with no user or
// another one (batch ticks, the platform's server), only under that user's
// standing authorization of the matching kind, checked against its limits
// and expiry and consumed atomically with the move. Merchant instructions
// that move money the users already committed (releasing frozen bids,
// compensating from a guarantee, unfreezing margins) need no user.
//
// Ledger layout (owner type escrow; ids are "<app>/<role>/<user>" and
// "<app>/loan/<BidNo>"): each party's "custody" account (no overdraft); per
// loan a "capacity" account (no overdraft) funded with the loan amount from
// "capacity-source", each bid holding part of it towards "capacity-used";
// "borrower-margin" and "guarantor-margin" (no overdraft) that margins are
// moved into and unfrozen from in batches until zero. Bids are holds on the
// investor's custody account crediting the borrower's, posted when released.
//
// Check verifies the records against the books (jifu escrow check); Sweep
// marks bids and debt transfers whose holds the ledger expired (jifu serve
// runs it every minute). docs/ESCROW.md records the design and its limits.
//
// Rounding (repayment and compensation pro rata): each holder gets
// floor(amount × principal / total principal) fen, computed exactly with
// shopspring/decimal; the remainder (fewer fen than holders) goes to the
// largest holder, ties to the holder id that sorts last.
package escrow
