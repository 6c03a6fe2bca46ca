package sshd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// shell runs command lines parsed by parse against the node: its Commands,
// the built-in utilities and its file tree. A shell is not safe for
// concurrent use; pipelines and substitutions run in copies (subshells).
type shell struct {
	srv         *Server
	nc          net.Conn
	env         map[string]string
	dir         string
	tty         *Terminal
	interactive bool // error prefix "-bash: " instead of "bash: line N: "
	login       bool // the top-level interactive shell: exit says "logout"
	status      int  // $?
	exited      bool // "exit" ran
}

// stdio is a command's standard streams.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// subshell returns a copy of sh whose changes do not affect sh.
func (sh *shell) subshell() *shell {
	c := *sh
	c.env = maps.Clone(sh.env)
	c.exited = false
	c.login = false
	return &c
}

// prompt is the appliance bash prompt, PS1='\u@\h [ \w ]\$ '.
func (sh *shell) prompt() string {
	host, _, _ := strings.Cut(sh.srv.cfg.Hostname, ".")
	if host == "" {
		host = "localhost"
	}
	dir := sh.dir
	if home := sh.env["HOME"]; home != "/" && (dir == home || strings.HasPrefix(dir, home+"/")) {
		dir = "~" + dir[len(home):]
	}
	sign := "$"
	if sh.srv.cfg.User == "root" {
		sign = "#"
	}
	return fmt.Sprintf("%s@%s [ %s ]%s ", sh.srv.cfg.User, host, dir, sign)
}

// runScript parses and runs src, as `bash -c src` would, and returns the
// exit status.
func (sh *shell) runScript(ctx context.Context, src string, std stdio) int {
	p := &parser{src: src, line: 1}
	for !sh.exited && ctx.Err() == nil {
		s, err := p.commandLine()
		if err != nil {
			sh.syntaxError(err, src, std)
			break
		}
		if s == nil {
			break
		}
		sh.runList(ctx, s, std)
	}
	return sh.status
}

// runLine runs one line typed at the interactive prompt.
func (sh *shell) runLine(ctx context.Context, line string, std stdio) {
	sh.runScript(ctx, line, std)
}

// runReader runs commands read from r one line at a time, as bash does when
// its standard input is not a terminal. Bytes are read one at a time so
// that commands see the rest of the input on their stdin.
func (sh *shell) runReader(ctx context.Context, r io.Reader, std stdio) int {
	var buf []byte
	var src strings.Builder
	one := make([]byte, 1)
	for !sh.exited && ctx.Err() == nil {
		n, err := r.Read(one)
		if n == 1 {
			buf = append(buf, one[0])
			if one[0] != '\n' {
				continue
			}
		}
		if n == 0 && err == nil {
			continue
		}
		src.Write(buf)
		buf = buf[:0]
		if err == nil && incomplete(src.String()) {
			continue
		}
		if strings.TrimSpace(src.String()) != "" {
			sh.srv.record(strings.TrimRight(src.String(), "\n"))
			sh.runScript(ctx, src.String(), std)
		}
		src.Reset()
		if err != nil {
			break
		}
	}
	return sh.status
}

func (sh *shell) syntaxError(err error, src string, std stdio) {
	var se *syntaxError
	if !errors.As(err, &se) {
		fmt.Fprintf(std.err, "%s%v\n", sh.errPrefix(1), err)
		sh.status = 2
		return
	}
	if sh.interactive {
		fmt.Fprintf(std.err, "-bash: %s\n", se.msg)
	} else {
		fmt.Fprintf(std.err, "bash: -c: line %d: %s\n", se.line, se.msg)
		if strings.HasPrefix(se.msg, "syntax error near") {
			lines := strings.Split(src, "\n")
			if se.line-1 < len(lines) {
				fmt.Fprintf(std.err, "bash: -c: line %d: `%s'\n", se.line, lines[se.line-1])
			}
		}
	}
	sh.status = 2
}

// errPrefix is how bash prefixes its own messages.
func (sh *shell) errPrefix(line int) string {
	if sh.interactive {
		return "-bash: "
	}
	return fmt.Sprintf("bash: line %d: ", line)
}

func (sh *shell) runList(ctx context.Context, s *script, std stdio) {
	for _, ao := range s.items {
		if sh.exited || ctx.Err() != nil {
			return
		}
		sh.runAndOr(ctx, ao, std)
	}
}

func (sh *shell) runAndOr(ctx context.Context, ao *andOr, std stdio) {
	sh.runPipeline(ctx, ao.pipes[0], std)
	for i, op := range ao.ops {
		if sh.exited || ctx.Err() != nil {
			return
		}
		if (op == "&&") != (sh.status == 0) {
			continue
		}
		sh.runPipeline(ctx, ao.pipes[i+1], std)
	}
}

