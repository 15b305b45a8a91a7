package domain

import (
	"bytes"
	"encoding/json"
	"strconv"
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
	var top map[string]json.RawMessage
	if !isJSONObject(raw) || json.Unmarshal(raw, &top) != nil {
		return nil, "must be a JSON object"
	}
	if len(top) > MaxMetadataKeys { // distinct keys: a repeated key is stored once
		return nil, "must have at most 50 top-level keys"
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	depth, keys := 0, 0
	var inObject []bool // per open level: an object (true) or an array
	expectKey := false  // inside an object, the next string is a key
	for {
		tok, err := dec.Token()
		if err != nil {
			break // io.EOF: the value is complete (it parsed once already)
		}
		isKey := false
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				depth++
				if depth > MaxMetadataDepth {
					return nil, "must nest at most " + strconv.Itoa(MaxMetadataDepth) + " levels deep"
				}
				inObject = append(inObject, v == '{')
			} else {
				depth--
				inObject = inObject[:len(inObject)-1]
			}
		case string:
			if strings.ContainsRune(v, 0) {
				return nil, "must not contain NUL characters"
			}
			if expectKey {
				isKey = true
				keys++
				if keys > MaxMetadataTotalKeys {
					return nil, "must have at most " + strconv.Itoa(MaxMetadataTotalKeys) + " keys at all levels together"
				}
			}
		case json.Number:
			if !numericFits(string(v)) {
				return nil, "number " + abbreviate(string(v)) + " is out of range"
			}
		}
		// After a key comes its value; after '{' or a complete value inside an
		// object comes a key. A value that opens a nested level is complete when
		// that level closes, which lands here again with the parent on top.
		if d, ok := tok.(json.Delim); ok && (d == '{' || d == '[') {
			expectKey = d == '{'
		} else {
			expectKey = !isKey && len(inObject) > 0 && inObject[len(inObject)-1]
		}
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, "must be a JSON object"
	}
	return buf.Bytes(), ""
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
	intDigits := int64(len(digits)) - int64(len(frac)) + e
	return scale <= maxNumericScaleDigits && intDigits <= maxNumericIntDigits
}

func abbreviate(s string) string {
	if len(s) > 24 {
		return s[:20] + "..."
	}
	return s
}
