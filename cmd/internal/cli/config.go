package cli

import (
	"context"
	"encoding"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// A configuration is a struct whose fields are settings, each written once in
// its tags:
//
//	BatchSize int `env:"SIM_BATCH_SIZE" envDefault:"500" flag:"batch-size" help:"..."`
//
//   - env, envDefault: the environment variable and its default, read by
//     github.com/caarlos0/env (options such as `env:"NATS_URL,required,notEmpty"`
//     are that library's); a flag given on the command line wins over the
//     environment, which wins over the default.
//   - flag, help: the flag (Go's flag syntax: -batch-size 10, --batch-size=10)
//     and its line in --help. Every setting has both.
//   - secret:"true" never shows the value; secret:"url" shows a URL (or a
//     comma-separated list of them, or a PostgreSQL keyword/value string)
//     with its password, token and user replaced by ***.
//
// A field with a flag tag and no env tag is a choice of one invocation
// (--wait, --json): a typed flag whose default is the field's zero value.
// A struct-typed field without tags holds more settings (a shared NATS
// connection, the worker's settings); every struct in a configuration that
// has a method Validate(*Check) is validated once its fields are filled.

// Validator is a configuration struct that checks its settings.
type Validator interface {
	Validate(c *Check)
}

// setting is one field of a configuration.
type setting struct {
	field    reflect.StructField // Go name and type: the library's errors name them
	value    reflect.Value       // the field in the configuration
	env      string              // "" for a flag-only setting
	flag     string
	help     string
	def      string // the envDefault, or the flag-only setting's zero value
	required bool
	secret   string
	given    *string // the flag's text when it was on the command line
}

// name is how errors call a setting: its environment variable and its flag.
func (s *setting) name() string {
	if s.env == "" {
		return "-" + s.flag
	}
	return s.env + " (-" + s.flag + ")"
}

// shown is a value of the setting as it may be printed.
func (s *setting) shown(v string) string { return mask(s.secret, v) }

// text is the setting's current value as text.
func (s *setting) text() string {
	if m, ok := s.value.Addr().Interface().(encoding.TextMarshaler); ok {
		if b, err := m.MarshalText(); err == nil {
			return string(b)
		}
	}
	return fmt.Sprint(s.value.Interface())
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// settings lists the settings of the configuration v (a struct), in
// declaration order. A malformed tag is a programming error: it panics.
func settings(v reflect.Value) []*setting {
	var out []*setting
	t := v.Type()
	for i := range t.NumField() {
		f, fv := t.Field(i), v.Field(i)
		if !f.IsExported() {
			continue
		}
		envTag, hasEnv := f.Tag.Lookup("env")
		flagName, hasFlag := f.Tag.Lookup("flag")
		if !hasEnv && !hasFlag {
			if f.Type.Kind() == reflect.Struct && !reflect.PointerTo(f.Type).Implements(textUnmarshaler) {
				out = append(out, settings(fv)...)
				continue
			}
			panic(fmt.Sprintf("cli: %s.%s has neither an env nor a flag tag", t, f.Name))
		}
		s := &setting{field: f, value: fv, flag: flagName, help: f.Tag.Get("help"), secret: f.Tag.Get("secret")}
		if flagName == "" || s.help == "" {
			panic(fmt.Sprintf("cli: %s.%s needs a flag and a help tag", t, f.Name))
		}
		if hasEnv {
			key, opts, _ := strings.Cut(envTag, ",")
			s.env = key
			s.required = strings.Contains(","+opts+",", ",required,")
			s.def = f.Tag.Get("envDefault")
		} else {
			if _, ok := f.Tag.Lookup("envDefault"); ok {
				panic(fmt.Sprintf("cli: %s.%s: a flag-only setting defaults to its zero value", t, f.Name))
			}
			if !fv.IsZero() {
				panic(fmt.Sprintf("cli: %s.%s: a flag-only setting starts at its zero value", t, f.Name))
			}
			s.def = s.text()
		}
		out = append(out, s)
	}
	return out
}

// bound is a configuration bound to a flag set.
type bound struct {
	fs       *flag.FlagSet
	cfg      reflect.Value // the struct
	settings []*setting
	byField  map[fieldKey]*setting // for the library's errors, by Go name and type
}

type fieldKey struct {
	name string
	typ  reflect.Type
}

// bind registers a flag for every setting of cfg (a pointer to a struct) on a
// new flag set named name, whose --help starts with summary. Flags of
// settings with an environment variable keep their text for the library;
// flag-only settings are typed flags that fill their field directly.
func bind(name, summary string, cfg any) *bound {
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("cli: the configuration of %s is %T, not a pointer to a struct", name, cfg))
	}
	b := &bound{fs: flag.NewFlagSet(name, flag.ContinueOnError), cfg: v.Elem(), settings: settings(v.Elem()),
		byField: map[fieldKey]*setting{}}
	for _, s := range b.settings {
		if s.env == "" {
			bindTyped(b.fs, s)
			continue
		}
		k := fieldKey{s.field.Name, s.field.Type}
		if _, dup := b.byField[k]; dup && canFail(s.field.Type) {
			panic(fmt.Sprintf("cli: %s: two settings are fields %s of type %s; the library's errors could not tell them apart",
				name, k.name, k.typ))
		}
		b.byField[k] = s
		s.given = new(string)
		b.fs.Var(&textFlag{s: s}, s.flag, s.help)
	}
	b.fs.Usage = func() { b.usage(summary) }
	return b
}