// errBrokenPipe is what a writer into a pipe gets once the reader is done.
var errBrokenPipe = errors.New("broken pipe")

func (sh *shell) runPipeline(ctx context.Context, pl *pipeline, std stdio) {
	if len(pl.cmds) == 1 {
		sh.status = sh.runCommand(ctx, pl.cmds[0], std)
	} else {
		// Every element runs concurrently in a subshell, joined by io.Pipe.
		n := len(pl.cmds)
		stderr := &lockedWriter{w: std.err}
		status := make([]int, n)
		var wg sync.WaitGroup
		in, inPipe := std.in, (*io.PipeReader)(nil)
		for i, c := range pl.cmds {
			out := std.out
			var pr *io.PipeReader
			var pw *io.PipeWriter
			if i < n-1 {
				pr, pw = io.Pipe()
				out = pw
			}
			sub := sh.subshell()
			cin, cinPipe := in, inPipe
			wg.Go(func() {
				status[i] = sub.runCommand(ctx, c, stdio{in: cin, out: out, err: stderr})
				if pw != nil {
					pw.Close() // the next element sees EOF
				}
				if cinPipe != nil {
					cinPipe.CloseWithError(errBrokenPipe) // the previous one stops writing
				}
			})
			if pr != nil {
				in, inPipe = pr, pr
			}
		}
		wg.Wait()
		sh.status = status[n-1]
	}
	if pl.bang {
		sh.status = boolStatus(sh.status != 0)
	}
}

func boolStatus(ok bool) int {
	if ok {
		return 0
	}
	return 1
}

// lockedWriter serialises writes from the elements of a pipeline.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (sh *shell) runCommand(ctx context.Context, c *command, std stdio) int {
	if c.kind == simpleCmd {
		return sh.runSimple(ctx, c, std)
	}
	std, closeAll, err := sh.redirect(ctx, c, std)
	defer closeAll()
	if err != nil {
		return 1
	}
	switch c.kind {
	case forCmd:
		var items []string
		if c.hasIn {
			for _, w := range c.words {
				f, err := sh.expand(ctx, w, std, true)
				if err != nil {
					return sh.expandError(c, err, std)
				}
				items = append(items, f...)
			}
		}
		sh.status = 0
		for _, it := range items {
			if sh.exited || ctx.Err() != nil {
				break
			}
			sh.env[c.name] = it
			sh.runList(ctx, c.bodies[0], std)
		}
	case ifCmd:
		for i, cond := range c.conds {
			sh.runList(ctx, cond, std)
			if sh.exited {
				return sh.status
			}
			if sh.status == 0 {
				sh.runList(ctx, c.bodies[i], std)
				return sh.status
			}
		}
		sh.status = 0
		if c.els != nil {
			sh.runList(ctx, c.els, std)
		}
	case whileCmd, untilCmd:
		last := 0
		for !sh.exited && ctx.Err() == nil {
			sh.runList(ctx, c.conds[0], std)
			if (sh.status == 0) != (c.kind == whileCmd) || sh.exited {
				break
			}
			sh.runList(ctx, c.bodies[0], std)
			last = sh.status
		}
		if !sh.exited {
			sh.status = last
		}
	case groupCmd:
		sh.runList(ctx, c.bodies[0], std)
	case subshellCmd:
		sub := sh.subshell()
		sub.runList(ctx, c.bodies[0], std)
		sh.status = sub.status
	}
	return sh.status
}

