// Package pan checks and masks primary account numbers. A full PAN is never
// stored or logged (PCI DSS 3.4.1): keep Mask(pan), first 6 and last 4.
//
//	if err := pan.Check(p); err != nil { ... } // digits, length, Luhn
//	log.Info("card", "pan", pan.Mask(p))       // 622202*********0128
package pan

import (
	"strings"

	"github.com/jifu-open/jifu"
)

// Lengths ISO/IEC 7812 allows.
const (
	MinLen = 12
	MaxLen = 19
)

// Luhn reports whether the digit string s passes the Luhn (mod 10) check.
// It is false for an empty string or any non-digit.
func Luhn(s string) bool {
	if s == "" {
		return false
	}
	sum := 0
	double := false
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// Check verifies that p is 12 to 19 digits with a valid Luhn check digit.
// Its errors never contain the PAN.
func Check(p string) error {
	if len(p) < MinLen || len(p) > MaxLen {
		return jifu.Errorf(jifu.CodeInvalid, "pan: card number must have %d to %d digits", MinLen, MaxLen)
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return jifu.Errorf(jifu.CodeInvalid, "pan: card number must be digits only")
		}
	}
	if !Luhn(p) {
		return jifu.Errorf(jifu.CodeInvalid, "pan: card number fails the Luhn check")
	}
	return nil
}

// Mask keeps the first 6 and last 4 digits and replaces the rest with '*'.
// A string too short to mask safely (under 11 characters) is all '*'.
func Mask(p string) string {
	if len(p) < 11 {
		return strings.Repeat("*", len(p))
	}
	return p[:6] + strings.Repeat("*", len(p)-10) + p[len(p)-4:]
}

// BIN is the issuer identification number: the first 6 digits.
func BIN(p string) string {
	if len(p) < 6 {
		return ""
	}
	return p[:6]
}

// Last4 is the last 4 digits.
func Last4(p string) string {
	if len(p) < 4 {
		return ""
	}
	return p[len(p)-4:]
}