// canFail tells whether the library can fail to parse a value of type t.
func canFail(t reflect.Type) bool {
	return t.Kind() != reflect.String || reflect.PointerTo(t).Implements(textUnmarshaler)
}

// textFlag is the flag of a setting that has an environment variable: it
// keeps the text given, which the library parses as if it came from the
// environment.
type textFlag struct{ s *setting }

func (f *textFlag) String() string {
	if f == nil || f.s == nil {
		return ""
	}
	return f.s.def
}

func (f *textFlag) Set(v string) error { *f.s.given = v; return nil }

func (f *textFlag) IsBoolFlag() bool { return f.s.field.Type.Kind() == reflect.Bool }

// bindTyped registers a flag-only setting as a typed flag on its field.
func bindTyped(fs *flag.FlagSet, s *setting) {
	p := s.value.Addr().Interface()
	switch p := p.(type) {
	case *bool:
		fs.BoolVar(p, s.flag, *p, s.help)
	case *string:
		fs.StringVar(p, s.flag, *p, s.help)
	case *int:
		fs.IntVar(p, s.flag, *p, s.help)
	case *uint64:
		fs.Uint64Var(p, s.flag, *p, s.help)
	case *time.Duration:
		fs.DurationVar(p, s.flag, *p, s.help)
	case encoding.TextUnmarshaler:
		m, ok := p.(encoding.TextMarshaler)
		if !ok {
			panic(fmt.Sprintf("cli: flag -%s: %T is not a TextMarshaler", s.flag, p))
		}
		fs.TextVar(p, s.flag, m, s.help)
	default:
		panic(fmt.Sprintf("cli: flag -%s: no flag for %T", s.flag, p))
	}
}

// usage is --help: the summary, then every flag with its environment
// variable (or none) and its default (or required).
func (b *bound) usage(summary string) {
	out := b.fs.Output()
	fmt.Fprintf(out, "%s\n\nSettings (flag, environment variable, default):\n", summary)
	for _, s := range b.settings {
		fmt.Fprintf(out, "%s\n      %s\n", s.helpLine(), s.help)
	}
}