func (sh *shell) runSimple(ctx context.Context, c *command, std stdio) int {
	var args []string
	for _, w := range c.words {
		f, err := sh.expand(ctx, w, std, true)
		if err != nil {
			return sh.expandError(c, err, std)
		}
		args = append(args, f...)
	}
	// $? inside the words is the status before them; substitutions update it.
	subStatus := sh.status
	vars := make(map[string]string, len(c.assigns))
	for _, a := range c.assigns {
		f, err := sh.expand(ctx, a.value, std, false)
		if err != nil {
			return sh.expandError(c, err, std)
		}
		vars[a.name] = strings.Join(f, "")
	}
	if len(c.assigns) > 0 {
		subStatus = sh.status
	}
	std, closeAll, err := sh.redirect(ctx, c, std)
	defer closeAll()
	if err != nil {
		return 1
	}
	if len(args) == 0 {
		maps.Copy(sh.env, vars)
		if len(c.assigns) > 0 && len(c.words) == 0 {
			return subStatus
		}
		return 0
	}
	if special, ok := specialBuiltins[args[0]]; ok {
		return special(sh, c, args, std)
	}
	name := path.Base(args[0])
	if err := sh.srv.before(sh.nc, OpCommandPrefix+name); err != nil {
		fmt.Fprintf(std.err, "%s%s: %v\n", sh.errPrefix(c.line), args[0], err)
		return 1
	}
	cmd, status := sh.lookup(c, args[0], std)
	if cmd == nil {
		return status
	}
	env := maps.Clone(sh.env)
	maps.Copy(env, vars)
	dir := sh.dir
	inv := &Invocation{
		Args:   args,
		Stdin:  std.in,
		Stdout: std.out,
		Stderr: std.err,
		Env:    env,
		Dir:    dir,
		Path:   func(p string) string { return sh.srv.hostPath(dir, p) },
		FS:     sh.srv.root,
		TTY:    sh.tty,
	}
	return cmd(ctx, inv)
}

func (sh *shell) expandError(c *command, err error, std stdio) int {
	fmt.Fprintf(std.err, "%s%v\n", sh.errPrefix(c.line), err)
	return 1
}

// binDirs are the directories whose built-in utilities can be named by
// absolute path, such as /usr/bin/grep.
var binDirs = map[string]bool{"/bin": true, "/usr/bin": true, "/sbin": true, "/usr/sbin": true}

// lookup finds the command argv[0] names. When there is none it reports the
// error as bash does and returns its status.
func (sh *shell) lookup(c *command, arg0 string, std stdio) (Command, int) {
	if !strings.Contains(arg0, "/") {
		if cmd, ok := sh.srv.cfg.Commands[arg0]; ok {
			return cmd, 0
		}
		if cmd, ok := builtins[arg0]; ok {
			return cmd, 0
		}
		fmt.Fprintf(std.err, "%s%s: command not found\n", sh.errPrefix(c.line), arg0)
		return nil, 127
	}
	abs := absPath(sh.dir, arg0)
	if cmd, ok := sh.srv.cfg.Commands[abs]; ok {
		return cmd, 0
	}
	if cmd, ok := builtins[path.Base(abs)]; ok && binDirs[path.Dir(abs)] {
		return cmd, 0
	}
	fi, err := sh.srv.root.Stat(rel(abs))
	switch {
	case err != nil:
		fmt.Fprintf(std.err, "%s%s: %s\n", sh.errPrefix(c.line), arg0, errText(err))
		return nil, 127
	case fi.IsDir():
		fmt.Fprintf(std.err, "%s%s: Is a directory\n", sh.errPrefix(c.line), arg0)
		return nil, 126
	default:
		// A file exists but no Command implements it.
		fmt.Fprintf(std.err, "%s%s: Permission denied\n", sh.errPrefix(c.line), arg0)
		return nil, 126
	}
}

// redirect applies c's redirections to std. The returned function closes
// the files it opened.
func (sh *shell) redirect(ctx context.Context, c *command, std stdio) (stdio, func(), error) {
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	fds := [3]any{std.in, std.out, std.err}
	for _, r := range c.redirs {
		if r.fd > 2 {
			err := fmt.Errorf("%d: bad file descriptor", r.fd)
			fmt.Fprintf(std.err, "%s%v\n", sh.errPrefix(c.line), err)
			return std, closeAll, err
		}
		if r.op == ">&" {
			if r.dup > 2 {
				err := fmt.Errorf("%d: bad file descriptor", r.dup)
				fmt.Fprintf(std.err, "%s%v\n", sh.errPrefix(c.line), err)
				return std, closeAll, err
			}
			fds[r.fd] = fds[r.dup]
			continue
		}
		f, err := sh.expand(ctx, r.target, std, true)
		if err == nil && len(f) != 1 {
			err = fmt.Errorf("%s: ambiguous redirect", wordText(r.target))
		}
		if err != nil {
			fmt.Fprintf(std.err, "%s%v\n", sh.errPrefix(c.line), err)
			return std, closeAll, err
		}
		name := f[0]
		var target any
		switch name {
		case "/dev/null":
			if r.op == "<" {
				target = strings.NewReader("")
			} else {
				target = io.Discard
			}
		case "/dev/stdin", "/dev/fd/0":
			target = fds[0]
		case "/dev/stdout", "/dev/fd/1":
			target = fds[1]
		case "/dev/stderr", "/dev/fd/2":
			target = fds[2]
		default:
			flag := os.O_RDONLY
			switch r.op {
			case ">":
				flag = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
			case ">>":
				flag = os.O_WRONLY | os.O_CREATE | os.O_APPEND
			}
			file, err := sh.srv.root.OpenFile(rel(absPath(sh.dir, name)), flag, 0o644)
			if err != nil {
				fmt.Fprintf(std.err, "%s%s: %s\n", sh.errPrefix(c.line), name, errText(err))
				return std, closeAll, err
			}
			files = append(files, file)
			target = file
		}
		if r.fd == -1 {
			fds[1], fds[2] = target, target
		} else {
			fds[r.fd] = target
		}
	}
	in, _ := fds[0].(io.Reader)
	if in == nil {
		in = strings.NewReader("")
	}
	out, _ := fds[1].(io.Writer)
	if out == nil {
		out = io.Discard
	}
	errw, _ := fds[2].(io.Writer)
	if errw == nil {
		errw = io.Discard
	}
	return stdio{in: in, out: out, err: errw}, closeAll, nil
}

