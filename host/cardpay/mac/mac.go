// Package mac computes the message authentication codes of the card
// channel: the ANSI X9.19 retail MAC (ISO 9797-1 algorithm 3, DES, zero
// padding) and the China UnionPay POS "ECB" MAC of ISO 8583 field 64.
//
//	m := mac.X919(key, data)              // 8 bytes
//	f64, err := mac.UnionPayECB(mak, mab) // 8 ASCII hex characters
//
// Both are written on crypto/des. Compare MACs with Equal (constant time).
package mac

import (
	"crypto/cipher"
	"crypto/des"
	"crypto/subtle"
	"encoding/hex"
	"strings"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay/dukpt"
)

// X919 is the ANSI X9.19 retail MAC of data under the double-length key k:
// DES-CBC with the left half over the zero-padded data (IV zero), then the
// last block decrypted with the right half and encrypted with the left half.
// Empty data is one zero block.
func X919(k dukpt.Key, data []byte) [8]byte {
	left, _ := des.NewCipher(k[:8])
	right, _ := des.NewCipher(k[8:])
	var acc [8]byte
	for off := 0; off == 0 || off < len(data); off += 8 {
		end := min(off+8, len(data))
		subtle.XORBytes(acc[:end-off], acc[:end-off], data[off:end])
		left.Encrypt(acc[:], acc[:])
	}
	right.Decrypt(acc[:], acc[:])
	left.Encrypt(acc[:], acc[:])
	return acc
}

// xorBlocks XORs every 8-byte block of data (the last zero-padded).
func xorBlocks(data []byte) [8]byte {
	var acc [8]byte
	for off := 0; off < len(data); off += 8 {
		end := min(off+8, len(data))
		subtle.XORBytes(acc[:end-off], acc[:end-off], data[off:end])
	}
	return acc
}

// block returns DES for an 8-byte key and two-key TDES for a 16-byte key.
func block(key []byte) (cipher.Block, error) {
	switch len(key) {
	case 8:
		return des.NewCipher(key)
	case 16:
		var k dukpt.Key
		copy(k[:], key)
		return dukpt.TDES(k), nil
	}
	return nil, jifu.Errorf(jifu.CodeInvalid, "mac: a MAC key is 8 or 16 bytes, got %d", len(key))
}

// UnionPayECB is the China UnionPay POS terminal MAC ("ECB" algorithm) of
// the MAC element block mab (MTI through the last field before 64) under
// the MAC working key (8 bytes: DES; 16 bytes: TDES):
//
//  1. XOR all 8-byte blocks of mab, the last padded with 0x00;
//  2. write the result as 16 upper-case hex characters;
//  3. encrypt the first 8 characters;
//  4. XOR the result with the last 8 characters and encrypt again;
//  5. write that as hex; the MAC is its first 8 characters (as ASCII).
func UnionPayECB(key, mab []byte) ([8]byte, error) {
	var out [8]byte
	b, err := block(key)
	if err != nil {
		return out, err
	}
	x := xorBlocks(mab)
	h := []byte(strings.ToUpper(hex.EncodeToString(x[:])))
	var e [8]byte
	b.Encrypt(e[:], h[:8])
	subtle.XORBytes(e[:], e[:], h[8:])
	b.Encrypt(e[:], e[:])
	copy(out[:], strings.ToUpper(hex.EncodeToString(e[:]))[:8])
	return out, nil
}

// Equal compares two MACs in constant time.
func Equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
