package books

import (
	"context"

	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/ledger"
)

// BookGroup books ps as one group, as PostPayment does under load, and
// returns each posting's outcome.
func BookGroup(ctx context.Context, b *Books, ps []cardpay.Posting) []error {
	clearing, err := b.account(ctx, clearingSpec)
	if err != nil {
		panic(err)
	}
	ts := make([]ledger.Transfer, len(ps))
	for i, p := range ps {
		recv, err := b.account(ctx, ReceivableSpec(p.OrgID, p.MerchantID))
		if err != nil {
			panic(err)
		}
		ts[i] = paymentTransfer(p, clearing, recv)
	}
	return b.book(ctx, ts)
}

// Groups is how many groups of postings b booked with one Submit.
func Groups(b *Books) int64 { return b.groups.Load() }