// wordText renders a word roughly as written, for messages.
func wordText(w word) string {
	var b strings.Builder
	for _, p := range w.parts {
		switch p.kind {
		case litPart:
			b.WriteString(p.text)
		case paramPart, lengthPart:
			b.WriteString("$" + p.text)
		case cmdsubPart:
			b.WriteString("$(...)")
		case tildePart:
			b.WriteString("~")
		}
	}
	return b.String()
}

// fieldBuf accumulates one field during expansion.
type fieldBuf struct {
	text strings.Builder
	pat  strings.Builder // glob pattern, quoted metacharacters escaped
	glob bool            // has an unquoted *, ? or [
	ok   bool            // exists even if empty (quoted "" or content)
}

func (f *fieldBuf) add(s string, quoted bool) {
	f.ok = true
	f.text.WriteString(s)
	for _, c := range []byte(s) {
		if strings.IndexByte(`*?[\`, c) >= 0 {
			if quoted || c == '\\' {
				f.pat.WriteByte('\\')
			} else {
				f.glob = true
			}
		}
		f.pat.WriteByte(c)
	}
}

// expand expands a word into fields. With split, unquoted expansion results
// are split on blanks and unquoted glob patterns are matched against the
// node's files; without it the word becomes exactly one field.
func (sh *shell) expand(ctx context.Context, w word, std stdio, split bool) ([]string, error) {
	var out []string
	cur := &fieldBuf{}
	push := func() {
		if !cur.ok {
			return
		}
		if split && cur.glob {
			if m := sh.glob(cur.pat.String()); len(m) > 0 {
				out = append(out, m...)
				cur = &fieldBuf{}
				return
			}
		}
		out = append(out, cur.text.String())
		cur = &fieldBuf{}
	}
	for _, p := range w.parts {
		var val string
		switch p.kind {
		case litPart:
			cur.add(p.text, p.quoted)
			if p.text == "" && p.quoted {
				cur.ok = true
			}
			continue
		case tildePart:
			cur.add(sh.env["HOME"], true)
			continue
		case paramPart:
			v, set := sh.param(p.text)
			if p.def != nil && (!set || (p.defOp == ":-" && v == "")) {
				f, err := sh.expand(ctx, *p.def, std, false)
				if err != nil {
					return nil, err
				}
				v = strings.Join(f, "")
			}
			val = v
		case lengthPart:
			v, _ := sh.param(p.text)
			val = strconv.Itoa(len([]rune(v)))
		case cmdsubPart:
			var buf bytes.Buffer
			sub := sh.subshell()
			sub.runList(ctx, p.sub, stdio{in: std.in, out: &buf, err: std.err})
			sh.status = sub.status
			val = strings.TrimRight(buf.String(), "\n")
		}
		if p.quoted || !split {
			cur.add(val, true)
			cur.ok = true
			continue
		}
		// Field splitting on blanks (the default IFS).
		for i := 0; i < len(val); i++ {
			c := val[i]
			if c == ' ' || c == '\t' || c == '\n' {
				push()
				continue
			}
			cur.add(val[i:i+1], false)
		}
	}
	push()
	if !split {
		return []string{strings.Join(out, "")}, nil
	}
	return out, nil
}

// param returns the value of a variable or special parameter and whether
// it is set.
func (sh *shell) param(name string) (string, bool) {
	switch name {
	case "?":
		return strconv.Itoa(sh.status), true
	case "$":
		return "4242", true
	case "#":
		return "0", true
	case "0":
		if sh.interactive {
			return "-bash", true
		}
		return "bash", true
	case "@", "*", "-", "!":
		return "", false
	}
	v, ok := sh.env[name]
	return v, ok
}

// glob matches pattern (with \-escaped literal metacharacters) against the
// node's files, as bash pathname expansion does; no match gives nil.
func (sh *shell) glob(pattern string) []string {
	abs := strings.HasPrefix(pattern, "/")
	var comps []string
	for c := range strings.SplitSeq(pattern, "/") {
		if c != "" {
			comps = append(comps, c)
		}
	}
	matches := []string{""}
	for _, comp := range comps {
		var next []string
		literal := !hasGlobMeta(comp)
		for _, m := range matches {
			if literal {
				next = append(next, path.Join(m, unescapeGlob(comp)))
				continue
			}
			dir := m
			if dir == "" {
				dir = "."
			}
			if abs {
				dir = "/" + dir
			}
			f, err := sh.srv.root.Open(rel(absPath(sh.dir, dir)))
			if err != nil {
				continue
			}
			names, _ := f.Readdirnames(-1)
			f.Close()
			slices.Sort(names)
			for _, n := range names {
				if strings.HasPrefix(n, ".") && !strings.HasPrefix(comp, ".") {
					continue
				}
				if ok, _ := path.Match(comp, n); ok {
					next = append(next, path.Join(m, n))
				}
			}
		}
		matches = next
	}
	var out []string
	for _, m := range matches {
		if abs {
			m = "/" + m
		}
		if _, err := sh.srv.root.Lstat(rel(absPath(sh.dir, m))); err == nil {
			out = append(out, m)
		}
	}
	return out
}

func hasGlobMeta(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '*', '?', '[':
			return true
		}
	}
	return false
}

func unescapeGlob(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// errText renders a file error the way coreutils and bash print it, such as
// "No such file or directory".
func errText(err error) string {
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		s := errno.Error()
		return strings.ToUpper(s[:1]) + s[1:]
	case errors.Is(err, fs.ErrNotExist):
		return "No such file or directory"
	case errors.Is(err, fs.ErrExist):
		return "File exists"
	case errors.Is(err, fs.ErrPermission), errEscape(err):
		return "Permission denied"
	}
	return err.Error()
}

// specialBuiltins change the shell itself, so they run in it rather than as
// a Command.
var specialBuiltins = map[string]func(sh *shell, c *command, args []string, std stdio) int{
	"cd":     (*shell).cd,
	"export": (*shell).export,
	"unset":  (*shell).unset,
	"exit":   (*shell).exit,
}

func (sh *shell) cd(c *command, args []string, std stdio) int {
	target := sh.env["HOME"]
	if len(args) > 1 {
		target = args[1]
	}
	if target == "-" {
		target = sh.env["OLDPWD"]
		fmt.Fprintln(std.out, target)
	}
	abs := absPath(sh.dir, target)
	fi, err := sh.srv.root.Stat(rel(abs))
	if err == nil && !fi.IsDir() {
		err = syscall.ENOTDIR
	}
	if err != nil {
		fmt.Fprintf(std.err, "%scd: %s: %s\n", sh.errPrefix(c.line), target, errText(err))
		return 1
	}
	sh.env["OLDPWD"] = sh.dir
	sh.dir = abs
	sh.env["PWD"] = abs
	return 0
}

func (sh *shell) export(c *command, args []string, std stdio) int {
	if len(args) == 1 || args[1] == "-p" {
		for _, k := range slices.Sorted(maps.Keys(sh.env)) {
			fmt.Fprintf(std.out, "declare -x %s=%q\n", k, sh.env[k])
		}
		return 0
	}
	status := 0
	for _, a := range args[1:] {
		name, value, hasValue := strings.Cut(a, "=")
		if !isName(name) {
			fmt.Fprintf(std.err, "%sexport: `%s': not a valid identifier\n", sh.errPrefix(c.line), a)
			status = 1
			continue
		}
		if hasValue {
			sh.env[name] = value
		} else if _, ok := sh.env[name]; !ok {
			sh.env[name] = ""
		}
	}
	return status
}

func (sh *shell) unset(c *command, args []string, std stdio) int {
	for _, a := range args[1:] {
		delete(sh.env, a)
	}
	return 0
}

func (sh *shell) exit(c *command, args []string, std stdio) int {
	status := sh.status
	if len(args) > 1 {
		n, err := strconv.Atoi(args[1])
		if err != nil {
			fmt.Fprintf(std.err, "%sexit: %s: numeric argument required\n", sh.errPrefix(c.line), args[1])
			n = 2
		}
		status = n & 0xff
	}
	if sh.login {
		fmt.Fprintln(std.err, "logout")
	}
	sh.exited = true
	sh.status = status
	return status
}
