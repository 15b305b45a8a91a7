package domain

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
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

// metadataField validates sim_metadata and returns it as PostgreSQL's jsonb
// will store and print it, `{}` when absent or null. Values may be anything
// JSON allows; numbers keep their exact value. Every bound is checked here,
// against the object as PostgreSQL will store it, so that nothing a caller
// sends can fail later, in storage or in the event that carries it.
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
// one pass and returns it as jsonb prints it, or the reason it breaks a rule.
func scanMetadata(raw []byte) (json.RawMessage, string) {
	s := metaScan{raw: raw, buf: make([]byte, 0, len(raw)+len(raw)/4)}
	s.value(skipSpace(raw, 0), 1)
	if s.reason != "" {
		return nil, s.reason
	}
	if len(s.buf) > MaxMetadataStoredBytes {
		return nil, "must be at most " + strconv.Itoa(MaxMetadataStoredBytes) + " bytes as stored (numbers written out); it is " +
			strconv.Itoa(len(s.buf))
	}
	return s.buf, ""
}

// MetadataStoredLen is the length of a sim_metadata object (valid JSON) as
// PostgreSQL's jsonb prints it; false when it breaks a sim_metadata rule.
func MetadataStoredLen(md []byte) (int, bool) {
	s := metaScan{raw: md}
	s.value(skipSpace(md, 0), 1)
	return len(s.buf), s.reason == ""
}

// metaScan walks a valid JSON value (json.Valid accepted it) and writes it
// to buf as PostgreSQL's jsonb prints it: object keys once each (the last
// value of a repeated key), shorter keys first and keys of one length in
// byte order, ", " between members and elements and ": " after a key,
// strings as UTF-8 with only the quote, the backslash and control characters
// escaped, numbers in plain decimal notation with their scale. Storing a
// SIM then needs nothing back from PostgreSQL to announce it: the event
// carries this text, byte for byte what the database holds
// (FuzzMetadataAsStored). The recursion is bounded by MaxMetadataDepth.
type metaScan struct {
	raw    []byte
	buf    []byte // the text written so far
	keys   int    // object keys at every level so far
	reason string // the first rule broken; the scan stops there
}

// value writes the value at raw[i], at nesting level depth (the top object
// is 1), and returns the index after it.
func (s *metaScan) value(i, depth int) int {
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
			return end
		}
		s.buf = appendStoredString(s.buf, tok, escaped)
		return end
	default: // number or literal
		end := skipValue(s.raw, i)
		tok := s.raw[i:end]
		if c == '-' || c >= '0' && c <= '9' {
			var ok bool
			if s.buf, ok = appendWrittenOut(s.buf, tok); !ok {
				s.fail("number " + abbreviate(string(tok)) + " has more than " + strconv.Itoa(MaxMetadataNumberDigits) +
					" digits written out in plain decimal notation")
			}
			return end
		}
		s.buf = append(s.buf, tok...) // true, false, null
		return end
	}
}

func (s *metaScan) fail(reason string) {
	if s.reason == "" {
		s.reason = reason
	}
}

// member is an object member written to buf: its key (decoded, for order
// and repeats) and where its `"key": value` text lies.
type member struct {
	key        string
	start, end int
}

