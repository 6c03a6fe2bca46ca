package sshd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// builtins are the appliance's coreutils and friends, as far as the KB
// procedures use them. Config.Commands take precedence over them.
var builtins map[string]Command

func init() {
	builtins = map[string]Command{
		":":        func(context.Context, *Invocation) int { return 0 },
		"true":     func(context.Context, *Invocation) int { return 0 },
		"false":    func(context.Context, *Invocation) int { return 1 },
		"echo":     echoCmd,
		"pwd":      pwdCmd,
		"hostname": hostnameCmd,
		"cat":      catCmd,
		"mkdir":    mkdirCmd,
		"rm":       rmCmd,
		"ls":       lsCmd,
		"chmod":    chmodCmd,
		"cp":       cpCmd,
		"mv":       mvCmd,
		"touch":    touchCmd,
		"tee":      teeCmd,
		"grep":     grepCmd,
		"egrep":    grepCmd,
		"fgrep":    grepCmd,
		"head":     headCmd,
		"tail":     tailCmd,
		"wc":       wcCmd,
		"base64":   base64Cmd,
		"sleep":    sleepCmd,
	}
	specialBuiltins["test"] = func(sh *shell, c *command, args []string, std stdio) int {
		return testCmd(args, std.err, sh.errPrefix(c.line), sh.fileTest)
	}
	specialBuiltins["["] = specialBuiltins["test"]
}

// errorf prints a utility's error message, "name: message", to stderr.
func errorf(inv *Invocation, format string, args ...any) {
	fmt.Fprintf(inv.Stderr, path.Base(inv.Args[0])+": "+format+"\n", args...)
}

// usage prints a usage error followed by the coreutils hint.
func usage(inv *Invocation, format string, args ...any) {
	errorf(inv, format, args...)
	fmt.Fprintf(inv.Stderr, "Try '%s --help' for more information.\n", path.Base(inv.Args[0]))
}

// flags splits leading single-letter options from operands. Options in
// withArg take a value ("-n 5" or "-n5"). A lone "-" is an operand and "--"
// ends the options. Numeric options such as "-5" are returned as "#" with
// the digits as value.
func flags(args []string, withArg string) (opts []option, operands []string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return opts, append(operands, args[i+1:]...), nil
		}
		if len(a) < 2 || a[0] != '-' {
			operands = append(operands, a)
			continue
		}
		if isDigit(a[1]) {
			opts = append(opts, option{'#', a[1:]})
			continue
		}
		for j := 1; j < len(a); j++ {
			c := rune(a[j])
			if !strings.ContainsRune(withArg, c) {
				opts = append(opts, option{c, ""})
				continue
			}
			v := a[j+1:]
			if v == "" {
				if i+1 >= len(args) {
					return nil, nil, fmt.Errorf("option requires an argument -- '%c'", c)
				}
				i++
				v = args[i]
			}
			opts = append(opts, option{c, v})
			break
		}
	}
	return opts, operands, nil
}

type option struct {
	name  rune
	value string
}

// open opens an operand for reading; "-" is stdin.
func open(inv *Invocation, name string) (io.ReadCloser, error) {
	if name == "-" {
		return io.NopCloser(inv.Stdin), nil
	}
	f, err := inv.FS.Open(inv.Rel(name))
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		f.Close()
		return nil, syscall.EISDIR
	}
	return f, nil
}

// errStop, returned by a forEachInput callback, skips the remaining inputs.
var errStop = errors.New("stop")

// forEachInput calls fn for each operand, or for stdin when there are none,
// reporting open errors as "cmd: file: message". It returns 1 if any input
// failed.
func forEachInput(inv *Invocation, operands []string, fn func(name string, r io.Reader) error) int {
	return forEachInputMsg(inv, operands, "%s: %s", fn)
}

// forEachInputMsg is forEachInput with the open error worded by format,
// which gets the file name and the error text.
func forEachInputMsg(inv *Invocation, operands []string, format string, fn func(name string, r io.Reader) error) int {
	if len(operands) == 0 {
		operands = []string{"-"}
	}
	status := 0
	for _, name := range operands {
		r, err := open(inv, name)
		if err != nil {
			errorf(inv, format, name, errText(err))
			status = 1
			continue
		}
		err = fn(name, r)
		r.Close()
		if err != nil {
			if errors.Is(err, errStop) {
				return status
			}
			if errors.Is(err, errBrokenPipe) || errors.Is(err, io.ErrClosedPipe) {
				return 1
			}
			errorf(inv, "%s: %s", name, errText(err))
			status = 1
		}
	}
	return status
}

