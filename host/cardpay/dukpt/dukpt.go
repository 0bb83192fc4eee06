// Package dukpt derives Derived Unique Key Per Transaction keys: ANSI X9.24-1
// (TDES, 2009 edition, the scheme the card readers use) and, as a second
// option, ANSI X9.24-3 AES DUKPT. It is written on crypto/des and crypto/aes
// only; no key material leaves it except the derived keys it returns, and
// nothing here logs.
//
// The host side (which holds the base derivation key, BDK) derives a
// transaction's working keys from the BDK and the key serial number (KSN)
// the reader sent:
//
//	ksn, err := dukpt.ParseKSN("FFFF9876543210E00001")
//	ipek := dukpt.IPEK(bdk, ksn)
//	keys, err := dukpt.Derive(ipek, ksn) // PIN, MAC and data keys of this transaction
//
// Key variants follow X9.24-1 2009 Annex A: the PIN key is the current key
// XOR 00000000000000FF00000000000000FF, the request MAC key XOR
// 000000000000FF00000000000000FF00, the response MAC key XOR
// 00000000FF00000000000000FF000000, and the request data key XOR
// 0000000000FF00000000000000FF0000 followed by the one-way step (each half
// encrypted with the variant key under TDES-ECB).
package dukpt

import (
	"crypto/cipher"
	"crypto/des"
	"encoding/hex"
	"strings"

	"github.com/jifu-open/jifu"
)

// KSNLen is the length of a TDES key serial number in bytes (20 hex digits):
// 59 bits of key set and device identity, then a 21-bit transaction counter.
const KSNLen = 10

// CounterMask selects the 21-bit transaction counter in the KSN's last 3 bytes.
const CounterMask = 0x1FFFFF

// MaxOneBits is the most 1 bits a valid X9.24-1 counter holds; readers skip
// counters with more.
const MaxOneBits = 10

// KSN is a TDES DUKPT key serial number.
type KSN [KSNLen]byte

// ParseKSN parses 20 hex digits (either case).
func ParseKSN(s string) (KSN, error) {
	var k KSN
	if len(s) != 2*KSNLen {
		return k, jifu.Errorf(jifu.CodeInvalid, "dukpt: KSN must be %d hex digits, got %d", 2*KSNLen, len(s))
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return k, jifu.Errorf(jifu.CodeInvalid, "dukpt: KSN is not hex")
	}
	return k, nil
}

// String is the KSN in upper-case hex. A KSN is not secret.
func (k KSN) String() string { return strings.ToUpper(hex.EncodeToString(k[:])) }

// Counter is the 21-bit transaction counter.
func (k KSN) Counter() uint32 {
	return (uint32(k[7])<<16 | uint32(k[8])<<8 | uint32(k[9])) & CounterMask
}

// Initial is the KSN with its counter zeroed: the key set and device part
// that identifies the reader's initial key.
func (k KSN) Initial() KSN {
	k[7] &^= 0x1F
	k[8], k[9] = 0, 0
	return k
}

// WithCounter returns the KSN with its counter set to c (masked to 21 bits).
func (k KSN) WithCounter(c uint32) KSN {
	k = k.Initial()
	c &= CounterMask
	k[7] |= byte(c >> 16)
	k[8], k[9] = byte(c>>8), byte(c)
	return k
}

// ValidCounter reports whether the counter is one a reader may use: not zero
// and at most MaxOneBits bits set.
func (k KSN) ValidCounter() bool {
	c := k.Counter()
	n := 0
	for ; c != 0; c &= c - 1 {
		n++
	}
	return n >= 1 && n <= MaxOneBits
}

// Key is a double-length (16-byte) TDES key.
type Key [16]byte

// String never shows key material.
func (Key) String() string { return "dukpt.Key(<redacted>)" }

// GoString never shows key material.
func (k Key) GoString() string { return k.String() }

// Hex returns the key in upper-case hex, for test vectors and key injection
// only; never log it.
func (k Key) Hex() string { return strings.ToUpper(hex.EncodeToString(k[:])) }

// ParseKey parses 32 hex digits.
func ParseKey(s string) (Key, error) {
	var k Key
	if len(s) != 32 {
		return k, jifu.Errorf(jifu.CodeInvalid, "dukpt: a double-length key is 32 hex digits, got %d", len(s))
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return k, jifu.Errorf(jifu.CodeInvalid, "dukpt: key is not hex")
	}
	return k, nil
}

var (
	keyMask     = Key{0xC0, 0xC0, 0xC0, 0xC0, 0, 0, 0, 0, 0xC0, 0xC0, 0xC0, 0xC0, 0, 0, 0, 0}
	pinVariant  = Key{7: 0xFF, 15: 0xFF}
	macVariant  = Key{6: 0xFF, 14: 0xFF}
	macResp     = Key{4: 0xFF, 12: 0xFF}
	dataVariant = Key{5: 0xFF, 13: 0xFF}
	dataResp    = Key{3: 0xFF, 11: 0xFF}
)

func xor(a, b Key) Key {
	for i := range a {
		a[i] ^= b[i]
	}
	return a
}

