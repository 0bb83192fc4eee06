package dukpt

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"

	"github.com/jifu-open/jifu"
)

// What the card core takes from AES DUKPT (ANSI X9.24-3-2017):
//
//   - BDK: AES-128 only; initial key: AES-128 (usage 8001, algorithm 0002).
//   - Working keys: AES-128 only, derived from the transaction's intermediate
//     derivation key with the KSN's derivation ID and counter:
//     PIN encryption (usage 1000) for ISO 9564 format 4 PIN blocks,
//     data encryption, encrypt (usage 3000) for en_tracks (AES-CBC, IV zero),
//     MAC generation (usage 2000) derived for completeness (the request is
//     signed with the merchant's HMAC, not a DUKPT MAC).
//   - Counters: 32 bits, 1 to AESMaxOneBits one bits (X9.24-3 NUM_REG = 32,
//     MAX_WORK = 16); a reader skips the others.
//
// AES-192/256 keys, 2TDEA/3TDEA working keys derived from an AES BDK, and
// HMAC working keys are not supported: no reader in the fleet uses them.

// InitialKeyID is the KSN's first 8 bytes: BDK ID (4) and derivation ID (4).
func (k AESKSN) InitialKeyID() [8]byte {
	var id [8]byte
	copy(id[:], k[:8])
	return id
}

// Initial is the KSN with its counter zeroed: the reader's identity.
func (k AESKSN) Initial() AESKSN {
	clear(k[8:])
	return k
}

// WithCounter returns the KSN with its counter set to c.
func (k AESKSN) WithCounter(c uint32) AESKSN {
	binary.BigEndian.PutUint32(k[8:], c)
	return k
}

// ValidCounter reports whether the counter is one a reader may use: not zero
// and at most AESMaxOneBits one bits.
func (k AESKSN) ValidCounter() bool {
	n := 0
	for c := k.Counter(); c != 0; c &= c - 1 {
		n++
	}
	return n >= 1 && n <= AESMaxOneBits
}

// AESKeys are one AES DUKPT transaction's working keys (AES-128).
type AESKeys struct {
	PIN  Key // ISO 9564 format 4 PIN block (usage 1000)
	MAC  Key // MAC generation (usage 2000)
	Data Key // request data, AES-CBC with a zero IV (usage 3000, encrypt)
}

// String never shows key material.
func (AESKeys) String() string { return "dukpt.AESKeys(<redacted>)" }

// GoString never shows key material.
func (k AESKeys) GoString() string { return k.String() }

// DeriveAES returns the working keys of the transaction ksn names from the
// reader's AES-128 initial key: the intermediate derivation key is computed
// once for the three.
func DeriveAES(ik Key, ksn AESKSN) (AESKeys, error) {
	tk, err := AESTransactionKey(ik, ksn)
	if err != nil {
		return AESKeys{}, err
	}
	tail := aesTail(ksn, ksn.Counter())
	return AESKeys{
		PIN:  aesDerive(tk, UsagePINEncryption, tail),
		MAC:  aesDerive(tk, UsageMACGeneration, tail),
		Data: aesDerive(tk, UsageDataEncryptionEnc, tail),
	}, nil
}

// EncryptAESCBC encrypts data (a non-empty multiple of 16 bytes) with
// AES-128-CBC and a zero IV: how AES readers encrypt tracks.
func EncryptAESCBC(k Key, data []byte) ([]byte, error) {
	if len(data) == 0 || len(data)%aes.BlockSize != 0 {
		return nil, jifu.Errorf(jifu.CodeInvalid, "dukpt: AES-CBC input must be a non-empty multiple of 16 bytes, got %d", len(data))
	}
	b, _ := aes.NewCipher(k[:])
	out := make([]byte, len(data))
	cipher.NewCBCEncrypter(b, make([]byte, aes.BlockSize)).CryptBlocks(out, data)
	return out, nil
}

// DecryptAESCBC reverses EncryptAESCBC.
func DecryptAESCBC(k Key, data []byte) ([]byte, error) {
	if len(data) == 0 || len(data)%aes.BlockSize != 0 {
		return nil, jifu.Errorf(jifu.CodeInvalid, "dukpt: AES-CBC ciphertext must be a non-empty multiple of 16 bytes, got %d", len(data))
	}
	b, _ := aes.NewCipher(k[:])
	out := make([]byte, len(data))
	cipher.NewCBCDecrypter(b, make([]byte, aes.BlockSize)).CryptBlocks(out, data)
	return out, nil
}