func echoCmd(_ context.Context, inv *Invocation) int {
	args := inv.Args[1:]
	newline, escapes := true, false
	for len(args) > 0 && len(args[0]) > 1 && args[0][0] == '-' && strings.Trim(args[0][1:], "neE") == "" {
		for _, c := range args[0][1:] {
			switch c {
			case 'n':
				newline = false
			case 'e':
				escapes = true
			case 'E':
				escapes = false
			}
		}
		args = args[1:]
	}
	s := strings.Join(args, " ")
	if escapes {
		var stop bool
		s, stop = unescapeEcho(s)
		if stop {
			newline = false
		}
	}
	if newline {
		s += "\n"
	}
	if _, err := io.WriteString(inv.Stdout, s); err != nil {
		return 1
	}
	return 0
}

// unescapeEcho interprets echo -e escapes; stop is true after \c.
func unescapeEcho(s string) (out string, stop bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'e':
			b.WriteByte(0x1b)
		case '\\':
			b.WriteByte('\\')
		case 'c':
			return b.String(), true
		default:
			b.WriteByte('\\')
			b.WriteByte(s[i])
		}
	}
	return b.String(), false
}

func pwdCmd(_ context.Context, inv *Invocation) int {
	fmt.Fprintln(inv.Stdout, inv.Dir)
	return 0
}

func hostnameCmd(_ context.Context, inv *Invocation) int {
	name := inv.Env["HOSTNAME"]
	if slices.Contains(inv.Args[1:], "-s") {
		name, _, _ = strings.Cut(name, ".")
	}
	fmt.Fprintln(inv.Stdout, name)
	return 0
}

func catCmd(_ context.Context, inv *Invocation) int {
	_, operands, err := flags(inv.Args[1:], "")
	if err != nil {
		errorf(inv, "%v", err)
		return 1
	}
	return forEachInput(inv, operands, func(_ string, r io.Reader) error {
		_, err := io.Copy(inv.Stdout, r)
		return err
	})
}

func mkdirCmd(_ context.Context, inv *Invocation) int {
	opts, operands, err := flags(inv.Args[1:], "m")
	if err != nil || len(operands) == 0 {
		usage(inv, "missing operand")
		return 1
	}
	parents := slices.ContainsFunc(opts, func(o option) bool { return o.name == 'p' })
	status := 0
	for _, d := range operands {
		if parents {
			err = inv.FS.MkdirAll(inv.Rel(d), 0o755)
		} else {
			err = inv.FS.Mkdir(inv.Rel(d), 0o755)
		}
		if err != nil {
			errorf(inv, "cannot create directory ‘%s’: %s", d, errText(err))
			status = 1
		}
	}
	return status
}

func rmCmd(_ context.Context, inv *Invocation) int {
	opts, operands, _ := flags(inv.Args[1:], "")
	var force, recursive bool
	for _, o := range opts {
		switch o.name {
		case 'f':
			force = true
		case 'r', 'R':
			recursive = true
		}
	}
	if len(operands) == 0 && !force {
		usage(inv, "missing operand")
		return 1
	}
	status := 0
	for _, name := range operands {
		r := inv.Rel(name)
		if r == "." {
			errorf(inv, "it is dangerous to operate recursively on '%s'", name)
			status = 1
			continue
		}
		fi, err := inv.FS.Lstat(r)
		switch {
		case err != nil:
			if !force || !errors.Is(err, fs.ErrNotExist) {
				errorf(inv, "cannot remove '%s': %s", name, errText(err))
				status = 1
			}
			continue
		case fi.IsDir() && !recursive:
			errorf(inv, "cannot remove '%s': Is a directory", name)
			status = 1
			continue
		case fi.IsDir():
			err = inv.FS.RemoveAll(r)
		default:
			err = inv.FS.Remove(r)
		}
		if err != nil {
			errorf(inv, "cannot remove '%s': %s", name, errText(err))
			status = 1
		}
	}
	return status
}

