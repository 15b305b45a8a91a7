package domain

import (
	"encoding/json"
	"strings"
)

// metadataField validates sim_metadata and returns it compacted, `{}` when
// absent or null. Values may be anything JSON allows; numbers keep their exact
// text. A number PostgreSQL's numeric type cannot hold, or a NUL character in
// any key or string, is a precise rejection here rather than a storage
// failure later.
func metadataField(raw json.RawMessage) (json.RawMessage, string) {
	if isNull(raw) {
		return json.RawMessage(`{}`), ""
	}
	if !isJSONObject(raw) {
		return nil, "must be a JSON object"
	}
	return scanMetadata(raw)
}

// numericFits reports whether a JSON number fits PostgreSQL's numeric type (as
// used by jsonb): at most 131072 digits before the decimal point and 16383
// after it.
func numericFits(num string) bool {
	s := strings.TrimPrefix(num, "-")
	mant, exp := s, ""
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant, exp = s[:i], strings.TrimPrefix(s[i+1:], "+")
	}
	intPart, frac := mant, ""
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		intPart, frac = mant[:i], mant[i+1:]
	}
	e := int64(0)
	if exp != "" {
		neg := strings.HasPrefix(exp, "-")
		exp = strings.TrimLeft(strings.TrimPrefix(exp, "-"), "0")
		if len(exp) > maxMetadataExponentLen {
			return false
		}
		for _, c := range exp {
			e = e*10 + int64(c-'0')
		}
		if neg {
			e = -e
		}
	}
	digits := strings.TrimLeft(intPart+frac, "0")
	scale := int64(len(frac)) - e
	if digits == "" { // zero, whatever its exponent: only its scale is kept
		return scale <= maxNumericScaleDigits
	}
	intDigits := int64(len(digits)) - int64(len(frac)) + e
	return scale <= maxNumericScaleDigits && intDigits <= maxNumericIntDigits
}

func abbreviate(s string) string {
	if len(s) > 24 {
		return s[:20] + "..."
	}
	return s
}
