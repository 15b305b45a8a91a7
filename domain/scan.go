package domain

import (
	"encoding/json"
	"strconv"
)

// The decoding hot path. encoding/json decodes a command in several passes
// with an allocation per value; these helpers walk bytes that json.Valid has
// already accepted, once, and allocate only what they return. FuzzScan
// checks them against encoding/json.

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] (a quote),
// whether it holds escapes, and whether one of them is \u0000.
func skipString(b []byte, i int) (end int, escaped, nul bool) {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '"':
			return i + 1, escaped, nul
		case '\\':
			escaped = true
			if i+1 < len(b) && b[i+1] == 'u' && i+5 < len(b) && string(b[i+2:i+6]) == "0000" {
				nul = true
			}
			i++ // the escaped character
		}
	}
	return len(b), escaped, nul
}

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		end, _, _ := skipString(b, i)
		return end
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				end, _, _ := skipString(b, i)
				i = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	default: // number, true, false, null
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && !isSpace(b[i]) {
			i++
		}
		return i
	}
}

// loneSurrogate reports whether a JSON string token escapes half of a UTF-16
// surrogate pair without its other half. encoding/json turns one into U+FFFD
// (so two different strings could decode alike) and PostgreSQL's jsonb
// refuses it: either way it cannot be kept as sent.
func loneSurrogate(tok []byte) bool {
	pendingHigh := false              // the previous character was an escaped high surrogate
	for i := 1; i < len(tok)-1; i++ { // inside the quotes
		if tok[i] != '\\' {
			if pendingHigh {
				return true
			}
			continue
		}
		if tok[i+1] != 'u' {
			if pendingHigh {
				return true
			}
			i++ // the escaped character
			continue
		}
		if i+6 > len(tok)-1 {
			return true // malformed: not valid JSON
		}
		v, err := strconv.ParseUint(string(tok[i+2:i+6]), 16, 32)
		if err != nil {
			return true
		}
		switch {
		case v >= 0xD800 && v <= 0xDBFF:
			if pendingHigh {
				return true
			}
			pendingHigh = true
		case v >= 0xDC00 && v <= 0xDFFF:
			if !pendingHigh {
				return true
			}
			pendingHigh = false
		default:
			if pendingHigh {
				return true
			}
		}
		i += 5
	}
	return pendingHigh
}

// decodeString decodes a JSON string token (with its quotes).
func decodeString(tok []byte, escaped bool) string {
	if !escaped {
		return string(tok[1 : len(tok)-1])
	}
	var s string
	_ = json.Unmarshal(tok, &s)
	return s
}

// object is the members of a JSON object, as split from the text: each key
// as sent (its quotes off; decoded only when it holds an escape), each
// value's raw text.
type object struct {
	keys [][]byte
	vals []json.RawMessage
}

// get is the value of the last member named name (the last one winning, as
// in encoding/json); nil when there is none.
func (o object) get(name string) json.RawMessage {
	for k := len(o.keys) - 1; k >= 0; k-- {
		if string(o.keys[k]) == name {
			return o.vals[k]
		}
	}
	return nil
}

// splitObject returns the members of a valid JSON object; false when raw is
// not an object. It allocates two slices, whatever the members.
func splitObject(raw []byte) (object, bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return object{}, false
	}
	o := object{keys: make([][]byte, 0, 8), vals: make([]json.RawMessage, 0, 8)}
	i = skipSpace(raw, i+1)
	for i < len(raw) && raw[i] != '}' {
		end, escaped, _ := skipString(raw, i)
		key := raw[i+1 : end-1]
		if escaped {
			key = []byte(decodeString(raw[i:end], escaped))
		}
		i = skipSpace(raw, end)
		i = skipSpace(raw, i+1) // the colon
		vend := skipValue(raw, i)
		o.keys, o.vals = append(o.keys, key), append(o.vals, raw[i:vend])
		i = skipSpace(raw, vend)
		if i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return o, true
}