func lsCmd(_ context.Context, inv *Invocation) int {
	opts, operands, err := flags(inv.Args[1:], "")
	if err != nil {
		errorf(inv, "%v", err)
		return 2
	}
	var long, all, almost, dirOnly bool
	for _, o := range opts {
		switch o.name {
		case 'l':
			long = true
		case 'a':
			all = true
		case 'A':
			almost = true
		case 'd':
			dirOnly = true
		}
	}
	if len(operands) == 0 {
		operands = []string{"."}
	}
	status := 0
	var files []fs.FileInfo
	var fileNames []string
	var dirs []string
	for _, name := range operands {
		fi, err := inv.FS.Stat(inv.Rel(name))
		if err != nil {
			errorf(inv, "cannot access '%s': %s", name, errText(err))
			status = 2
			continue
		}
		if fi.IsDir() && !dirOnly {
			dirs = append(dirs, name)
		} else {
			files = append(files, fi)
			fileNames = append(fileNames, name)
		}
	}
	w := bufio.NewWriter(inv.Stdout)
	defer w.Flush()
	for i, fi := range files {
		lsEntry(w, inv, fi, fileNames[i], inv.Rel(fileNames[i]), long)
	}
	for i, d := range dirs {
		if len(operands) > 1 {
			if i > 0 || len(files) > 0 {
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "%s:\n", d)
		}
		f, err := inv.FS.Open(inv.Rel(d))
		if err != nil {
			errorf(inv, "cannot open directory '%s': %s", d, errText(err))
			status = 2
			continue
		}
		entries, err := f.ReadDir(-1)
		f.Close()
		slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
		if err != nil {
			errorf(inv, "reading directory '%s': %s", d, errText(err))
			status = 2
			continue
		}
		var infos []fs.FileInfo
		if all {
			for _, n := range []string{".", ".."} {
				if fi, err := inv.FS.Stat(path.Join(inv.Rel(d), n)); err == nil {
					infos = append(infos, namedInfo{fi, n})
				}
			}
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") && !all && !almost {
				continue
			}
			if fi, err := e.Info(); err == nil {
				infos = append(infos, fi)
			}
		}
		if long {
			var blocks int64
			for _, fi := range infos {
				blocks += (fi.Size() + 4095) / 4096 * 4
			}
			fmt.Fprintf(w, "total %d\n", blocks)
		}
		for _, fi := range infos {
			lsEntry(w, inv, fi, fi.Name(), path.Join(inv.Rel(d), fi.Name()), long)
		}
	}
	return status
}

// namedInfo renames a FileInfo (for "." and "..").
type namedInfo struct {
	fs.FileInfo
	name string
}

func (n namedInfo) Name() string { return n.name }

func lsEntry(w io.Writer, inv *Invocation, fi fs.FileInfo, name, relName string, long bool) {
	if !long {
		fmt.Fprintln(w, name)
		return
	}
	mode := fi.Mode().String()
	if fi.IsDir() {
		mode = "d" + mode[1:]
	} else if fi.Mode()&fs.ModeSymlink != 0 {
		mode = "l" + mode[1:]
	}
	when := fi.ModTime().Format("Jan _2 15:04")
	if time.Since(fi.ModTime()) > 180*24*time.Hour {
		when = fi.ModTime().Format("Jan _2  2006")
	}
	fmt.Fprintf(w, "%s 1 root root %8d %s %s", mode, fi.Size(), when, name)
	if fi.Mode()&fs.ModeSymlink != 0 {
		if target, err := inv.FS.Readlink(relName); err == nil {
			fmt.Fprintf(w, " -> %s", target)
		}
	}
	fmt.Fprintln(w)
}

var chmodMode = regexp.MustCompile(`^([0-7]{3,4}|([ugoa]*[-+=][rwxXst]*)(,[ugoa]*[-+=][rwxXst]*)*)$`)

// chmodCmd checks its arguments and that the files exist, but does not
// change modes: the simulated node runs everything as root, so permissions
// have no effect on what its commands can do.
func chmodCmd(_ context.Context, inv *Invocation) int {
	args := inv.Args[1:]
	for len(args) > 0 && (args[0] == "-R" || args[0] == "-f" || args[0] == "-v") {
		args = args[1:]
	}
	switch {
	case len(args) == 0:
		usage(inv, "missing operand")
		return 1
	case len(args) == 1:
		usage(inv, "missing operand after ‘%s’", args[0])
		return 1
	case !chmodMode.MatchString(args[0]):
		usage(inv, "invalid mode: ‘%s’", args[0])
		return 1
	}
	status := 0
	for _, name := range args[1:] {
		if _, err := inv.FS.Stat(inv.Rel(name)); err != nil {
			errorf(inv, "cannot access '%s': %s", name, errText(err))
			status = 1
		}
	}
	return status
}

func cpCmd(_ context.Context, inv *Invocation) int {
	return eachSource(inv, func(src, target string) error { return copyFile(inv, src, target) })
}