// TDES returns the two-key triple-DES block cipher of k (K1, K2, K1).
func TDES(k Key) cipher.Block {
	var k24 [24]byte
	copy(k24[:], k[:])
	copy(k24[16:], k[:8])
	b, err := des.NewTripleDESCipher(k24[:])
	if err != nil {
		panic("dukpt: 24-byte TDES key rejected: " + err.Error()) // cannot happen: length is fixed
	}
	return b
}

// IPEK derives the initial PIN encryption key (initial key) of the reader
// identified by ksn from the base derivation key.
func IPEK(bdk Key, ksn KSN) Key {
	var in, l, r [8]byte
	init := ksn.Initial()
	copy(in[:], init[:8])
	TDES(bdk).Encrypt(l[:], in[:])
	TDES(xor(bdk, keyMask)).Encrypt(r[:], in[:])
	var out Key
	copy(out[:8], l[:])
	copy(out[8:], r[:])
	return out
}

// nonReversible is the X9.24-1 non-reversible key generation process: a
// new key from key and the 8-byte KSN register.
func nonReversible(key Key, reg [8]byte) Key {
	half := func(k Key) [8]byte {
		var msg, out [8]byte
		for i := range msg {
			msg[i] = reg[i] ^ k[8+i]
		}
		c, _ := des.NewCipher(k[:8])
		c.Encrypt(out[:], msg[:])
		for i := range out {
			out[i] ^= k[8+i]
		}
		return out
	}
	r := half(key)
	l := half(xor(key, keyMask))
	var out Key
	copy(out[:8], l[:])
	copy(out[8:], r[:])
	return out
}

// CurrentKey derives the transaction key for ksn's counter from the
// initial key: one non-reversible step per counter bit, high bit first.
func CurrentKey(ipek Key, ksn KSN) (Key, error) {
	c := ksn.Counter()
	if c == 0 {
		return Key{}, jifu.Errorf(jifu.CodeInvalid, "dukpt: KSN counter is zero")
	}
	var reg [8]byte
	init := ksn.Initial()
	copy(reg[:], init[2:])
	key := ipek
	for bit := uint32(1 << 20); bit != 0; bit >>= 1 {
		if c&bit == 0 {
			continue
		}
		reg[5] |= byte(bit >> 16)
		reg[6] |= byte(bit >> 8)
		reg[7] |= byte(bit)
		key = nonReversible(key, reg)
	}
	return key, nil
}

// Keys are one transaction's working keys.
type Keys struct {
	PIN         Key // encrypts the PIN block (TDES-ECB)
	MACRequest  Key // X9.19 MAC of the request
	MACResponse Key // X9.19 MAC of the response
	Data        Key // encrypts request data (tracks), TDES-CBC
	DataResp    Key // encrypts response data
}

// String never shows key material.
func (Keys) String() string { return "dukpt.Keys(<redacted>)" }

// GoString never shows key material.
func (k Keys) GoString() string { return k.String() }

// Derive returns the working keys of the transaction ksn names, from the
// reader's initial key.
func Derive(ipek Key, ksn KSN) (Keys, error) {
	cur, err := CurrentKey(ipek, ksn)
	if err != nil {
		return Keys{}, err
	}
	return Variants(cur), nil
}

// DeriveFromBDK is IPEK then Derive.
func DeriveFromBDK(bdk Key, ksn KSN) (Keys, error) {
	return Derive(IPEK(bdk, ksn), ksn)
}

// Variants applies the X9.24-1 2009 variant masks to a current key.
func Variants(cur Key) Keys {
	return Keys{
		PIN:         xor(cur, pinVariant),
		MACRequest:  xor(cur, macVariant),
		MACResponse: xor(cur, macResp),
		Data:        oneWay(xor(cur, dataVariant)),
		DataResp:    oneWay(xor(cur, dataResp)),
	}
}

// oneWay encrypts each half of k with k itself (TDES-ECB): the data key step.
func oneWay(k Key) Key {
	var out Key
	b := TDES(k)
	b.Encrypt(out[:8], k[:8])
	b.Encrypt(out[8:], k[8:])
	return out
}

// EncryptCBC encrypts data (a multiple of 8 bytes) with TDES-CBC, zero IV:
// how readers encrypt tracks under the data key.
func EncryptCBC(k Key, data []byte) ([]byte, error) {
	if len(data) == 0 || len(data)%8 != 0 {
		return nil, jifu.Errorf(jifu.CodeInvalid, "dukpt: TDES-CBC input must be a non-empty multiple of 8 bytes, got %d", len(data))
	}
	out := make([]byte, len(data))
	cipher.NewCBCEncrypter(TDES(k), make([]byte, 8)).CryptBlocks(out, data)
	return out, nil
}

// DecryptCBC reverses EncryptCBC.
func DecryptCBC(k Key, data []byte) ([]byte, error) {
	if len(data) == 0 || len(data)%8 != 0 {
		return nil, jifu.Errorf(jifu.CodeInvalid, "dukpt: TDES-CBC ciphertext must be a non-empty multiple of 8 bytes, got %d", len(data))
	}
	out := make([]byte, len(data))
	cipher.NewCBCDecrypter(TDES(k), make([]byte, 8)).CryptBlocks(out, data)
	return out, nil
}
