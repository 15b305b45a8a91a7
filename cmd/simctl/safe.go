package main

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Strings that come from commands and events (ids, statuses, messages,
// codes) are the publishers' to choose. Printed raw, a newline forges a
// line of the report and an escape sequence clears the operator's screen or
// retitles the terminal. So every such string is printed with its control
// characters escaped: C0 and C1 controls, DEL, and the bidirectional
// controls that reorder what a line shows.

// unsafe reports whether r must not reach a terminal as it is.
func unsafe(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == utf8.RuneError
}

// safe is s with every unsafe character escaped, as Go writes it in a
// string literal (\n, \x1b, \u009b, \u202e); invalid UTF-8 bytes as \xNN.
func safe(s string) string {
	if !strings.ContainsFunc(s, unsafe) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !unsafe(r) || r == utf8.RuneError && size == 3 { // U+FFFD itself is printable
			b.WriteString(s[i : i+size])
		} else if r == utf8.RuneError {
			b.WriteString(`\x` + strconv.FormatUint(uint64(s[i])|0x100, 16)[1:])
		} else {
			q := strconv.QuoteRuneToASCII(r) // 'x', '\n', '\x1b', '\u009b'
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}

// safeJSON is a JSON text with the unsafe characters inside its strings
// (DEL, C1 and bidirectional controls: JSON allows them raw) written as
// \u escapes, which means the same JSON; C0 controls cannot be raw in valid
// JSON, and invalid UTF-8 is left for the JSON reader to refuse.
func safeJSON(b []byte) []byte {
	if !strings.ContainsFunc(string(b), func(r rune) bool { return unsafe(r) && r != utf8.RuneError && r >= 0x20 && r != '\n' }) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r >= 0x20 && r != utf8.RuneError && unsafe(r) {
			out = append(out, `\u`...)
			out = append(out, []byte(strconv.FormatUint(uint64(r)|0x10000, 16)[1:])...)
		} else {
			out = append(out, b[i:i+size]...)
		}
		i += size
	}
	return out
}