// eachSource applies op to each source operand of cp or mv and its target:
// the last operand, or the file of the same name in it when it is a
// directory (which it must be for several sources), as coreutils does.
func eachSource(inv *Invocation, op func(src, target string) error) int {
	_, operands, _ := flags(inv.Args[1:], "")
	if len(operands) < 2 {
		usage(inv, "missing file operand")
		return 1
	}
	srcs, dst := operands[:len(operands)-1], operands[len(operands)-1]
	dstDir := false
	if fi, err := inv.FS.Stat(inv.Rel(dst)); err == nil && fi.IsDir() {
		dstDir = true
	} else if len(srcs) > 1 {
		errorf(inv, "target '%s' is not a directory", dst)
		return 1
	}
	status := 0
	for _, src := range srcs {
		target := dst
		if dstDir {
			target = path.Join(dst, path.Base(src))
		}
		if err := op(src, target); err != nil {
			errorf(inv, "%v", err)
			status = 1
		}
	}
	return status
}

func copyFile(inv *Invocation, src, dst string) error {
	in, err := inv.FS.Open(inv.Rel(src))
	if err != nil {
		return fmt.Errorf("cannot stat '%s': %s", src, errText(err))
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return fmt.Errorf("cannot stat '%s': %s", src, errText(err))
	}
	if fi.IsDir() {
		return fmt.Errorf("-r not specified; omitting directory '%s'", src)
	}
	out, err := inv.FS.OpenFile(inv.Rel(dst), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return fmt.Errorf("cannot create regular file '%s': %s", dst, errText(err))
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("error writing '%s': %s", dst, errText(err))
	}
	return nil
}

func mvCmd(_ context.Context, inv *Invocation) int {
	return eachSource(inv, func(src, target string) error {
		if _, err := inv.FS.Lstat(inv.Rel(src)); err != nil {
			return fmt.Errorf("cannot stat '%s': %s", src, errText(err))
		}
		if err := inv.FS.Rename(inv.Rel(src), inv.Rel(target)); err != nil {
			return fmt.Errorf("cannot move '%s' to '%s': %s", src, target, errText(err))
		}
		return nil
	})
}

func touchCmd(_ context.Context, inv *Invocation) int {
	_, operands, _ := flags(inv.Args[1:], "")
	if len(operands) == 0 {
		usage(inv, "missing file operand")
		return 1
	}
	status := 0
	now := time.Now()
	for _, name := range operands {
		f, err := inv.FS.OpenFile(inv.Rel(name), os.O_WRONLY|os.O_CREATE, 0o644)
		if err == nil {
			f.Close()
			err = inv.FS.Chtimes(inv.Rel(name), now, now)
		}
		if err != nil {
			errorf(inv, "cannot touch '%s': %s", name, errText(err))
			status = 1
		}
	}
	return status
}

