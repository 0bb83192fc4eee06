package main

import (
	"context"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/escrow"
	"github.com/jifu-open/jifu/host/notify"
	"github.com/jifu-open/jifu/marketplace"
)

// marketEscrowPeers are the escrow capability's peers in serve: real names
// and SMS from the marketplace's user store and notify channel (through
// link, once the marketplace is started). The bank stays unconnected (it
// declines every order) until the bank gateway is wired.
func marketEscrowPeers(link *marketLink) escrowPeers {
	return escrowPeers{RealNames: storeRealNames{link: link}, SMS: storeSMS{link: link}}
}

// storeUser returns the store user behind a UserRef ("u42"): CodeNotFound
// for references that are not store users (dev identities, synthetic
// self-test users) and for unknown ids.
func storeUser(ctx context.Context, link *marketLink, ref string) (*marketplace.User, error) {
	svc := link.svc.Load()
	if svc == nil {
		return nil, notConnected("escrow: user store")
	}
	id, ok := marketplace.ParseUserRef(ref)
	if !ok {
		return nil, jifu.Errorf(jifu.CodeNotFound, "escrow: %q is not a store user", ref)
	}
	return svc.User(ctx, id)
}

// storeRealNames implements escrow.RealNames over the store's users: a user
// is verified once the marketplace's real-name verification recorded a
// match (User.VerifiedAt); the identity number is the store's masked one.
type storeRealNames struct{ link *marketLink }

// RealName implements escrow.RealNames.
func (s storeRealNames) RealName(ctx context.Context, user string) (escrow.RealName, error) {
	u, err := storeUser(ctx, s.link, user)
	if err != nil {
		return escrow.RealName{}, err
	}
	if u.VerifiedAt == nil {
		return escrow.RealName{}, nil
	}
	return escrow.RealName{Verified: true, Name: u.RealName, IDNumber: u.IDNumberMasked}, nil
}

// storeSMS implements escrow.SMS: the text goes to the user's phone (the
// one they sign in with) through the platform's notify channel as a
// one-time code, so the channel's per-number code limits apply (CodeLimit,
// which escrow refuses as sms_limit). The text is never logged.
type storeSMS struct{ link *marketLink }

// SendSMS implements escrow.SMS.
func (s storeSMS) SendSMS(ctx context.Context, user, text string) error {
	n := s.link.notifier.Load()
	if n == nil {
		return notConnected("escrow: SMS channel")
	}
	u, err := storeUser(ctx, s.link, user)
	if err != nil {
		return err
	}
	if u.Phone == "" {
		return jifu.Errorf(jifu.CodeNotFound, "escrow: user %s has no phone", user)
	}
	return n.Send(ctx, notify.Message{Channel: notify.SMS, To: u.Phone, Purpose: notify.PurposeOTP, Body: text})
}
