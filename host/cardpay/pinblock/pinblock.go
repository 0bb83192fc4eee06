// Package pinblock builds, encrypts and translates ISO 9564-1 PIN blocks:
// format 0 (the block the readers and the acquirer use), format 3 (format 0
// with random fill) and format 4 (AES, 16 bytes). Written on crypto/des and
// crypto/aes.
//
// A clear PIN exists only inside this package's functions, in buffers wiped
// before they return. The host never sees it: Translate turns a block
// encrypted under a reader's DUKPT PIN key into a format 0 block under the
// acquirer's zone PIN key in one call.
//
//	zoneBlock, err := pinblock.Translate(keys.PIN, readerBlock, pan, zpk)
//
// Errors never include PINs, PANs or blocks.
package pinblock

import (
	"crypto/aes"
	"crypto/subtle"
	"io"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay/dukpt"
)

// PIN lengths ISO 9564 allows.
const (
	MinPIN = 4
	MaxPIN = 12
)

// Formats.
const (
	Format0 = 0
	Format3 = 3
	Format4 = 4
)

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

func checkPIN(pin string) error {
	if len(pin) < MinPIN || len(pin) > MaxPIN {
		return jifu.Errorf(jifu.CodeInvalid, "pinblock: PIN must have %d to %d digits", MinPIN, MaxPIN)
	}
	for i := 0; i < len(pin); i++ {
		if pin[i] < '0' || pin[i] > '9' {
			return jifu.Errorf(jifu.CodeInvalid, "pinblock: PIN must be digits only")
		}
	}
	return nil
}

func checkPAN(pan string, min int) error {
	if len(pan) < min || len(pan) > 19 {
		return jifu.Errorf(jifu.CodeInvalid, "pinblock: PAN must have %d to 19 digits", min)
	}
	for i := 0; i < len(pan); i++ {
		if pan[i] < '0' || pan[i] > '9' {
			return jifu.Errorf(jifu.CodeInvalid, "pinblock: PAN must be digits only")
		}
	}
	return nil
}

// panField0 is the format 0/3 account field: 0000 and the 12 rightmost PAN
// digits excluding the check digit.
func panField0(pan string) [8]byte {
	var f [8]byte
	d := pan[len(pan)-13 : len(pan)-1]
	for i := 0; i < 12; i++ {
		n := 4 + i // nibble index
		f[n/2] |= (d[i] - '0') << (4 * (1 - n%2))
	}
	return f
}

// clear0 is the clear format 0 (fill 0xF) or format 3 (fill A..F from rnd)
// block.
func clear0(format byte, pin, pan string, rnd io.Reader) ([8]byte, error) {
	var b [8]byte
	if err := checkPIN(pin); err != nil {
		return b, err
	}
	if err := checkPAN(pan, 13); err != nil {
		return b, err
	}
	var nib [16]byte
	nib[0], nib[1] = format, byte(len(pin))
	for i := 0; i < len(pin); i++ {
		nib[2+i] = pin[i] - '0'
	}
	var fill [16]byte
	if format == Format3 {
		if _, err := io.ReadFull(rnd, fill[:]); err != nil {
			return b, jifu.Errorf(jifu.CodeInternal, "pinblock: random fill: %w", err)
		}
	}
	for i := 2 + len(pin); i < 16; i++ {
		if format == Format3 {
			nib[i] = 0xA + fill[i]%6
		} else {
			nib[i] = 0xF
		}
	}
	f := panField0(pan)
	for i := range b {
		b[i] = (nib[2*i]<<4 | nib[2*i+1]) ^ f[i]
	}
	wipe(nib[:])
	return b, nil
}

