// Package cardreader is the Go card-reader SDK: it plays the reader's part
// of a card-present payment and builds the signed request the platform's
// card core accepts (see host/cardpay/request and docs/CARDPAY.md).
//
// A reader holds its DUKPT initial key (injected at the factory from the
// base derivation key) and its key serial number; each payment advances the
// KSN counter, encrypts the tracks with the transaction's data key
// (TDES-CBC, IV zero) and the PIN block (ISO 9564 format 0) with its PIN
// key, and signs the request with the merchant's pay_secret. An AES DUKPT
// reader (ANSI X9.24-3, Config.AES) uses AES-CBC (IV zero) for the tracks
// and an ISO 9564 format 4 PIN block under its AES PIN key.
//
//	r, err := cardreader.New(cardreader.Config{OrgID: "ORG1", MerchantID: "M100",
//		PaySecret: secret, IPEK: ipek, KSN: initialKSN})
//	aesReader, err := cardreader.New(cardreader.Config{OrgID: "ORG1", MerchantID: "M100",
//		PaySecret: secret, IPEK: dukpt.AESInitialKey(bdk, aesKSN), AES: true, AESKSN: aesKSN})
//	req, err := r.Build(cardreader.Payment{OrderID: "A-1", Amount: 12345,
//		ProductName: "咖啡", Track2: t2, PIN: "1234"})
//	body := req.Encode() // POST to the card endpoint
package cardreader

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay/dukpt"
	"github.com/jifu-open/jifu/host/cardpay/pinblock"
	"github.com/jifu-open/jifu/host/cardpay/request"
	"github.com/jifu-open/jifu/host/cardpay/track"
)

// Config is one reader bound to one merchant.
type Config struct {
	OrgID      string
	MerchantID string
	PaySecret  string
	IPEK       dukpt.Key // the reader's initial key (TDES IPEK, or the AES-128 initial key with AES)
	KSN        dukpt.KSN // initial KSN; its counter is where the reader starts
	// AES makes this an AES DUKPT reader (X9.24-3, AES-128): AESKSN is then
	// its KSN (KSN is ignored).
	AES    bool
	AESKSN dukpt.AESKSN
	Rand   io.Reader // the format 4 PIN block's random fill; default crypto/rand
	Now    func() time.Time
}

// Reader builds requests. It is safe for concurrent use; each Build uses
// the next valid KSN counter.
type Reader struct {
	cfg      Config
	mu       sync.Mutex
	counter  uint32
	translog uint32
}

// New returns a reader; the first Build uses the counter after cfg.KSN's.
func New(cfg Config) (*Reader, error) {
	if cfg.OrgID == "" || cfg.MerchantID == "" || cfg.PaySecret == "" {
		return nil, jifu.Errorf(jifu.CodeInvalid, "cardreader: org, merchant and pay_secret are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	c := cfg.KSN.Counter()
	if cfg.AES {
		c = cfg.AESKSN.Counter()
	}
	return &Reader{cfg: cfg, counter: c}, nil
}

// Payment is what the merchant app and the card give the reader.
type Payment struct {
	OrderID     string
	Amount      int64 // fen
	ProductName string
	Params      string
	Track2      string // as read from the stripe (or the chip's track 2 equivalent)
	Track3      string // optional
	PIN         string // optional: empty means no PIN entered
	ICData      []byte // optional BER-TLV chip data (field 55 content)
}

// nextKSN advances to the next counter with at most 10 one bits (X9.24-1).
func (r *Reader) nextKSN() (dukpt.KSN, uint32, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		r.counter++
		if r.counter > dukpt.CounterMask {
			return dukpt.KSN{}, 0, jifu.Errorf(jifu.CodeLimit, "cardreader: KSN counter exhausted; the reader needs a new key")
		}
		k := r.cfg.KSN.WithCounter(r.counter)
		if k.ValidCounter() {
			r.translog = r.translog%999999 + 1
			return k, r.translog, nil
		}
	}
}

// Counter is the KSN counter of the last request built (readers persist
// it: a counter must never be used twice).
func (r *Reader) Counter() uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counter
}

// SetCounter moves the reader's counter (tests replaying or skipping).
func (r *Reader) SetCounter(c uint32) {
	r.mu.Lock()
	r.counter = c
	r.mu.Unlock()
}

// nextAESKSN advances to the next counter with at most 16 one bits
// (X9.24-3).
func (r *Reader) nextAESKSN() (dukpt.AESKSN, uint32, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if r.counter == math.MaxUint32 {
			return dukpt.AESKSN{}, 0, jifu.Errorf(jifu.CodeLimit, "cardreader: KSN counter exhausted; the reader needs a new key")
		}
		r.counter++
		k := r.cfg.AESKSN.WithCounter(r.counter)
		if k.ValidCounter() {
			r.translog = r.translog%999999 + 1
			return k, r.translog, nil
		}
	}
}

