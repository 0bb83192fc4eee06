package cardpay

import (
	"context"
	"crypto/subtle"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay/dukpt"
)

// SeedBDK is RegisterBDK for public demo and test keys, idempotent: a
// missing row is created; a row that opens to this key under the current
// master key is kept; a row sealed under another master key (a data
// directory recreated over the same database) is sealed again under this
// one, which is harmless only because the caller knows the key's value.
// A row holding another key, or of another scheme, is a conflict. Never use
// it for production BDKs.
func (s *Service) SeedBDK(ctx context.Context, id, scheme string, bdk dukpt.Key) error {
	err := s.RegisterBDK(ctx, id, scheme, bdk)
	if jifu.ErrorCode(err) != jifu.CodeConflict {
		return err
	}
	var sealed []byte
	var have string
	if err := s.pool.QueryRow(ctx, `SELECT scheme, key_enc FROM card_bdks WHERE id = $1`, id).Scan(&have, &sealed); err != nil {
		return dbErr(ctx, "load BDK", err)
	}
	if have != scheme {
		return jifu.Errorf(jifu.CodeConflict, "cardpay: BDK %q exists with scheme %s", id, have)
	}
	raw, err := s.vault.open("bdk:"+id, sealed)
	if err == nil {
		same := subtle.ConstantTimeCompare(raw, bdk[:]) == 1
		wipe(raw)
		if !same {
			return jifu.Errorf(jifu.CodeConflict, "cardpay: BDK %q exists with another key", id)
		}
		return nil
	}
	resealed, err := s.vault.seal("bdk:"+id, bdk[:])
	if err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `UPDATE card_bdks SET key_enc = $2 WHERE id = $1`, id, resealed); err != nil {
		return dbErr(ctx, "reseal BDK", err)
	}
	return nil
}
