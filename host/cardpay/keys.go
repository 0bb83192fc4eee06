package cardpay

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"

	"github.com/jifu-open/jifu"
)

// MasterKeyBytes is the length of the platform master key (AES-256), the
// same key host/configstore uses.
const MasterKeyBytes = 32

const sealV1 = 0x01

// vault encrypts BDKs and pay secrets at rest (AES-256-GCM under the master
// key, a random nonce per write, the row's identity as additional data) and
// derives the card-token key. It never prints key material.
type vault struct {
	aead     cipher.AEAD
	tokenKey []byte
}

func newVault(master []byte) (*vault, error) {
	if len(master) != MasterKeyBytes {
		return nil, jifu.Errorf(jifu.CodeInvalid, "cardpay: master key is %d bytes, want %d", len(master), MasterKeyBytes)
	}
	// Separate keys for sealing and tokens, both derived from the master key.
	sealKey := derive(master, "jifu/cardpay/seal/v1")
	b, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeInternal, "cardpay: %w", err)
	}
	aead, err := cipher.NewGCM(b)
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeInternal, "cardpay: %w", err)
	}
	return &vault{aead: aead, tokenKey: derive(master, "jifu/cardpay/card-token/v1")}, nil
}

func derive(master []byte, label string) []byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte(label))
	return m.Sum(nil)
}

func (v *vault) String() string { return "cardpay.vault(<redacted>)" }

func (v *vault) seal(ad string, plain []byte) ([]byte, error) {
	out := make([]byte, 1+12, 1+12+len(plain)+v.aead.Overhead())
	out[0] = sealV1
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, jifu.Errorf(jifu.CodeInternal, "cardpay: nonce: %w", err)
	}
	return v.aead.Seal(out, out[1:13], plain, []byte(ad)), nil
}

func (v *vault) open(ad string, sealed []byte) ([]byte, error) {
	if len(sealed) < 13+v.aead.Overhead() || sealed[0] != sealV1 {
		return nil, jifu.Errorf(jifu.CodeInternal, "cardpay: sealed value of %s in an unknown format", ad)
	}
	p, err := v.aead.Open(nil, sealed[1:13], sealed[13:], []byte(ad))
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeInternal, "cardpay: cannot decrypt %s: wrong master key or altered row", ad)
	}
	return p, nil
}

// token is the card's stable identifier: HMAC-SHA256 of the PAN under the
// token key, hex. It cannot be reversed to the PAN without the master key.
func (v *vault) token(pan string) string {
	m := hmac.New(sha256.New, v.tokenKey)
	m.Write([]byte(pan))
	return hex.EncodeToString(m.Sum(nil))
}
