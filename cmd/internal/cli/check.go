package cli

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Check collects the problems of a configuration's settings. Its methods
// take a pointer to the field they check, so an error names the setting's
// environment variable and flag without writing them again. A setting gets
// one problem at most: the first (a value the library could not parse is
// not checked further).
type Check struct {
	problems map[*setting]string
	byAddr   map[addrKey]*setting
}

type addrKey struct {
	addr uintptr
	typ  reflect.Type
}

// setting is the setting whose field field points to.
func (c *Check) setting(field any) *setting {
	v := reflect.ValueOf(field)
	if v.Kind() != reflect.Pointer {
		panic(fmt.Sprintf("cli: Check needs a pointer to a field, not %T", field))
	}
	s := c.byAddr[addrKey{v.Pointer(), v.Type().Elem()}]
	if s == nil {
		panic(fmt.Sprintf("cli: Check: %T is not a setting of this configuration", field))
	}
	return s
}

// Fail records that the setting at field is wrong, saying why.
func (c *Check) Fail(field any, format string, args ...any) {
	s := c.setting(field)
	if _, ok := c.problems[s]; !ok {
		c.problems[s] = fmt.Sprintf(format, args...)
	}
}

// Positive: each field is a whole number above 0.
func (c *Check) Positive(fields ...*int) {
	for _, f := range fields {
		if *f <= 0 {
			c.Fail(f, "%d is not a positive whole number", *f)
		}
	}
}

// Range: field is from lo to hi.
func (c *Check) Range(field *int, lo, hi int) {
	if *field < lo || *field > hi {
		c.Fail(field, "%d is not from %d to %d", *field, lo, hi)
	}
}

// NotNegative: each duration is 0 or more.
func (c *Check) NotNegative(fields ...*time.Duration) {
	for _, f := range fields {
		if *f < 0 {
			c.Fail(f, "%s is negative", *f)
		}
	}
}

// OneOf: field is one of values.
func (c *Check) OneOf(field *string, values ...string) {
	if !slices.Contains(values, *field) {
		c.Fail(field, "%q is not one of %s", c.setting(field).shown(*field), strings.Join(values, ", "))
	}
}
