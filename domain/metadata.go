package domain

import (
	"encoding/json"
	"strconv"
)

// Bounds of sim_metadata beyond its top-level keys (contract, section 1).
const (
	// MaxMetadataNumberDigits bounds a number written out in plain decimal
	// notation, as PostgreSQL stores and prints it: every digit before and
	// after the point. 1e99 and 1e-99 are valid, 1e100 and 1e-100 are not.
	MaxMetadataNumberDigits = 100
	// MaxMetadataStoredBytes bounds the whole object as PostgreSQL's jsonb
	// stores and prints it (numbers written out, ", " and ": " between
	// members, a repeated key kept once). The event that carries it stays
	// far below any NATS server's maximum payload.
	MaxMetadataStoredBytes = 65536
	// maxMetadataExponentLen bounds an exponent's digits (leading zeros
	// aside) before its value is computed: nothing longer can pass the
	// digit rule, and PostgreSQL refuses an exponent past 2^30 anyway.
	maxMetadataExponentLen = 9
)

// metadataField validates sim_metadata and returns it compacted, `{}` when
// absent or null. Values may be anything JSON allows; numbers keep their exact
// text. Every bound is checked here, against the object as PostgreSQL will
// store and print it, so that nothing a caller sends can fail later, in
// storage or in the event that carries it.
func metadataField(raw json.RawMessage) (json.RawMessage, string) {
	if isNull(raw) {
		return json.RawMessage(`{}`), ""
	}
	if !isJSONObject(raw) {
		return nil, "must be a JSON object"
	}
	return scanMetadata(raw)
}

// scanMetadata checks a valid JSON object against the sim_metadata rules in
// one pass and returns it compacted, or the reason it breaks a rule.
func scanMetadata(raw []byte) (json.RawMessage, string) {
	s := metaScan{raw: raw, out: make([]byte, 0, len(raw))}
	_, size := s.value(skipSpace(raw, 0), 1)
	if s.reason != "" {
		return nil, s.reason
	}
	if size > MaxMetadataStoredBytes {
		return nil, "must be at most " + strconv.Itoa(MaxMetadataStoredBytes) + " bytes as stored (numbers written out); it is " +
			strconv.Itoa(size)
	}
	return s.out, ""
}

// MetadataStoredLen is the length of a sim_metadata object (valid JSON) as
// PostgreSQL's jsonb prints it; false when it breaks a sim_metadata rule.
// The worker's own bound uses it; tests hold it to PostgreSQL's.
func MetadataStoredLen(md []byte) (int, bool) {
	s := metaScan{raw: md, out: make([]byte, 0, len(md))}
	_, size := s.value(skipSpace(md, 0), 1)
	return size, s.reason == ""
}

// metaScan walks a valid JSON value (json.Valid accepted it), appending its
// compact form to out and computing the length of PostgreSQL's jsonb text
// of it. The recursion is bounded by MaxMetadataDepth.
type metaScan struct {
	raw    []byte
	out    []byte
	keys   int    // object keys at every level so far
	reason string // the first rule broken; the scan stops there
}

// value scans the value at raw[i] at nesting level depth (the top object is
// 1) and returns the index after it and its stored length.
func (s *metaScan) value(i, depth int) (end, size int) {
	switch c := s.raw[i]; {
	case c == '{':
		return s.object(i, depth)
	case c == '[':
		return s.array(i, depth)
	case c == '"':
		end, escaped, nul := skipString(s.raw, i)
		tok := s.raw[i:end]
		if r := stringReason(tok, escaped, nul); r != "" {
			s.fail(r)
			return end, 0
		}
		s.out = append(s.out, tok...)
		return end, storedStringLen(tok, escaped)
	default: // number or literal
		end = skipValue(s.raw, i)
		tok := s.raw[i:end]
		s.out = append(s.out, tok...)
		if c == '-' || c >= '0' && c <= '9' {
			n, ok := writtenOut(tok)
			if !ok || n.digits > MaxMetadataNumberDigits {
				s.fail("number " + abbreviate(string(tok)) + " has more than " + strconv.Itoa(MaxMetadataNumberDigits) +
					" digits written out in plain decimal notation")
				return end, 0
			}
			return end, n.length
		}
		return end, len(tok) // true, false, null
	}
}

func (s *metaScan) fail(reason string) {
	if s.reason == "" {
		s.reason = reason
	}
}

