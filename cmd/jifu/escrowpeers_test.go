package main

import (
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/escrow"
	"github.com/jifu-open/jifu/host/notify"
	"github.com/jifu-open/jifu/marketplace"
)

// startTestPlatform starts the platform and its marketplace in-process, as
// serve does, over the test database.
func startTestPlatform(t *testing.T, c *cmdEnv) *platform {
	t.Helper()
	ctx := context.Background()
	e := &env{getenv: c.getenv, stdout: io.Discard, stderr: io.Discard, log: slog.New(slog.DiscardHandler),
		cli: &cli{DataDir: c.dataDir, Interrupt: "yield"}}
	p, err := startPlatform(ctx, e, false, cardFlags{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	if err := p.startMarketplace(ctx, e); err != nil {
		t.Fatal(err)
	}
	return p
}

// The escrow capability's real-name and SMS peers answer from the store's
// users (mp_users) and send through the notify channel (notify_sends,
// notify_outbox) with its one-time-code limits.
func TestEscrowPeersOverTheStore(t *testing.T) {
	ctx := context.Background()
	c := newCmdEnv(t)
	key := make([]byte, 32)
	key[0] = 11
	c.vars["JIFU_MASTER_KEY"] = hex.EncodeToString(key)
	p := startTestPlatform(t, c)
	svc := p.market.svc
	peers := marketEscrowPeers(p.link)

	const phone = "13900000777"
	u, err := svc.EnsureUser(ctx, marketplace.System, phone)
	if err != nil {
		t.Fatal(err)
	}
	ref := u.Ref()

	// Real names: unverified, then verified with the masked number.
	rn, err := peers.RealNames.RealName(ctx, ref)
	if err != nil || rn.Verified || rn.Name != "" {
		t.Fatalf("unverified user: %+v, %v", rn, err)
	}
	if _, err := svc.VerifyRealName(ctx, u.ID, "张三", "11010519491231002X"); err != nil {
		t.Fatal(err)
	}
	rn, err = peers.RealNames.RealName(ctx, ref)
	if err != nil || !rn.Verified || rn.Name != "张三" || rn.IDNumber == "" || strings.Contains(rn.IDNumber, "19491231") {
		t.Fatalf("verified user: %+v, %v; want verified 张三 with a masked number", rn, err)
	}
	for _, who := range []string{"dev-user", "u0", "u999999999"} {
		if _, err := peers.RealNames.RealName(ctx, who); jifu.ErrorCode(err) != jifu.CodeNotFound {
			t.Errorf("RealName(%q): %v, want not_found", who, err)
		}
	}

	// SMS: sent to the user's phone as a one-time code; a second code at
	// once is the channel's limit; unknown users send nothing.
	sent := func() int {
		t.Helper()
		msgs, err := p.market.outbox.List(ctx, notify.Filter{To: phone})
		if err != nil {
			t.Fatal(err)
		}
		return len(msgs)
	}
	if err := peers.SMS.SendSMS(ctx, ref, "【escrow】验证码 123456"); err != nil {
		t.Fatal(err)
	}
	msgs, err := p.market.outbox.List(ctx, notify.Filter{To: phone})
	if err != nil || len(msgs) != 1 || msgs[0].Purpose != notify.PurposeOTP || !strings.Contains(msgs[0].Body, "123456") {
		t.Fatalf("outbox after one code: %+v, %v", msgs, err)
	}
	if err := peers.SMS.SendSMS(ctx, ref, "【escrow】验证码 654321"); jifu.ErrorCode(err) != jifu.CodeLimit {
		t.Fatalf("second code at once: %v, want limit", err)
	}
	if err := peers.SMS.SendSMS(ctx, "u999999999", "验证码 111111"); jifu.ErrorCode(err) != jifu.CodeNotFound {
		t.Fatalf("SMS to an unknown user: %v, want not_found", err)
	}
	if n := sent(); n != 1 {
		t.Fatalf("%d messages to %s, want 1", n, phone)
	}

	// Before the marketplace is started, both peers are unavailable.
	idle := marketEscrowPeers(&marketLink{})
	if _, err := idle.RealNames.RealName(ctx, ref); jifu.ErrorCode(err) != jifu.CodeUnavailable {
		t.Errorf("RealName without a marketplace: %v", err)
	}
	if err := idle.SMS.SendSMS(ctx, ref, "x"); jifu.ErrorCode(err) != jifu.CodeUnavailable {
		t.Errorf("SendSMS without a marketplace: %v", err)
	}
}

// Through serve's escrow service: an unverified store user cannot open a
// custody account (not_real_name, no code sent); a verified one gets the
// code on their phone through the notify channel, and confirming it opens
// the account under their verified name and masked number.
func TestEscrowOpensAccountThroughTheStore(t *testing.T) {
	ctx := context.Background()
	c := newCmdEnv(t)
	key := make([]byte, 32)
	key[0] = 12
	c.vars["JIFU_MASTER_KEY"] = hex.EncodeToString(key)
	p := startTestPlatform(t, c)
	svc := p.market.svc

	const phone = "13900000778"
	u, err := svc.EnsureUser(ctx, marketplace.System, phone)
	if err != nil {
		t.Fatal(err)
	}
	actor := escrow.Actor{App: "esc-store", User: u.Ref()}
	inbox := func() []notify.Entry {
		t.Helper()
		msgs, err := p.market.outbox.List(ctx, notify.Filter{To: phone})
		if err != nil {
			t.Fatal(err)
		}
		return msgs
	}
	if _, err := p.escrow.OpenAccount(ctx, actor, escrow.OpenAccount{MerBillNo: "OPEN-1", Role: escrow.RoleInvestor}); escrow.ReasonOf(err) != escrow.ErrNotRealName {
		t.Fatalf("unverified user opens: %v, want %s", err, escrow.ErrNotRealName)
	}
	if n := len(inbox()); n != 0 {
		t.Fatalf("%d codes sent to an unverified user", n)
	}

	if _, err := svc.VerifyRealName(ctx, u.ID, "李四", "11010519491231002X"); err != nil {
		t.Fatal(err)
	}
	resp, err := p.escrow.OpenAccount(ctx, actor, escrow.OpenAccount{MerBillNo: "OPEN-2", Role: escrow.RoleInvestor})
	if err != nil || resp.State != escrow.StateAwaitingSMS {
		t.Fatalf("verified user opens: %+v, %v; want awaiting the SMS code", resp, err)
	}
	msgs := inbox()
	if len(msgs) != 1 {
		t.Fatalf("%d messages to %s, want the code", len(msgs), phone)
	}
	m := regexp.MustCompile(`验证码 (\d{6})`).FindStringSubmatch(msgs[0].Body)
	if m == nil {
		t.Fatalf("no code in %q", msgs[0].Body)
	}
	resp, err = p.escrow.SMSConfirm(ctx, actor, escrow.SMSConfirm{MerBillNo: "OPEN-2", SmsCode: m[1]})
	if err != nil || resp.State != escrow.StateDone || resp.AccountID == 0 {
		t.Fatalf("confirm: %+v, %v", resp, err)
	}
	var name, ident string
	if err := p.pgpool.QueryRow(ctx, `SELECT real_name, ident_masked FROM escrow_accounts WHERE app = $1 AND user_id = $2`,
		actor.App, actor.User).Scan(&name, &ident); err != nil {
		t.Fatal(err)
	}
	if name != "李四" || ident == "" || strings.Contains(ident, "19491231") {
		t.Fatalf("custody account holder %q, %q", name, ident)
	}
}
