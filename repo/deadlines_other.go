//go:build !linux

package repo

import "time"

// setUserTimeout: TCP_USER_TIMEOUT is Linux's; elsewhere keepalive alone
// bounds a dead connection.
func setUserTimeout(uintptr, time.Duration) error { return nil }