func (s *metaScan) object(i, depth int) int {
	if depth > MaxMetadataDepth {
		s.fail("must nest at most " + strconv.Itoa(MaxMetadataDepth) + " levels deep")
		return len(s.raw)
	}
	var small [8]member
	members := small[:0]
	var at map[string]int // key: its index in members, once there are many
	from := len(s.buf)    // the members' texts are written from here, as they come
	sorted, repeated := true, false
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
		prev := -1
		if at != nil {
			if k, ok := at[key]; ok {
				prev = k
			}
		} else {
			for k := range members {
				if members[k].key == key {
					prev = k
					break
				}
			}
		}
		if prev < 0 && depth == 1 && len(members) == MaxMetadataKeys {
			s.fail("must have at most " + strconv.Itoa(MaxMetadataKeys) + " top-level keys")
			break
		}
		m := member{key: key, start: len(s.buf)}
		s.buf = appendStoredString(s.buf, tok, escaped)
		s.buf = append(s.buf, ':', ' ')
		i = skipSpace(s.raw, kend)
		i = skipSpace(s.raw, i+1) // the colon
		if i = s.value(i, depth+1); s.reason != "" {
			break
		}
		m.end = len(s.buf)
		if prev >= 0 { // jsonb keeps the last value of a repeated key
			members[prev], repeated = m, true
		} else {
			if n := len(members); n > 0 && keyOrder(members[n-1].key, key) > 0 {
				sorted = false
			}
			members = append(members, m)
			if at != nil {
				at[key] = len(members) - 1
			} else if len(members) > 16 {
				at = make(map[string]int, 2*len(members))
				for k := range members {
					at[members[k].key] = k
				}
			}
		}
		i = skipSpace(s.raw, i)
		if s.raw[i] == ',' {
			i = skipSpace(s.raw, i+1)
		}
	}
	if s.reason != "" {
		return len(s.raw)
	}
	// The members' texts lie in buf from `from`, in the order sent; written
	// again in jsonb's order, with the separators.
	written := s.buf[from:]
	if !sorted || repeated {
		written = append([]byte(nil), written...)
		slices.SortFunc(members, func(a, b member) int { return keyOrder(a.key, b.key) })
	}
	if sorted && !repeated { // in place: the texts move right to make room for the braces and separators
		extra := 2 + 2*max(0, len(members)-1)
		s.buf = slices.Grow(s.buf, extra)
		s.buf = s.buf[:len(s.buf)+extra]
		w := len(s.buf) - 1
		s.buf[w] = '}'
		for k := len(members) - 1; k >= 0; k-- { // from the back: a text never lands on one not yet moved
			m := members[k]
			w -= m.end - m.start
			copy(s.buf[w:], s.buf[m.start:m.end])
			if k > 0 {
				w -= 2
				s.buf[w], s.buf[w+1] = ',', ' '
			}
		}
		s.buf[from] = '{'
		return i + 1
	}
	out := append(s.buf[:from], '{')
	for k, m := range members {
		if k > 0 {
			out = append(out, ',', ' ')
		}
		out = append(out, written[m.start-from:m.end-from]...)
	}
	s.buf = append(out, '}')
	return i + 1
}

