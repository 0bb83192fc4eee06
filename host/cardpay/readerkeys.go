package cardpay

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay/dukpt"
)

// DUKPT schemes of a BDK and of the readers derived from it.
const (
	SchemeTDES = "tdes" // ANSI X9.24-1-2009: 10-byte KSN, TDES-CBC tracks, ISO 9564 format 0/3 PIN block
	SchemeAES  = "aes"  // ANSI X9.24-3-2017 AES-128: 12-byte KSN, AES-CBC tracks, ISO 9564 format 4 PIN block
)

// readerKSN is what the claim needs of either scheme's KSN (dukpt.KSN and
// dukpt.AESKSN): its text and its counter.
type readerKSN interface {
	String() string
	Counter() uint32
}

// requestKSN is a request's KSN, parsed by its length: 20 hex digits are
// TDES DUKPT, 24 AES DUKPT.
type requestKSN struct {
	scheme string
	tdes   dukpt.KSN
	aes    dukpt.AESKSN
}

func parseRequestKSN(s string) (requestKSN, error) {
	var k requestKSN
	var err error
	switch len(s) {
	case 2 * dukpt.KSNLen:
		k.scheme = SchemeTDES
		if k.tdes, err = dukpt.ParseKSN(s); err != nil {
			return k, err
		}
		if !k.tdes.ValidCounter() {
			return k, jifu.Errorf(jifu.CodeInvalid, "cardpay: KSN counter is not a valid DUKPT counter")
		}
	case 2 * dukpt.AESKSNLen:
		k.scheme = SchemeAES
		if k.aes, err = dukpt.ParseAESKSN(s); err != nil {
			return k, err
		}
		if !k.aes.ValidCounter() {
			return k, jifu.Errorf(jifu.CodeInvalid, "cardpay: KSN counter is not a valid AES DUKPT counter (1 to %d one bits)", dukpt.AESMaxOneBits)
		}
	default:
		return k, jifu.Errorf(jifu.CodeInvalid, "cardpay: KSN must be 20 (TDES) or 24 (AES) hex digits")
	}
	return k, nil
}

// prefix is the reader's identity: the KSN with its counter zeroed.
func (k requestKSN) prefix() string {
	if k.scheme == SchemeAES {
		return k.aes.Initial().String()
	}
	return k.tdes.Initial().String()
}

func (k requestKSN) ksn() readerKSN {
	if k.scheme == SchemeAES {
		return k.aes
	}
	return k.tdes
}

// initialKey derives a reader's initial key from its BDK; prefix is the
// reader's KSN with the counter zeroed.
func initialKey(scheme string, bdk dukpt.Key, prefix string) (dukpt.Key, error) {
	switch {
	case scheme == SchemeAES && len(prefix) == 2*dukpt.AESKSNLen:
		ksn, err := dukpt.ParseAESKSN(prefix)
		return dukpt.AESInitialKey(bdk, ksn), err
	case scheme == SchemeTDES && len(prefix) == 2*dukpt.KSNLen:
		ksn, err := dukpt.ParseKSN(prefix)
		return dukpt.IPEK(bdk, ksn), err
	}
	return dukpt.Key{}, jifu.Errorf(jifu.CodeInternal, "cardpay: reader %s does not fit its %s BDK", prefix, scheme)
}

// txnKeys are one transaction's working keys in either scheme.
type txnKeys struct {
	scheme string
	tdes   dukpt.Keys
	aes    dukpt.AESKeys
}

// String never shows key material.
func (txnKeys) String() string { return "cardpay.txnKeys(<redacted>)" }

func deriveKeys(ik dukpt.Key, k requestKSN) (txnKeys, error) {
	var err error
	out := txnKeys{scheme: k.scheme}
	if k.scheme == SchemeAES {
		out.aes, err = dukpt.DeriveAES(ik, k.aes)
	} else {
		out.tdes, err = dukpt.Derive(ik, k.tdes)
	}
	return out, err
}

// blockSize is the cipher block of en_tracks (and of its zero padding).
func (k txnKeys) blockSize() int {
	if k.scheme == SchemeAES {
		return 16
	}
	return 8
}

// decryptTracks decrypts en_tracks: TDES-CBC or AES-CBC, IV zero, under the
// data key.
func (k txnKeys) decryptTracks(ct []byte) ([]byte, error) {
	if k.scheme == SchemeAES {
		return dukpt.DecryptAESCBC(k.aes.Data, ct)
	}
	return dukpt.DecryptCBC(k.tdes.Data, ct)
}

// aesPINTranslator is the acquirer link's translation of an ISO 9564
// format 4 block under an AES DUKPT PIN key (*acquirer.Client has it).
type aesPINTranslator interface {
	TranslatePINISO4(ctx context.Context, readerKey dukpt.Key, block []byte, pan string) ([]byte, error)
}

// translatePIN turns the reader's PIN block into the acquirer's format 0
// block under its zone PIN key: TDES readers send format 0/3 (8 bytes), AES
// readers format 4 (16 bytes; request.Check enforces the pairing).
func (s *Service) translatePIN(ctx context.Context, k txnKeys, block []byte, pan string) ([]byte, error) {
	if k.scheme != SchemeAES {
		return s.acq.TranslatePIN(ctx, k.tdes.PIN, block, pan)
	}
	t, ok := s.acq.(aesPINTranslator)
	if !ok {
		return nil, jifu.Errorf(jifu.CodeUnavailable, "cardpay: the acquirer link cannot translate AES (format 4) PIN blocks")
	}
	return t.TranslatePINISO4(ctx, k.aes.PIN, block, pan)
}

// terminalPrefix checks a registration's KSN against its BDK's scheme and
// returns the reader's identity (the KSN with its counter zeroed).
func (s *Service) terminalPrefix(ctx context.Context, t Terminal) (string, error) {
	var scheme string
	err := s.pool.QueryRow(ctx, `SELECT scheme FROM card_bdks WHERE id = $1`, t.BDKID).Scan(&scheme)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", jifu.Errorf(jifu.CodeNotFound, "cardpay: no BDK %q", t.BDKID)
	}
	if err != nil {
		return "", dbErr(ctx, "load BDK scheme", err)
	}
	switch scheme {
	case SchemeAES:
		ksn, err := dukpt.ParseAESKSN(t.KSN)
		if err != nil {
			return "", jifu.Errorf(jifu.CodeInvalid, "cardpay: BDK %q is AES DUKPT: the reader's KSN must be 24 hex digits", t.BDKID)
		}
		return ksn.Initial().String(), nil
	default:
		ksn, err := dukpt.ParseKSN(t.KSN)
		if err != nil {
			return "", jifu.Errorf(jifu.CodeInvalid, "cardpay: BDK %q is TDES DUKPT: the reader's KSN must be 20 hex digits", t.BDKID)
		}
		return ksn.Initial().String(), nil
	}
}
