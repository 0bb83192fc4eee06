package marketplace

import (
	"errors"
	"time"
)

// GB 11643-1999 citizen identity numbers: 6 digits of region, 8 of birth
// date (YYYYMMDD), 3 of sequence (odd for men), and a check character
// computed with ISO 7064 MOD 11-2.
var (
	idWeights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	idCheck   = "10X98765432" // by sum mod 11
)

// provinces are the first two digits of GB/T 2260 region codes (mainland
// provinces, Taiwan, Hong Kong, Macao, and 91 for foreigners' permits).
var provinces = map[string]bool{
	"11": true, "12": true, "13": true, "14": true, "15": true, "21": true, "22": true, "23": true,
	"31": true, "32": true, "33": true, "34": true, "35": true, "36": true, "37": true,
	"41": true, "42": true, "43": true, "44": true, "45": true, "46": true,
	"50": true, "51": true, "52": true, "53": true, "54": true, "61": true, "62": true, "63": true, "64": true, "65": true,
	"71": true, "81": true, "82": true, "83": true, "91": true,
}

// Errors of CheckIDNumber.
var (
	ErrIDLength   = errors.New("an ID number has 18 characters")
	ErrIDDigits   = errors.New("the first 17 characters of an ID number are digits")
	ErrIDBirth    = errors.New("the birth date in the ID number is not a real date")
	ErrIDRegion   = errors.New("the region code of the ID number is not valid")
	ErrIDChecksum = errors.New("the ID number's check character does not match (GB 11643)")
)

// IDCheckChar returns the GB 11643 check character for the first 17 digits.
func IDCheckChar(first17 string) (byte, error) {
	if len(first17) != 17 {
		return 0, ErrIDLength
	}
	sum := 0
	for i := 0; i < 17; i++ {
		c := first17[i]
		if c < '0' || c > '9' {
			return 0, ErrIDDigits
		}
		sum += int(c-'0') * idWeights[i]
	}
	return idCheck[sum%11], nil
}

// CheckIDNumber validates an 18-character resident identity number: digits,
// a plausible region, a real birth date not after today, and the GB 11643
// check character (an upper- or lower-case X for 10). It returns the number
// normalised (upper-case X).
func CheckIDNumber(id string, today time.Time) (string, error) {
	if len(id) != 18 {
		return "", ErrIDLength
	}
	want, err := IDCheckChar(id[:17])
	if err != nil {
		return "", err
	}
	last := id[17]
	if last == 'x' {
		last = 'X'
	}
	if last != 'X' && (last < '0' || last > '9') {
		return "", ErrIDDigits
	}
	if !provinces[id[:2]] {
		return "", ErrIDRegion
	}
	birth, err := time.Parse("20060102", id[6:14])
	if err != nil || birth.Year() < 1900 || birth.After(today) {
		return "", ErrIDBirth
	}
	if last != want {
		return "", ErrIDChecksum
	}
	return id[:17] + string(last), nil
}

// MaskIDNumber keeps the first 6 and last 4 characters.
func MaskIDNumber(id string) string {
	if len(id) < 10 {
		return "****"
	}
	b := []byte(id)
	for i := 6; i < len(b)-4; i++ {
		b[i] = '*'
	}
	return string(b)
}