// Markdown is the settings of commands as Markdown, from what --help says
// of them: a table per command (flag, environment variable, default,
// meaning). docs/configuration.md is made of it, and tests hold it to it.
func Markdown(commands []Command) string {
	var b strings.Builder
	for _, c := range commands {
		bd, _ := c.bind()
		fmt.Fprintf(&b, "### `%s`\n\n%s\n\n", c.Name, c.Summary)
		if len(bd.settings) == 0 {
			b.WriteString("No settings.\n\n")
			continue
		}
		b.WriteString("| variable | flag | default | meaning |\n| --- | --- | --- | --- |\n")
		for _, s := range bd.settings {
			env, def := "(none: this invocation's choice)", "`"+s.def+"`"
			if s.env != "" {
				env = "`" + s.env + "`"
			}
			switch {
			case s.required:
				def = "(required)"
			case s.def == "":
				def = "(none)"
			}
			fmt.Fprintf(&b, "| %s | `-%s` | %s | %s |\n", env, s.flag, def, strings.ReplaceAll(s.help, "|", "\\|"))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// helpLine is the first line of a setting in --help:
//
//	-batch-size, SIM_BATCH_SIZE  (default 500)
//	-json  (no environment variable; default false)
func (s *setting) helpLine() string {
	def := "default " + s.def
	switch {
	case s.required:
		def = "required"
	case s.def == "":
		def = "default none"
	}
	if s.env == "" {
		return fmt.Sprintf("  -%s  (no environment variable; %s)", s.flag, def)
	}
	return fmt.Sprintf("  -%s, %s  (%s)", s.flag, s.env, def)
}

// FlagError is a command line the flags could not parse: a mistyped or
// missing flag, or a value of the wrong kind. It says so in one line with a
// hint, not above the whole help.
type FlagError struct {
	Command string
	Err     error
}

func (e *FlagError) Error() string {
	return fmt.Sprintf("%v (run '%s --help' for its flags)", e.Err, e.Command)
}

func (e *FlagError) Unwrap() error { return e.Err }

// load parses args, then fills the configuration from environ overlaid with
// the flags given, then validates it. Every problem is reported at once,
// each naming its environment variable and flag. It returns the arguments
// after the flags.
func (b *bound) load(args []string, environ map[string]string, stderr io.Writer) ([]string, error) {
	// The flag package prints its error and the whole help on a bad flag;
	// the help is for --help, a bad flag gets its error and a hint.
	b.fs.SetOutput(io.Discard)
	err := b.fs.Parse(args)
	b.fs.SetOutput(stderr)
	if errors.Is(err, flag.ErrHelp) {
		b.fs.Usage()
		return nil, err
	}
	if err != nil {
		return nil, &FlagError{Command: b.fs.Name(), Err: err}
	}
	merged := make(map[string]string, len(environ))
	for k, v := range environ {
		merged[k] = v
	}
	b.fs.Visit(func(f *flag.Flag) {
		if tf, ok := f.Value.(*textFlag); ok {
			merged[tf.s.env] = *tf.s.given
		}
	})
	c := &Check{problems: map[*setting]string{}, byAddr: map[addrKey]*setting{}}
	var missing []string
	var others []error
	if err := env.ParseWithOptions(b.cfg.Addr().Interface(), env.Options{Environment: merged}); err != nil {
		var agg env.AggregateError
		if !errors.As(err, &agg) {
			return nil, err
		}
		for _, e := range agg.Errors {
			var (
				notSet env.VarIsNotSetError
				empty  env.EmptyVarError
				parse  env.ParseError
			)
			switch {
			case errors.As(e, &notSet):
				missing = append(missing, b.withFlag(notSet.Key))
			case errors.As(e, &empty):
				missing = append(missing, b.withFlag(empty.Key))
			case errors.As(e, &parse) && b.byField[fieldKey{parse.Name, parse.Type}] != nil:
				s := b.byField[fieldKey{parse.Name, parse.Type}]
				raw, ok := merged[s.env]
				if !ok || raw == "" {
					raw = s.def
				}
				c.problems[s] = fmt.Sprintf("%q %s", s.shown(raw), parseFailure(s.field.Type, parse.Err))
			default:
				others = append(others, e)
			}
		}
	}
	for _, s := range b.settings {
		c.byAddr[addrKey{s.value.Addr().Pointer(), s.field.Type}] = s
	}
	validate(b.cfg, c)

	var errs []error
	if len(missing) > 0 {
		sort.Strings(missing)
		errs = append(errs, fmt.Errorf("missing required setting: %s; set the environment variable or the flag (see --help)%s",
			strings.Join(missing, ", "), devEnvHint(merged)))
	}
	for _, s := range b.settings { // in declaration order
		if p, ok := c.problems[s]; ok {
			errs = append(errs, fmt.Errorf("%s: %s", s.name(), p))
		}
	}
	errs = append(errs, others...)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return b.fs.Args(), nil
}

// withFlag is an environment variable and its flag.
func (b *bound) withFlag(envName string) string {
	for _, s := range b.settings {
		if s.env == envName {
			return s.name()
		}
	}
	return envName
}

// parseFailure says why text is not a value of type t.
func parseFailure(t reflect.Type, err error) string {
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return "is not a duration (e.g. 30s, 2m)"
	case reflect.PointerTo(t).Implements(textUnmarshaler):
		return err.Error()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "is not a whole number"
	case reflect.Bool:
		return "is not true or false"
	}
	return err.Error()
}

// validate calls Validate on v (a struct) and on every struct in it that has one.
func validate(v reflect.Value, c *Check) {
	if val, ok := v.Addr().Interface().(Validator); ok {
		val.Validate(c)
	}
	for i := range v.NumField() {
		f := v.Type().Field(i)
		_, hasEnv := f.Tag.Lookup("env")
		_, hasFlag := f.Tag.Lookup("flag")
		if f.IsExported() && !hasEnv && !hasFlag && f.Type.Kind() == reflect.Struct {
			validate(v.Field(i), c)
		}
	}
}

// Command is a subcommand of a program: its name ("simctl tail"), the
// summary its --help starts with, and what it does with its configuration.
type Command struct {
	Name    string
	Summary string
	// bind returns a new configuration bound to a new flag set, and the
	// command run on that configuration.
	bind func() (*bound, func(ctx context.Context, args []string, stdout, stderr io.Writer) error)
}

// NewCommand is the command name whose configuration is a C (a struct of
// settings) and which runs run with it, the arguments after the flags, and
// the writers for its output.
func NewCommand[C any](name, summary string, run func(ctx context.Context, cfg *C, args []string, stdout, stderr io.Writer) error) Command {
	return Command{Name: name, Summary: summary, bind: func() (*bound, func(context.Context, []string, io.Writer, io.Writer) error) {
		cfg := new(C)
		return bind(name, summary, cfg), func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			return run(ctx, cfg, args, stdout, stderr)
		}
	}}
}

// Run fills a new configuration from args and the process environment,
// validates it and runs the command. --help writes the help to stderr and
// returns flag.ErrHelp.
func (c Command) Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	b, run := c.bind()
	rest, err := b.load(args, env.ToMap(os.Environ()), stderr)
	if err != nil {
		return err
	}
	return run(ctx, rest, stdout, stderr)
}