func teeCmd(_ context.Context, inv *Invocation) int {
	opts, operands, _ := flags(inv.Args[1:], "")
	flag := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if slices.ContainsFunc(opts, func(o option) bool { return o.name == 'a' }) {
		flag = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	writers := []io.Writer{inv.Stdout}
	status := 0
	for _, name := range operands {
		f, err := inv.FS.OpenFile(inv.Rel(name), flag, 0o644)
		if err != nil {
			errorf(inv, "%s: %s", name, errText(err))
			status = 1
			continue
		}
		defer f.Close()
		writers = append(writers, f)
	}
	if _, err := io.Copy(io.MultiWriter(writers...), inv.Stdin); err != nil {
		return 1
	}
	return status
}

// grepCmd implements grep, egrep and fgrep with -i -v -E -F -e -q -c -n -l
// -h -H -w -x -o and -A/-B/-C context.
func grepCmd(_ context.Context, inv *Invocation) int {
	opts, operands, err := flags(inv.Args[1:], "eABCm")
	if err != nil {
		errorf(inv, "%v", err)
		return 2
	}
	mode := path.Base(inv.Args[0])
	var patterns []string
	var ignoreCase, invert, quiet, count, number, names, word, line, only bool
	showName := 0 // 0 = when several files, 1 = always, -1 = never
	after, before := 0, 0
	maxCount := -1
	for _, o := range opts {
		switch o.name {
		case 'e':
			patterns = append(patterns, o.value)
		case 'E':
			mode = "egrep"
		case 'F':
			mode = "fgrep"
		case 'G':
			mode = "grep"
		case 'i', 'y':
			ignoreCase = true
		case 'v':
			invert = true
		case 'q', 's':
			quiet = quiet || o.name == 'q'
		case 'c':
			count = true
		case 'n':
			number = true
		case 'l':
			names = true
		case 'H':
			showName = 1
		case 'h':
			showName = -1
		case 'w':
			word = true
		case 'x':
			line = true
		case 'o':
			only = true
		case 'A', 'B', 'C', 'm':
			n, err := strconv.Atoi(o.value)
			if err != nil || n < 0 {
				errorf(inv, "%s: invalid context length argument", o.value)
				return 2
			}
			switch o.name {
			case 'A':
				after = n
			case 'B':
				before = n
			case 'C':
				after, before = n, n
			case 'm':
				maxCount = n
			}
		default:
			errorf(inv, "invalid option -- '%c'", o.name)
			return 2
		}
	}
	if patterns == nil {
		if len(operands) == 0 {
			fmt.Fprintf(inv.Stderr, "Usage: %s [OPTION]... PATTERNS [FILE]...\n", path.Base(inv.Args[0]))
			return 2
		}
		patterns, operands = strings.Split(operands[0], "\n"), operands[1:]
	}
	re, err := grepRegexp(patterns, mode, ignoreCase, word, line)
	if err != nil {
		errorf(inv, "%v", err)
		return 2
	}
	prefixName := showName == 1 || (showName == 0 && len(operands) > 1)
	matched := false
	w := bufio.NewWriter(inv.Stdout)
	defer w.Flush()
	status := forEachInput(inv, operands, func(name string, r io.Reader) error {
		if name == "-" {
			name = "(standard input)"
		}
		g := grepper{w: w, re: re, invert: invert, only: only, number: number,
			after: after, before: before, max: maxCount}
		if prefixName {
			g.prefix = name
		}
		if quiet || names || count {
			g.w = nil
		}
		n, err := g.run(r)
		if err != nil {
			return err
		}
		if n > 0 {
			matched = true
		}
		switch {
		case names && n > 0:
			fmt.Fprintln(w, name)
		case count && !names && !quiet:
			if prefixName {
				fmt.Fprintf(w, "%s:", name)
			}
			fmt.Fprintln(w, n)
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if quiet && matched {
			return errStop
		}
		return nil
	})
	switch {
	case quiet && matched:
		return 0
	case status != 0:
		return 2
	case matched:
		return 0
	}
	return 1
}

// grepRegexp compiles grep patterns in the given dialect to one Go regexp.
func grepRegexp(patterns []string, mode string, ignoreCase, word, line bool) (*regexp.Regexp, error) {
	var alts []string
	for _, p := range patterns {
		switch mode {
		case "fgrep":
			p = regexp.QuoteMeta(p)
		case "egrep":
			p = gnuEscapes(p)
		default:
			p = gnuEscapes(breToERE(p))
		}
		alts = append(alts, "(?:"+p+")")
	}
	expr := strings.Join(alts, "|")
	switch {
	case line:
		expr = "^(?:" + expr + ")$"
	case word:
		expr = `\b(?:` + expr + `)\b`
	}
	if ignoreCase {
		expr = "(?i)" + expr
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("invalid regular expression: %w", err)
	}
	return re, nil
}

// breToERE turns a POSIX basic regular expression into an extended one:
// \( \) \{ \} \| \+ \? become operators and the bare characters literals.
func breToERE(p string) string {
	var b strings.Builder
	inBracket := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case inBracket:
			if c == ']' {
				inBracket = false
			}
			b.WriteByte(c)
		case c == '[':
			inBracket = true
			b.WriteByte(c)
			if i+1 < len(p) && p[i+1] == '^' {
				b.WriteByte('^')
				i++
			}
			if i+1 < len(p) && p[i+1] == ']' {
				b.WriteByte(']')
				i++
			}
		case c == '\\' && i+1 < len(p):
			i++
			if strings.IndexByte("(){}|+?", p[i]) >= 0 {
				b.WriteByte(p[i])
			} else {
				b.WriteByte('\\')
				b.WriteByte(p[i])
			}
		case strings.IndexByte("(){}|+?", c) >= 0:
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// gnuEscapes maps GNU word-boundary escapes \< and \> to \b.
func gnuEscapes(p string) string {
	return strings.NewReplacer(`\<`, `\b`, `\>`, `\b`).Replace(p)
}

// grepper selects lines and prints them with context.
type grepper struct {
	w             *bufio.Writer // nil to only count
	re            *regexp.Regexp
	invert, only  bool
	number        bool
	prefix        string
	after, before int
	max           int
}

// run returns the number of selected lines.
func (g *grepper) run(r io.Reader) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 16*1024*1024)
	type held struct {
		n    int
		text string
	}
	var ring []held
	selected, lineNo, lastPrinted, afterLeft := 0, 0, 0, 0
	for sc.Scan() {
		lineNo++
		text := sc.Text()
		if g.max >= 0 && selected >= g.max {
			if afterLeft > 0 && g.w != nil {
				g.print(lineNo, text, '-')
				lastPrinted = lineNo
				afterLeft--
				continue
			}
			break
		}
		if g.re.MatchString(text) != g.invert {
			selected++
			if g.w == nil {
				continue
			}
			if (g.after > 0 || g.before > 0) && lastPrinted > 0 && lineNo-len(ring) > lastPrinted+1 {
				g.w.WriteString("--\n")
			}
			for _, h := range ring {
				g.print(h.n, h.text, '-')
			}
			ring = ring[:0]
			if g.only && !g.invert {
				for _, m := range g.re.FindAllString(text, -1) {
					g.print(lineNo, m, ':')
				}
			} else {
				g.print(lineNo, text, ':')
			}
			lastPrinted, afterLeft = lineNo, g.after
			continue
		}
		if g.w == nil {
			continue
		}
		if afterLeft > 0 {
			g.print(lineNo, text, '-')
			lastPrinted = lineNo
			afterLeft--
			continue
		}
		if g.before > 0 {
			if len(ring) == g.before {
				ring = ring[1:]
			}
			ring = append(ring, held{lineNo, text})
		}
	}
	return selected, sc.Err()
}

func (g *grepper) print(n int, text string, sep byte) {
	if g.prefix != "" {
		g.w.WriteString(g.prefix)
		g.w.WriteByte(sep)
	}
	if g.number {
		g.w.WriteString(strconv.Itoa(n))
		g.w.WriteByte(sep)
	}
	g.w.WriteString(text)
	g.w.WriteByte('\n')
}

// lineCount parses -n N, -N and (for tail) -n +N.
func lineCount(inv *Invocation, opts []option) (n int, fromStart bool, ok bool) {
	n = 10
	for _, o := range opts {
		switch o.name {
		case 'n', '#':
			v := o.value
			if strings.HasPrefix(v, "+") {
				fromStart, v = true, v[1:]
			}
			c, err := strconv.Atoi(strings.TrimPrefix(v, "-"))
			if err != nil {
				errorf(inv, "invalid number of lines: '%s'", o.value)
				return 0, false, false
			}
			n = c
		default:
			errorf(inv, "invalid option -- '%c'", o.name)
			return 0, false, false
		}
	}
	return n, fromStart, true
}

func headCmd(_ context.Context, inv *Invocation) int {
	opts, operands, err := flags(inv.Args[1:], "n")
	if err != nil {
		errorf(inv, "%v", err)
		return 1
	}
	n, _, ok := lineCount(inv, opts)
	if !ok {
		return 1
	}
	headers := &fileHeaders{w: inv.Stdout, on: len(operands) > 1}
	return forEachInputMsg(inv, operands, "cannot open '%s' for reading: %s", func(name string, r io.Reader) error {
		headers.next(name)
		br := bufio.NewReader(r)
		for i := 0; i < n; i++ {
			line, err := br.ReadString('\n')
			if _, werr := io.WriteString(inv.Stdout, line); werr != nil {
				return werr
			}
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// fileHeaders prints head's and tail's "==> name <==" lines between files.
type fileHeaders struct {
	w     io.Writer
	on    bool
	count int
}

func (h *fileHeaders) next(name string) {
	if !h.on {
		return
	}
	if h.count > 0 {
		fmt.Fprintln(h.w)
	}
	h.count++
	if name == "-" {
		name = "standard input"
	}
	fmt.Fprintf(h.w, "==> %s <==\n", name)
}

func tailCmd(_ context.Context, inv *Invocation) int {
	opts, operands, err := flags(inv.Args[1:], "n")
	if err != nil {
		errorf(inv, "%v", err)
		return 1
	}
	n, fromStart, ok := lineCount(inv, opts)
	if !ok {
		return 1
	}
	headers := &fileHeaders{w: inv.Stdout, on: len(operands) > 1}
	return forEachInputMsg(inv, operands, "cannot open '%s' for reading: %s", func(name string, r io.Reader) error {
		headers.next(name)
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		lines := strings.SplitAfter(string(data), "\n")
		if lines[len(lines)-1] == "" {
			lines = lines[:len(lines)-1]
		}
		switch {
		case fromStart:
			lines = lines[min(max(n-1, 0), len(lines)):]
		case n < len(lines):
			lines = lines[len(lines)-n:]
		}
		_, err = io.WriteString(inv.Stdout, strings.Join(lines, ""))
		return err
	})
}

func wcCmd(_ context.Context, inv *Invocation) int {
	opts, operands, err := flags(inv.Args[1:], "")
	if err != nil {
		errorf(inv, "%v", err)
		return 1
	}
	var lines, words, bytes_ bool
	for _, o := range opts {
		switch o.name {
		case 'l':
			lines = true
		case 'w':
			words = true
		case 'c', 'm':
			bytes_ = true
		default:
			errorf(inv, "invalid option -- '%c'", o.name)
			return 1
		}
	}
	if !lines && !words && !bytes_ {
		lines, words, bytes_ = true, true, true
	}
	var total [3]int
	var rows [][3]int
	var rowNames []string
	status := forEachInput(inv, operands, func(name string, r io.Reader) error {
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		c := [3]int{bytes.Count(data, []byte("\n")), len(bytes.Fields(data)), len(data)}
		for i := range c {
			total[i] += c[i]
		}
		rows = append(rows, c)
		rowNames = append(rowNames, name)
		return nil
	})
	if len(operands) > 1 {
		rows = append(rows, total)
		rowNames = append(rowNames, "total")
	}
	show := []bool{lines, words, bytes_}
	single := len(operands) <= 1 && !(lines && words) && !(lines && bytes_) && !(words && bytes_)
	for i, row := range rows {
		var fields []string
		for j, on := range show {
			if !on {
				continue
			}
			if single {
				fields = append(fields, strconv.Itoa(row[j]))
			} else {
				fields = append(fields, fmt.Sprintf("%7d", row[j]))
			}
		}
		if rowNames[i] != "-" {
			fields = append(fields, rowNames[i])
		}
		fmt.Fprintln(inv.Stdout, strings.Join(fields, " "))
	}
	return status
}

func base64Cmd(_ context.Context, inv *Invocation) int {
	args := inv.Args[1:]
	decode, wrap := false, 76
	var operands []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-d" || a == "--decode" || a == "-di" || a == "-id":
			decode = true
		case a == "-i" || a == "--ignore-garbage":
		case a == "-w" && i+1 < len(args):
			i++
			wrap, _ = strconv.Atoi(args[i])
		case strings.HasPrefix(a, "-w"):
			wrap, _ = strconv.Atoi(a[2:])
		case strings.HasPrefix(a, "--wrap="):
			wrap, _ = strconv.Atoi(a[len("--wrap="):])
		default:
			operands = append(operands, a)
		}
	}
	if len(operands) > 1 {
		errorf(inv, "extra operand '%s'", operands[1])
		return 1
	}
	return forEachInput(inv, operands, func(_ string, r io.Reader) error {
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		if decode {
			clean := strings.Join(strings.Fields(string(data)), "")
			out, err := base64.StdEncoding.DecodeString(clean)
			if _, werr := inv.Stdout.Write(out); werr != nil {
				return werr
			}
			if err != nil {
				return errors.New("invalid input")
			}
			return nil
		}
		enc := base64.StdEncoding.EncodeToString(data)
		var b strings.Builder
		for wrap > 0 && len(enc) > wrap {
			b.WriteString(enc[:wrap])
			b.WriteByte('\n')
			enc = enc[wrap:]
		}
		b.WriteString(enc)
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		_, err = io.WriteString(inv.Stdout, b.String())
		return err
	})
}

func sleepCmd(ctx context.Context, inv *Invocation) int {
	if len(inv.Args) < 2 {
		usage(inv, "missing operand")
		return 1
	}
	var total time.Duration
	for _, a := range inv.Args[1:] {
		unit := time.Second
		num := a
		switch {
		case strings.HasSuffix(a, "s"):
			num = a[:len(a)-1]
		case strings.HasSuffix(a, "m"):
			unit, num = time.Minute, a[:len(a)-1]
		case strings.HasSuffix(a, "h"):
			unit, num = time.Hour, a[:len(a)-1]
		case strings.HasSuffix(a, "d"):
			unit, num = 24*time.Hour, a[:len(a)-1]
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || f < 0 {
			usage(inv, "invalid time interval ‘%s’", a)
			return 1
		}
		total += time.Duration(f * float64(unit))
	}
	t := time.NewTimer(total)
	defer t.Stop()
	select {
	case <-t.C:
		return 0
	case <-ctx.Done():
		return 130
	}
}

// testCmd implements test and [ for strings, integers and the file tests
// -e -f -d -s -r -w -x -L -h, which fileTest answers.
func testCmd(args []string, stderr io.Writer, prefix string, fileTest func(op, name string) bool) int {
	name := args[0]
	args = args[1:]
	if name == "[" {
		if len(args) == 0 || args[len(args)-1] != "]" {
			fmt.Fprintf(stderr, "%s[: missing `]'\n", prefix)
			return 2
		}
		args = args[:len(args)-1]
	}
	t := &tester{args: args, fileTest: fileTest}
	ok, err := t.or()
	if err == nil && t.pos < len(t.args) {
		err = fmt.Errorf("%s: unexpected operator", t.args[t.pos])
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s%s: %v\n", prefix, name, err)
		return 2
	}
	return boolStatus(ok)
}

// tester evaluates a test expression.
type tester struct {
	args     []string
	pos      int
	fileTest func(op, name string) bool
}

func (t *tester) or() (bool, error) {
	v, err := t.and()
	for err == nil && t.pos < len(t.args) && t.args[t.pos] == "-o" {
		t.pos++
		var r bool
		r, err = t.and()
		v = v || r
	}
	return v, err
}

func (t *tester) and() (bool, error) {
	v, err := t.not()
	for err == nil && t.pos < len(t.args) && t.args[t.pos] == "-a" {
		t.pos++
		var r bool
		r, err = t.not()
		v = v && r
	}
	return v, err
}

func (t *tester) not() (bool, error) {
	if t.pos < len(t.args) && t.args[t.pos] == "!" && len(t.args)-t.pos > 1 {
		t.pos++
		v, err := t.not()
		return !v, err
	}
	return t.primary()
}

func (t *tester) primary() (bool, error) {
	rest := t.args[t.pos:]
	if len(rest) == 0 {
		return false, nil
	}
	if len(rest) >= 3 {
		if v, ok, err := binaryTest(rest[0], rest[1], rest[2]); ok {
			t.pos += 3
			return v, err
		}
	}
	if len(rest) >= 2 && len(rest[0]) == 2 && rest[0][0] == '-' && rest[1] != "-a" && rest[1] != "-o" {
		op, operand := rest[0], rest[1]
		t.pos += 2
		switch op {
		case "-z":
			return operand == "", nil
		case "-n":
			return operand != "", nil
		case "-e", "-f", "-d", "-s", "-r", "-w", "-x", "-L", "-h":
			return t.fileTest(op, operand), nil
		}
		return false, fmt.Errorf("%s: unary operator expected", op)
	}
	t.pos++
	return rest[0] != "", nil
}

func binaryTest(a, op, b string) (v, ok bool, err error) {
	switch op {
	case "=", "==":
		return a == b, true, nil
	case "!=":
		return a != b, true, nil
	case "<":
		return a < b, true, nil
	case ">":
		return a > b, true, nil
	case "-eq", "-ne", "-lt", "-le", "-gt", "-ge":
		x, err := strconv.Atoi(strings.TrimSpace(a))
		if err != nil {
			return false, true, fmt.Errorf("%s: integer expression expected", a)
		}
		y, err := strconv.Atoi(strings.TrimSpace(b))
		if err != nil {
			return false, true, fmt.Errorf("%s: integer expression expected", b)
		}
		switch op {
		case "-eq":
			return x == y, true, nil
		case "-ne":
			return x != y, true, nil
		case "-lt":
			return x < y, true, nil
		case "-le":
			return x <= y, true, nil
		case "-gt":
			return x > y, true, nil
		}
		return x >= y, true, nil
	}
	return false, false, nil
}

// fileTest answers test's file operators against the node's tree.
func (sh *shell) fileTest(op, name string) bool {
	if name == "" {
		return false
	}
	r := rel(absPath(sh.dir, name))
	if op == "-L" || op == "-h" {
		fi, err := sh.srv.root.Lstat(r)
		return err == nil && fi.Mode()&fs.ModeSymlink != 0
	}
	fi, err := sh.srv.root.Stat(r)
	if err != nil {
		return false
	}
	switch op {
	case "-f":
		return fi.Mode().IsRegular()
	case "-d":
		return fi.IsDir()
	case "-s":
		return fi.Size() > 0
	case "-x":
		return fi.IsDir() || fi.Mode()&0o111 != 0
	}
	return true
}
