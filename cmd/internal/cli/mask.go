package cli

import (
	"net/url"
	"reflect"
	"regexp"
	"strings"

	"go.uber.org/zap"
)

// Fields are the settings of cfg (a pointer to a configuration) for a log
// line, keyed by environment variable (by flag for a flag-only setting),
// secrets masked.
func Fields(cfg any) []zap.Field {
	var fields []zap.Field
	for _, s := range settings(reflect.ValueOf(cfg).Elem()) {
		key := s.env
		if key == "" {
			key = "-" + s.flag
		}
		fields = append(fields, zap.String(key, s.shown(s.text())))
	}
	return fields
}

const masked = "***"

// mask is v as it may be shown, for a setting tagged secret:kind.
func mask(kind, v string) string {
	switch {
	case kind == "" || v == "":
		return v
	case kind == "url":
		parts := strings.Split(v, ",")
		for i, p := range parts {
			parts[i] = maskURL(p)
		}
		return strings.Join(parts, ",")
	}
	return masked
}

// dsnSecret is a password in a PostgreSQL keyword/value connection string.
var dsnSecret = regexp.MustCompile(`(?i)\b((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)`)

// maskURL shows a URL without its secrets: the password of its user info
// (and the user itself when there is no password: in a NATS URL that is a
// token), and query parameters named like a password, token or secret.
// A keyword/value string (host=... password=...) keeps all but the
// password; anything else with an @ loses what comes before it, and a URL
// that does not parse loses its query.
func maskURL(p string) string {
	u, err := url.Parse(p)
	switch {
	case err == nil && u.Scheme != "" && u.Host != "":
		if u.User == nil && u.RawQuery == "" {
			return p
		}
		user := ""
		if u.User != nil {
			if _, ok := u.User.Password(); ok {
				user = url.User(u.User.Username()).String() + ":" + masked + "@"
			} else {
				user = masked + "@"
			}
		}
		if u.RawQuery != "" {
			params := strings.Split(u.RawQuery, "&")
			for i, kv := range params {
				k, _, _ := strings.Cut(kv, "=")
				if lk := strings.ToLower(k); strings.Contains(lk, "pass") || strings.Contains(lk, "token") || strings.Contains(lk, "secret") {
					params[i] = k + "=" + masked
				}
			}
			u.RawQuery = strings.Join(params, "&")
		}
		u.User = nil
		scheme, rest, _ := strings.Cut(u.String(), "://")
		return scheme + "://" + user + rest
	case !strings.Contains(p, "://") && strings.Contains(p, "="):
		return dsnSecret.ReplaceAllString(p, "${1}"+masked)
	case strings.Contains(p, "@"):
		return masked + p[strings.LastIndex(p, "@"):]
	case err != nil && strings.Contains(p, "?"):
		return p[:strings.Index(p, "?")] + "?" + masked
	}
	return p
}
