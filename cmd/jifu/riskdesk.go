package main

import (
	"log/slog"

	"github.com/jifu-open/jifu/host/cardpay"
)

// riskDesk is the risk staff's desk over the card core's rules (served at
// /risk): the card core's own when serve runs one, so that a change drops
// its cached rules at once; otherwise a desk over the platform database (a
// card core in another process sees each change within 5 s).
func (p *platform) riskDesk() *cardpay.RiskDesk {
	if p.card != nil {
		return p.card.svc.RiskDesk()
	}
	return cardpay.NewRiskDesk(p.pgpool)
}

// caseDesk is the card core's erroneous transactions and user levels for
// the desk's 差错 queue and level form, chosen as riskDesk is.
func (p *platform) caseDesk(log *slog.Logger) *cardpay.Desk {
	if p.card != nil {
		return p.card.svc.Desk()
	}
	return cardpay.NewDesk(p.pgpool, cardpay.DeskOptions{Logger: log})
}