// keyOrder is jsonb's order of keys: shorter first, then byte order.
func keyOrder(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

func (s *metaScan) array(i, depth int) int {
	if depth > MaxMetadataDepth {
		s.fail("must nest at most " + strconv.Itoa(MaxMetadataDepth) + " levels deep")
		return len(s.raw)
	}
	s.buf = append(s.buf, '[')
	n := 0
	i = skipSpace(s.raw, i+1)
	for s.reason == "" && s.raw[i] != ']' {
		if n > 0 {
			s.buf = append(s.buf, ',', ' ')
		}
		if i = s.value(i, depth+1); s.reason != "" {
			break
		}
		n++
		i = skipSpace(s.raw, i)
		if s.raw[i] == ',' {
			i = skipSpace(s.raw, i+1)
		}
	}
	if s.reason != "" {
		return len(s.raw)
	}
	s.buf = append(s.buf, ']')
	return i + 1
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

// appendStoredString appends a JSON string token (with its quotes) as
// PostgreSQL prints it: its characters as UTF-8, escaping only the quote,
// the backslash and control characters (\b \f \n \r \t, the others as
// \u00xx).
func appendStoredString(out, tok []byte, escaped bool) []byte {
	if !escaped { // no quote, backslash or control character inside: as it is
		return append(out, tok...)
	}
	dec := decodeString(tok, escaped)
	out = append(out, '"')
	for i := 0; i < len(dec); i++ {
		switch c := dec[i]; c {
		case '"', '\\':
			out = append(out, '\\', c)
		case '\b':
			out = append(out, '\\', 'b')
		case '\f':
			out = append(out, '\\', 'f')
		case '\n':
			out = append(out, '\\', 'n')
		case '\r':
			out = append(out, '\\', 'r')
		case '\t':
			out = append(out, '\\', 't')
		default:
			if c < 0x20 {
				out = append(out, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			} else {
				out = append(out, c)
			}
		}
	}
	return append(out, '"')
}

// number is a JSON number as PostgreSQL's numeric writes it out.
type number struct {
	digits int    // digits before and after the point ("0.001": 4)
	text   []byte // the plain decimal form; nil when digits is past the bound
}

// writtenOut gives the plain decimal form of a JSON number token (see
// appendWrittenOut); false for an exponent too long to be a candidate.
func writtenOut(tok []byte) (number, bool) {
	digits, ok := numberDigits(tok)
	if !ok {
		return number{}, false
	}
	n := number{digits: digits}
	if digits <= MaxMetadataNumberDigits {
		n.text, _ = appendWrittenOut(nil, tok)
	}
	return n, true
}

// numberDigits counts the digits of a JSON number token written out (see
// appendWrittenOut); false for an exponent too long to be a candidate.
func numberDigits(tok []byte) (int, bool) {
	p, ok := parseNumber(tok)
	if !ok {
		return 0, false
	}
	return p.digits(), true
}

// parsedNumber is a JSON number token taken apart.
type parsedNumber struct {
	neg          bool
	intPart      []byte // the mantissa's digits before its point
	frac         []byte // after it
	exp          int64
	lead, nDigit int // leading zeros of the mantissa's digits, and how many digits it has
}

func parseNumber(tok []byte) (parsedNumber, bool) {
	var p parsedNumber
	p.neg = tok[0] == '-'
	if p.neg {
		tok = tok[1:]
	}
	mant, exp := tok, []byte(nil)
	for k, c := range tok {
		if c == 'e' || c == 'E' {
			mant, exp = tok[:k], tok[k+1:]
			break
		}
	}
	p.intPart = mant
	for k, c := range mant {
		if c == '.' {
			p.intPart, p.frac = mant[:k], mant[k+1:]
			break
		}
	}
	if len(exp) > 0 {
		eneg := exp[0] == '-'
		if exp[0] == '-' || exp[0] == '+' {
			exp = exp[1:]
		}
		for len(exp) > 1 && exp[0] == '0' {
			exp = exp[1:]
		}
		if len(exp) > maxMetadataExponentLen {
			return p, false
		}
		for _, c := range exp {
			p.exp = p.exp*10 + int64(c-'0')
		}
		if eneg {
			p.exp = -p.exp
		}
	}
	p.nDigit = len(p.intPart) + len(p.frac)
	for p.lead < p.nDigit && p.digit(int64(p.lead)) == '0' {
		p.lead++
	}
	return p, true
}

// digit is the k-th digit of the mantissa, the point taken out.
func (p parsedNumber) digit(k int64) byte {
	if k < int64(len(p.intPart)) {
		return p.intPart[k]
	}
	return p.frac[k-int64(len(p.intPart))]
}

func (p parsedNumber) zero() bool   { return p.lead == p.nDigit }
func (p parsedNumber) scale() int64 { return max(0, int64(len(p.frac))-p.exp) }
func (p parsedNumber) point() int64 { return int64(len(p.intPart)) + p.exp } // the point's place among the digits

func (p parsedNumber) intDigits() int64 {
	if !p.zero() && p.point()-int64(p.lead) > 1 {
		return p.point() - int64(p.lead)
	}
	return 1 // "0" before the point when nothing else is there
}

func (p parsedNumber) digits() int { return int(min(p.intDigits()+p.scale(), 1<<40)) }

// appendWrittenOut appends the plain decimal form of a JSON number token,
// as PostgreSQL's numeric writes it: every digit it was given and the
// scale len(fraction) - exponent (at least 0), so 1e3 is 1000, 1.50 is 1.50,
// 1.0e2 is 100 and 1e-3 is 0.001; a zero has no sign. false (nothing
// appended) when that form has more than MaxMetadataNumberDigits digits, or
// the exponent is too long to count.
func appendWrittenOut(out, tok []byte) ([]byte, bool) {
	p, ok := parseNumber(tok)
	if !ok || p.digits() > MaxMetadataNumberDigits {
		return out, false
	}
	point, scale, zero := p.point(), p.scale(), p.zero()
	if p.neg && !zero {
		out = append(out, '-')
	}
	if zero || point-int64(p.lead) <= 0 {
		out = append(out, '0')
	} else {
		for k := int64(p.lead); k < point; k++ {
			if k < int64(p.nDigit) {
				out = append(out, p.digit(k))
			} else {
				out = append(out, '0')
			}
		}
	}
	if scale > 0 {
		out = append(out, '.')
		for k := point; k < point+scale; k++ { // exactly scale digits: those after the point
			if k < 0 || zero {
				out = append(out, '0')
			} else {
				out = append(out, p.digit(k))
			}
		}
	}
	return out, true
}

func abbreviate(s string) string {
	if len(s) > 24 {
		return s[:20] + "..."
	}
	return s
}