func (s *metaScan) object(i, depth int) (end, size int) {
	if depth > MaxMetadataDepth {
		s.fail("must nest at most " + strconv.Itoa(MaxMetadataDepth) + " levels deep")
		return len(s.raw), 0
	}
	s.out = append(s.out, '{')
	// jsonb keeps the last of a repeated key: the stored length counts each
	// key once, with its last value.
	var members map[string]int // key: stored length of `"key": value`
	i = skipSpace(s.raw, i+1)
	for s.reason == "" && s.raw[i] != '}' {
		kend, escaped, nul := skipString(s.raw, i)
		tok := s.raw[i:kend]
		if r := stringReason(tok, escaped, nul); r != "" {
			s.fail(r)
			break
		}
		s.keys++
		if s.keys > MaxMetadataTotalKeys {
			s.fail("must have at most " + strconv.Itoa(MaxMetadataTotalKeys) + " keys at all levels together")
			break
		}
		key := decodeString(tok, escaped)
		if members == nil {
			members = make(map[string]int, 8)
		}
		if _, seen := members[key]; !seen && depth == 1 && len(members) == MaxMetadataKeys {
			s.fail("must have at most " + strconv.Itoa(MaxMetadataKeys) + " top-level keys")
			break
		}
		s.out = append(s.out, tok...)
		s.out = append(s.out, ':')
		i = skipSpace(s.raw, kend)
		i = skipSpace(s.raw, i+1) // the colon
		var vsize int
		if i, vsize = s.value(i, depth+1); s.reason != "" {
			break
		}
		members[key] = storedStringLen(tok, escaped) + 2 + vsize // `"key": value`
		i = skipSpace(s.raw, i)
		if s.raw[i] == ',' {
			s.out = append(s.out, ',')
			i = skipSpace(s.raw, i+1)
		}
	}
	if s.reason != "" {
		return len(s.raw), 0
	}
	s.out = append(s.out, '}')
	size = 2 // {}
	for _, m := range members {
		size += m
	}
	if len(members) > 1 {
		size += 2 * (len(members) - 1) // ", "
	}
	return i + 1, size
}

func (s *metaScan) array(i, depth int) (end, size int) {
	if depth > MaxMetadataDepth {
		s.fail("must nest at most " + strconv.Itoa(MaxMetadataDepth) + " levels deep")
		return len(s.raw), 0
	}
	s.out = append(s.out, '[')
	size = 2 // []
	n := 0
	i = skipSpace(s.raw, i+1)
	for s.reason == "" && s.raw[i] != ']' {
		var vsize int
		if i, vsize = s.value(i, depth+1); s.reason != "" {
			break
		}
		size += vsize
		n++
		i = skipSpace(s.raw, i)
		if s.raw[i] == ',' {
			s.out = append(s.out, ',')
			i = skipSpace(s.raw, i+1)
		}
	}
	if s.reason != "" {
		return len(s.raw), 0
	}
	if n > 1 {
		size += 2 * (n - 1) // ", "
	}
	s.out = append(s.out, ']')
	return i + 1, size
}

// stringReason is why a string token (a key or a value) cannot be stored
// as sent, or "".
func stringReason(tok []byte, escaped, nul bool) string {
	switch {
	case nul:
		return "must not contain NUL characters"
	case escaped && loneSurrogate(tok):
		return "must not contain unpaired UTF-16 surrogates"
	}
	return ""
}

// storedStringLen is the length of a JSON string token (with its quotes) as
// PostgreSQL prints it: its characters as UTF-8, escaping only the quote,
// the backslash and control characters (\b \f \n \r \t, the others as
// \u00XX).
func storedStringLen(tok []byte, escaped bool) int {
	if !escaped { // no quote, backslash or control character inside: as it is
		return len(tok)
	}
	n := 2
	for _, c := range []byte(decodeString(tok, escaped)) {
		switch {
		case c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t':
			n += 2
		case c < 0x20:
			n += 6
		default:
			n++
		}
	}
	return n
}

// number is a JSON number as PostgreSQL's numeric writes it out.
type number struct {
	digits int // digits before and after the point ("0.001": 4)
	length int // bytes, sign and point included
}

// writtenOut gives the plain decimal form of a JSON number token: numeric
// keeps every digit it was given and the scale len(fraction) - exponent (at
// least 0), so 1e3 is 1000, 1.50 is 1.50, 1.0e2 is 100 and 1e-3 is 0.001;
// a zero has no sign. false for an exponent too long to be a candidate.
func writtenOut(tok []byte) (number, bool) {
	neg := tok[0] == '-'
	if neg {
		tok = tok[1:]
	}
	mant, exp := tok, []byte(nil)
	for k, c := range tok {
		if c == 'e' || c == 'E' {
			mant, exp = tok[:k], tok[k+1:]
			break
		}
	}
	intLen, fracLen := len(mant), 0
	for k, c := range mant {
		if c == '.' {
			intLen, fracLen = k, len(mant)-k-1
			break
		}
	}
	var e int64
	if len(exp) > 0 {
		eneg := exp[0] == '-'
		if exp[0] == '-' || exp[0] == '+' {
			exp = exp[1:]
		}
		for len(exp) > 1 && exp[0] == '0' {
			exp = exp[1:]
		}
		if len(exp) > maxMetadataExponentLen {
			return number{}, false
		}
		for _, c := range exp {
			e = e*10 + int64(c-'0')
		}
		if eneg {
			e = -e
		}
	}
	// The significant digits: the mantissa's, leading zeros aside.
	lead, zero := 0, true
	for _, c := range mant {
		if c == '.' {
			continue
		}
		if zero && c == '0' {
			lead++
			continue
		}
		zero = false
	}
	scale := max(0, int64(fracLen)-e)
	point := int64(intLen) + e // the point's place among the mantissa's digits
	intDigits := int64(1)      // "0" before the point when nothing else is there
	if !zero && point-int64(lead) > 1 {
		intDigits = point - int64(lead)
	}
	n := number{digits: int(min(intDigits+scale, 1<<40)), length: int(min(intDigits, 1<<40))}
	if scale > 0 {
		n.length += 1 + int(min(scale, 1<<40))
	}
	if neg && !zero {
		n.length++
	}
	return n, true
}

func abbreviate(s string) string {
	if len(s) > 24 {
		return s[:20] + "..."
	}
	return s
}