// sealed is one transaction's card data under its DUKPT keys.
type sealed struct {
	ksn, tracks, pinBlock string
	translog              uint32
}

func (r *Reader) seal(p Payment, pan string) (sealed, error) {
	plain := EncodeTracks(p.Track2, p.Track3)
	defer clear(plain)
	var out sealed
	var enc, blk []byte
	if r.cfg.AES {
		ksn, translog, err := r.nextAESKSN()
		if err != nil {
			return out, err
		}
		keys, err := dukpt.DeriveAES(r.cfg.IPEK, ksn)
		if err != nil {
			return out, err
		}
		plain16 := make([]byte, (len(plain)+15)/16*16) // AES blocks: zero-pad to 16
		defer clear(plain16)
		copy(plain16, plain)
		if enc, err = dukpt.EncryptAESCBC(keys.Data, plain16); err != nil {
			return out, err
		}
		if p.PIN != "" {
			if blk, err = pinblock.EncryptISO4(keys.PIN, p.PIN, pan, r.cfg.Rand); err != nil {
				return out, err
			}
		}
		out.ksn, out.translog = ksn.String(), translog
	} else {
		ksn, translog, err := r.nextKSN()
		if err != nil {
			return out, err
		}
		keys, err := dukpt.Derive(r.cfg.IPEK, ksn)
		if err != nil {
			return out, err
		}
		if enc, err = dukpt.EncryptCBC(keys.Data, plain); err != nil {
			return out, err
		}
		if p.PIN != "" {
			if blk, err = pinblock.EncryptISO0(keys.PIN, p.PIN, pan); err != nil {
				return out, err
			}
		}
		out.ksn, out.translog = ksn.String(), translog
	}
	out.tracks = strings.ToUpper(hex.EncodeToString(enc))
	if blk != nil {
		out.pinBlock = strings.ToUpper(hex.EncodeToString(blk))
	}
	return out, nil
}

// Build encrypts the card data and returns the signed request.
func (r *Reader) Build(p Payment) (*request.Request, error) {
	t2, err := track.ParseTrack2(p.Track2)
	if err != nil {
		return nil, err
	}
	defer t2.Wipe()
	sd, err := r.seal(p, t2.Card().PAN)
	if err != nil {
		return nil, err
	}
	req := &request.Request{
		OrgID: r.cfg.OrgID, MerchantID: r.cfg.MerchantID, OrderID: p.OrderID, PayMethod: request.PayMethodCard,
		AmountText: strconv.FormatInt(p.Amount, 10), ProductName: p.ProductName,
		Timestamp: strconv.FormatInt(r.cfg.Now().Unix(), 10), Encoding: request.EncodingUTF8, Params: p.Params,
		EnTracks: sd.tracks, TranslogNo: leftPad(sd.translog, 6), KSN: sd.ksn, CardPassword: sd.pinBlock,
	}
	if len(p.ICData) > 0 {
		req.ICData = strings.ToUpper(hex.EncodeToString(p.ICData))
	}
	req.Sign = req.ComputeSign(r.cfg.PaySecret)
	if err := req.Check(); err != nil {
		return nil, err
	}
	return req, nil
}

// EncodeTracks is the plaintext of en_tracks: track 2, then '|' and track 3
// when there is one, ASCII, padded with 0x00 to a multiple of 8 bytes.
func EncodeTracks(track2, track3 string) []byte {
	s := track2
	if track3 != "" {
		s += "|" + track3
	}
	n := (len(s) + 7) / 8 * 8
	b := make([]byte, n)
	copy(b, s)
	return b
}

func leftPad(n uint32, w int) string {
	s := strconv.FormatUint(uint64(n), 10)
	return strings.Repeat("0", w-len(s)) + s
}

// BuildRefund returns the signed body of POST /card/refund or /card/void
// (host/cardpay/request.Refund): give back amount fen of the payment
// orderID; refundID is the merchant's id of this refund or void (sending
// it again returns the first result). The merchant's server sends it, not
// the reader: it needs only the merchant's pay_secret.
func BuildRefund(orgID, merchantID, paySecret, orderID, refundID string, amount int64, now time.Time) (*request.Refund, error) {
	req := &request.Refund{OrgID: orgID, MerchantID: merchantID, OrderID: orderID, RefundID: refundID,
		AmountText: strconv.FormatInt(amount, 10), Timestamp: strconv.FormatInt(now.Unix(), 10)}
	req.Sign = req.ComputeSign(paySecret)
	if err := req.Check(); err != nil {
		return nil, err
	}
	return req, nil
}

// Refund is BuildRefund for this reader's merchant.
func (r *Reader) Refund(orderID, refundID string, amount int64) (*request.Refund, error) {
	return BuildRefund(r.cfg.OrgID, r.cfg.MerchantID, r.cfg.PaySecret, orderID, refundID, amount, r.cfg.Now())
}
