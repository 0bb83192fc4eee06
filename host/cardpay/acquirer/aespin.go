package acquirer

import (
	"context"

	"github.com/jifu-open/jifu/host/cardpay/dukpt"
	"github.com/jifu-open/jifu/host/cardpay/pinblock"
)

// TranslatePINISO4 turns an AES DUKPT reader's ISO 9564 format 4 PIN block
// (16 bytes, under its AES-128 PIN key) into a format 0 block under the
// acquirer's PIN working key; the clear PIN stays inside pinblock.
func (c *Client) TranslatePINISO4(ctx context.Context, readerKey dukpt.Key, block []byte, pan string) ([]byte, error) {
	ks, err := c.keysNow(ctx)
	if err != nil {
		return nil, err
	}
	out, err := pinblock.TranslateISO4(readerKey, block, pan, ks.pik)
	if err == nil {
		c.rememberPIN(out, ks.gen)
	}
	return out, err
}
