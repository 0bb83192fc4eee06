package dukpt

import (
	"crypto/aes"
	"encoding/binary"
	"encoding/hex"
	"strings"

	"github.com/jifu-open/jifu"
)

// AES DUKPT (ANSI X9.24-3-2017), AES-128 keys only: the BDK, the initial key
// and every working key are 16 bytes. The 12-byte KSN is the 8-byte initial
// key ID (4-byte BDK ID, 4-byte derivation ID) and a 32-bit counter.

// AESKSNLen is the length of an AES DUKPT KSN in bytes.
const AESKSNLen = 12

// AESKSN is an AES DUKPT key serial number.
type AESKSN [AESKSNLen]byte

// ParseAESKSN parses 24 hex digits.
func ParseAESKSN(s string) (AESKSN, error) {
	var k AESKSN
	if len(s) != 2*AESKSNLen {
		return k, jifu.Errorf(jifu.CodeInvalid, "dukpt: AES KSN must be %d hex digits, got %d", 2*AESKSNLen, len(s))
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return k, jifu.Errorf(jifu.CodeInvalid, "dukpt: AES KSN is not hex")
	}
	return k, nil
}

// String is the KSN in upper-case hex.
func (k AESKSN) String() string { return strings.ToUpper(hex.EncodeToString(k[:])) }

// Counter is the 32-bit transaction counter.
func (k AESKSN) Counter() uint32 { return binary.BigEndian.Uint32(k[8:]) }

// AES key usages of X9.24-3 derivation data.
const (
	UsageKeyDerivation     = 0x8000
	UsageInitialKey        = 0x8001
	UsagePINEncryption     = 0x1000
	UsageMACGeneration     = 0x2000
	UsageMACVerification   = 0x2001
	UsageDataEncryptionEnc = 0x3000
	UsageDataEncryptionDec = 0x3001
)

// AESMaxOneBits is the most 1 bits an AES DUKPT counter may hold.
const AESMaxOneBits = 16

func aesDerive(key Key, usage uint16, tail [8]byte) Key {
	var data [16]byte
	data[0], data[1] = 0x01, 0x01 // version 1, key block counter 1
	binary.BigEndian.PutUint16(data[2:], usage)
	binary.BigEndian.PutUint16(data[4:], 0x0002) // AES-128
	binary.BigEndian.PutUint16(data[6:], 128)    // bits of the derived key
	copy(data[8:], tail[:])
	b, _ := aes.NewCipher(key[:])
	var out Key
	b.Encrypt(out[:], data[:])
	return out
}

// AESInitialKey derives the reader's initial key from an AES-128 BDK and the
// 8-byte initial key ID (the KSN's first 8 bytes).
func AESInitialKey(bdk Key, ksn AESKSN) Key {
	var id [8]byte
	copy(id[:], ksn[:8])
	return aesDerive(bdk, UsageInitialKey, id)
}

// AESTransactionKey derives the intermediate derivation key of ksn's
// counter from the initial key, one AES step per counter bit, high bit first.
func AESTransactionKey(ik Key, ksn AESKSN) (Key, error) {
	c := ksn.Counter()
	n := 0
	for x := c; x != 0; x &= x - 1 {
		n++
	}
	if n == 0 || n > AESMaxOneBits {
		return Key{}, jifu.Errorf(jifu.CodeInvalid, "dukpt: AES KSN counter %d is not a valid counter", c)
	}
	key := ik
	var work uint32
	for bit := uint32(1 << 31); bit != 0; bit >>= 1 {
		if c&bit == 0 {
			continue
		}
		work |= bit
		key = aesDerive(key, UsageKeyDerivation, aesTail(ksn, work))
	}
	return key, nil
}

func aesTail(ksn AESKSN, counter uint32) [8]byte {
	var t [8]byte
	copy(t[:4], ksn[4:8])
	binary.BigEndian.PutUint32(t[4:], counter)
	return t
}

// AESWorkingKey derives the AES-128 working key of the given usage (one of
// the Usage constants) for ksn's transaction from the initial key.
func AESWorkingKey(ik Key, ksn AESKSN, usage uint16) (Key, error) {
	tk, err := AESTransactionKey(ik, ksn)
	if err != nil {
		return Key{}, err
	}
	return aesDerive(tk, usage, aesTail(ksn, ksn.Counter())), nil
}
