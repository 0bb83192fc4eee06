package main

import "github.com/jifu-open/jifu/host/cardpay"

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
