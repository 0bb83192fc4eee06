package callback

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// Callback targets are URLs developers register, so without a guard a
// developer could make the platform send requests into its own network: the
// database's port, a cloud metadata service (169.254.169.254), an admin
// page on loopback (server-side request forgery). A client made with
// PublicOnly checks the address it is about to connect to, after DNS
// resolution, so a name that resolves (or later re-resolves) to a private
// address is refused too; it also ignores proxy settings, whose address
// would otherwise be the one checked.

// ClientOption adjusts NewHTTPClient.
type ClientOption func(*clientOptions)

type clientOptions struct{ publicOnly bool }

// PublicOnly refuses connections to any address that is not public unicast
// (see Public). serve uses it unless told that private targets are allowed
// (a local demo, tests with receivers on loopback).
func PublicOnly() ClientOption { return func(o *clientOptions) { o.publicOnly = true } }

// ErrPrivateAddress is the cause of an attempt refused by PublicOnly.
var ErrPrivateAddress = errors.New("callback target resolves to a non-public address")

// nonPublic lists special-purpose ranges (RFC 6890 and successors) beyond
// what netip.Addr's predicates cover.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT (RFC 6598)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // TEST-NET-1
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // TEST-NET-2
	netip.MustParsePrefix("203.0.113.0/24"),  // TEST-NET-3
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and 255.255.255.255
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: embeds an IPv4 address
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("2002::/16"),       // 6to4: embeds an IPv4 address
}

// Public reports whether a is a public unicast address: not loopback,
// private (RFC 1918, fc00::/7), link-local, multicast, unspecified, or one of
// the special-purpose ranges. An IPv4-mapped IPv6 address is judged as its
// IPv4 address.
func Public(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// publicOnlyControl is a net.Dialer Control: it runs once the address is
// resolved, before connecting.
func publicOnlyControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse %q", ErrPrivateAddress, address)
	}
	if !Public(ap.Addr()) {
		return fmt.Errorf("%w (%s)", ErrPrivateAddress, ap.Addr())
	}
	return nil
}

func dialer(timeout, keepAlive time.Duration, o clientOptions) *net.Dialer {
	d := &net.Dialer{Timeout: timeout, KeepAlive: keepAlive}
	if o.publicOnly {
		d.Control = publicOnlyControl
	}
	return d
}
