package cli

import (
	"errors"
	"strconv"
	"strings"
)

// Bytes is a size setting: a whole number of bytes with an optional unit,
// KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024);
// "0" is no limit.
type Bytes int64

var byteUnits = []struct {
	suffix string
	size   int64
}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}

// UnmarshalText reads "1GiB", "500MB", "1048576".
func (b *Bytes) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	unit := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, unit = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.size
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/unit {
		return errors.New("is not a size (a whole number of bytes, or with KB, MB, GB, TB, KiB, MiB, GiB or TiB)")
	}
	*b = Bytes(n * unit)
	return nil
}

// MarshalText writes the size in the largest binary unit that divides it.
func (b Bytes) MarshalText() ([]byte, error) {
	for _, u := range byteUnits[:4] {
		if b != 0 && int64(b)%u.size == 0 {
			return []byte(strconv.FormatInt(int64(b)/u.size, 10) + u.suffix), nil
		}
	}
	return []byte(strconv.FormatInt(int64(b), 10)), nil
}