// pinFrom0 checks a clear format 0/3 block against pan and writes the PIN
// digits into pin (len MaxPIN), returning how many.
func pinFrom0(b [8]byte, pan string, pin *[MaxPIN]byte) (int, error) {
	f := panField0(pan)
	var nib [16]byte
	defer wipe(nib[:])
	for i := range b {
		x := b[i] ^ f[i]
		nib[2*i], nib[2*i+1] = x>>4, x&0xF
	}
	format, n := nib[0], int(nib[1])
	if (format != Format0 && format != Format3) || n < MinPIN || n > MaxPIN {
		return 0, jifu.Errorf(jifu.CodeInvalid, "pinblock: not a valid format 0/3 block for this card (wrong key or PAN)")
	}
	for i := 0; i < n; i++ {
		if nib[2+i] > 9 {
			return 0, jifu.Errorf(jifu.CodeInvalid, "pinblock: not a valid format 0/3 block for this card (wrong key or PAN)")
		}
		pin[i] = '0' + nib[2+i]
	}
	for i := 2 + n; i < 16; i++ {
		if (format == Format0 && nib[i] != 0xF) || (format == Format3 && nib[i] < 0xA) {
			return 0, jifu.Errorf(jifu.CodeInvalid, "pinblock: not a valid format 0/3 block for this card (wrong key or PAN)")
		}
	}
	return n, nil
}

// EncryptISO0 builds the format 0 block of pin for pan and encrypts it with
// TDES-ECB under key: what a reader does with its DUKPT PIN key.
func EncryptISO0(key dukpt.Key, pin, pan string) ([]byte, error) {
	return encryptTDES(Format0, key, pin, pan, nil)
}

// EncryptISO3 is EncryptISO0 with format 3's random fill from rnd.
func EncryptISO3(key dukpt.Key, pin, pan string, rnd io.Reader) ([]byte, error) {
	return encryptTDES(Format3, key, pin, pan, rnd)
}

func encryptTDES(format byte, key dukpt.Key, pin, pan string, rnd io.Reader) ([]byte, error) {
	b, err := clear0(format, pin, pan, rnd)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 8)
	dukpt.TDES(key).Encrypt(out, b[:])
	wipe(b[:])
	return out, nil
}

// Translate decrypts an 8-byte format 0 or 3 block under from (TDES-ECB),
// checks it against pan, and re-encrypts the PIN as a format 0 block under
// to, the zone PIN key. The clear PIN never leaves this function.
func Translate(from dukpt.Key, block []byte, pan string, to dukpt.Key) ([]byte, error) {
	if len(block) != 8 {
		return nil, jifu.Errorf(jifu.CodeInvalid, "pinblock: a TDES PIN block is 8 bytes, got %d", len(block))
	}
	if err := checkPAN(pan, 13); err != nil {
		return nil, err
	}
	var clear [8]byte
	dukpt.TDES(from).Decrypt(clear[:], block)
	return reencrypt0(clear, pan, to)
}

func reencrypt0(clear [8]byte, pan string, to dukpt.Key) ([]byte, error) {
	defer wipe(clear[:])
	var pin [MaxPIN]byte
	defer wipe(pin[:])
	n, err := pinFrom0(clear, pan, &pin)
	if err != nil {
		return nil, err
	}
	// Rebuild as format 0 without making a string of the PIN.
	var nib [16]byte
	defer wipe(nib[:])
	nib[0], nib[1] = Format0, byte(n)
	for i := 0; i < n; i++ {
		nib[2+i] = pin[i] - '0'
	}
	for i := 2 + n; i < 16; i++ {
		nib[i] = 0xF
	}
	f := panField0(pan)
	var out0 [8]byte
	defer wipe(out0[:])
	for i := range out0 {
		out0[i] = (nib[2*i]<<4 | nib[2*i+1]) ^ f[i]
	}
	out := make([]byte, 8)
	dukpt.TDES(to).Encrypt(out, out0[:])
	return out, nil
}

// Format 4 (AES): a 16-byte PIN field (4, length, PIN, fill A, then 8 random
// bytes) and a 16-byte PAN field (PAN length-12, then the PAN left-aligned,
// zero-filled); block = AES(K, AES(K, PIN field) XOR PAN field).