// FlagSet is a new copy of the flags Run parses (tests walk it).
func (c Command) FlagSet() *flag.FlagSet {
	b, _ := c.bind()
	return b.fs
}

// Words are the words of the command's name after the program's.
func (c Command) Words() []string { return strings.Fields(c.Name)[1:] }

// Subcommands are the words that follow word in the commands whose name
// begins with it ("events": "republish"), for a command line that stops
// short of one.
func Subcommands(commands []Command, word string) []string {
	var subs []string
	for _, c := range commands {
		if w := c.Words(); len(w) > 1 && w[0] == word {
			subs = append(subs, w[1])
		}
	}
	return subs
}

// devEnvHint, when `simworker dev` wrote its env file where it keeps its
// data (SIM_DEV_DATA_DIR, or .simworker-dev here), says to source it: it
// holds NATS_URL and DATABASE_URL for a shell beside a running dev.
func devEnvHint(environ map[string]string) string {
	dir := environ["SIM_DEV_DATA_DIR"]
	if dir == "" {
		dir = ".simworker-dev"
	}
	file := filepath.Join(dir, "env")
	if st, err := os.Stat(file); err != nil || st.IsDir() {
		return ""
	}
	return "; simworker dev wrote them for this directory: source " + file
}

// Nearest is the command of commands whose words are nearest to the words
// args begins with, when one is near enough to be a typing slip ("rnu" for
// "run", "tokens crate" for "tokens create"); "" when none is.
func Nearest(commands []Command, args []string) string {
	best, bestDist := "", 0
	for _, c := range commands {
		w := c.Words()
		if len(args) < len(w) {
			continue
		}
		want, typed := strings.Join(w, " "), strings.Join(args[:len(w)], " ")
		d := editDistance(typed, want)
		if d > 0 && d <= max(1, len(want)/3) && (best == "" || d < bestDist) {
			best, bestDist = want, d
		}
	}
	return best
}

// editDistance is the edit distance of a and b, in bytes: insertions,
// deletions, substitutions and swaps of two neighbours ("rnu" is one from
// "run").
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// Find is the command whose words begin args, and the arguments after them.
func Find(commands []Command, args []string) (Command, []string, bool) {
next:
	for _, c := range commands {
		w := c.Words()
		if len(args) < len(w) {
			continue
		}
		for i := range w {
			if args[i] != w[i] {
				continue next
			}
		}
		return c, args[len(w):], true
	}
	return Command{}, nil, false
}