func panField4(pan string) [16]byte {
	var f [16]byte
	m := len(pan) - 12
	if m < 0 {
		m = 0
	}
	f[0] = byte(m) << 4
	for i := 0; i < len(pan); i++ {
		n := 1 + i
		f[n/2] |= (pan[i] - '0') << (4 * (1 - n%2))
	}
	return f
}

// EncryptISO4 builds and encrypts a format 4 block under an AES-128 key
// (for instance an AES DUKPT PIN key), with random fill from rnd.
func EncryptISO4(key dukpt.Key, pin, pan string, rnd io.Reader) ([]byte, error) {
	if err := checkPIN(pin); err != nil {
		return nil, err
	}
	if err := checkPAN(pan, 12); err != nil {
		return nil, err
	}
	var p [16]byte
	defer wipe(p[:])
	var nib [16]byte
	defer wipe(nib[:])
	nib[0], nib[1] = Format4, byte(len(pin))
	for i := 0; i < len(pin); i++ {
		nib[2+i] = pin[i] - '0'
	}
	for i := 2 + len(pin); i < 16; i++ {
		nib[i] = 0xA
	}
	for i := 0; i < 8; i++ {
		p[i] = nib[2*i]<<4 | nib[2*i+1]
	}
	if _, err := io.ReadFull(rnd, p[8:]); err != nil {
		return nil, jifu.Errorf(jifu.CodeInternal, "pinblock: random fill: %w", err)
	}
	c, _ := aes.NewCipher(key[:])
	var mid [16]byte
	c.Encrypt(mid[:], p[:])
	f := panField4(pan)
	subtle.XORBytes(mid[:], mid[:], f[:])
	out := make([]byte, 16)
	c.Encrypt(out, mid[:])
	return out, nil
}

// TranslateISO4 decrypts a 16-byte format 4 block under an AES-128 key,
// checks it against pan, and re-encrypts the PIN as a format 0 block under
// the TDES zone PIN key to.
func TranslateISO4(from dukpt.Key, block []byte, pan string, to dukpt.Key) ([]byte, error) {
	if len(block) != 16 {
		return nil, jifu.Errorf(jifu.CodeInvalid, "pinblock: a format 4 PIN block is 16 bytes, got %d", len(block))
	}
	if err := checkPAN(pan, 13); err != nil {
		return nil, err
	}
	var pin [MaxPIN]byte
	defer wipe(pin[:])
	n, err := pinFrom4(from, block, pan, &pin)
	if err != nil {
		return nil, err
	}
	var clear [8]byte
	// Build the format 0 clear block for reencrypt0 from the digits.
	var nib [16]byte
	defer wipe(nib[:])
	nib[0], nib[1] = Format0, byte(n)
	for i := 0; i < n; i++ {
		nib[2+i] = pin[i] - '0'
	}
	for i := 2 + n; i < 16; i++ {
		nib[i] = 0xF
	}
	f := panField0(pan)
	for i := range clear {
		clear[i] = (nib[2*i]<<4 | nib[2*i+1]) ^ f[i]
	}
	return reencrypt0(clear, pan, to)
}

func pinFrom4(key dukpt.Key, block []byte, pan string, pin *[MaxPIN]byte) (int, error) {
	c, _ := aes.NewCipher(key[:])
	var mid, p [16]byte
	defer wipe(p[:])
	c.Decrypt(mid[:], block)
	f := panField4(pan)
	subtle.XORBytes(mid[:], mid[:], f[:])
	c.Decrypt(p[:], mid[:])
	bad := jifu.Errorf(jifu.CodeInvalid, "pinblock: not a valid format 4 block for this card (wrong key or PAN)")
	if p[0]>>4 != Format4 {
		return 0, bad
	}
	n := int(p[0] & 0xF)
	if n < MinPIN || n > MaxPIN {
		return 0, bad
	}
	for i := 0; i < 14; i++ {
		idx := i + 2
		nb := p[idx/2] >> (4 * (1 - idx%2)) & 0xF
		if i < n {
			if nb > 9 {
				return 0, bad
			}
			pin[i] = '0' + nb
		} else if nb != 0xA {
			return 0, bad
		}
	}
	return n, nil
}
