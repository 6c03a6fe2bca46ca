package sshd

import (
	"fmt"
	"strings"
)

// This file parses the bash subset the appliance shell understands:
//
//	script   := andor ((';' | '\n') andor)*
//	andor    := pipeline (('&&' | '||') pipeline)*
//	pipeline := ['!'] command ('|' command)*
//	command  := simple | for | if | while | until | '{' script '}' | '(' script ')'
//	simple   := (NAME=word | word | redirection)+
//
// Words keep their quoting so that expansion can tell quoted text (no field
// splitting, no globbing) from unquoted text. Supported expansions are $VAR,
// ${VAR}, ${VAR:-word}, ${VAR-word}, ${#VAR}, $?, $$, $(...), `...` and a
// leading ~. Redirections are [n]>, [n]>>, [n]<, [n]>&m, &> and &>>.

// script is a list of and-or lists run one after another.
type script struct {
	items []*andOr
}

// andOr is pipelines joined by && and ||.
type andOr struct {
	pipes []*pipeline
	ops   []string // ops[i] joins pipes[i] and pipes[i+1]
}

// pipeline is commands joined by |, optionally negated with !.
type pipeline struct {
	bang bool
	cmds []*command
}

type cmdKind int

const (
	simpleCmd cmdKind = iota
	forCmd
	ifCmd
	whileCmd
	untilCmd
	groupCmd
	subshellCmd
)

// command is one simple or compound command.
type command struct {
	kind    cmdKind
	line    int
	assigns []assign
	words   []word
	redirs  []redir

	name   string    // for: the loop variable
	hasIn  bool      // for: whether "in words" was given
	conds  []*script // if: conditions of if/elif; while/until: the condition
	bodies []*script // if: bodies matching conds; for/while/until/group/subshell: bodies[0]
	els    *script   // if: else body
}

// assign is a NAME=value word.
type assign struct {
	name  string
	value word
}

// redir is one redirection.
type redir struct {
	fd     int    // the redirected descriptor; -1 for &> (both 1 and 2)
	op     string // "<", ">", ">>" or ">&"
	target word   // file name, for <, > and >>
	dup    int    // source descriptor for >&
}

type partKind int

const (
	litPart partKind = iota
	paramPart
	lengthPart
	cmdsubPart
	tildePart
)

// part is a piece of a word.
type part struct {
	kind   partKind
	text   string  // literal text or parameter name
	quoted bool    // inside quotes, or escaped
	sub    *script // command substitution
	defOp  string  // ":-" or "-" for ${VAR:-word} forms
	def    *word   // the default word
}

// word is a shell word as written.
type word struct {
	parts []part
}

// syntaxError is a parse error, worded as bash words it.
type syntaxError struct {
	line int
	msg  string
	eof  bool // the input ended inside a construct; more lines would help
}

func (e *syntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// parse parses a whole script.
func parse(src string) (*script, error) {
	p := &parser{src: src, line: 1}
	s, err := p.list()
	if err != nil {
		return nil, err
	}
	if !p.eof() {
		return nil, p.unexpected()
	}
	return s, nil
}

// commandLine parses the next line of a script: and-or lists separated by
// ';' up to a newline (compound commands may span lines). It returns nil at
// the end of input. Bash parses and runs a script this way, a line at a
// time, so a syntax error on line 3 comes after lines 1 and 2 have run.
func (p *parser) commandLine() (*script, error) {
	p.skipNewlines()
	if p.eof() {
		return nil, nil
	}
	s := &script{}
	for {
		ao, err := p.andOr()
		if err != nil {
			return nil, err
		}
		s.items = append(s.items, ao)
		p.skipBlanks()
		sep := false
		if p.peekByte() == ';' && !p.hasPrefix(";;") {
			p.pos++
			p.skipBlanks()
			sep = true
		}
		switch {
		case p.eof():
			return s, nil
		case p.peekByte() == '\n':
			p.pos++
			p.line++
			return s, nil
		case !sep, p.peekByte() == ';', p.peekByte() == ')', isTerminator(p.peekKeyword()):
			return nil, p.unexpected()
		}
	}
}

// incomplete reports whether src ends inside a quote or compound command,
// so that an interactive shell should read another line.
func incomplete(src string) bool {
	_, err := parse(src)
	se, ok := err.(*syntaxError)
	return ok && se.eof
}

type parser struct {
	src   string
	pos   int
	line  int
	depth int // nesting of $( ) and ( ), where ')' ends a list
}

func (p *parser) eof() bool { return p.pos >= len(p.src) }

func (p *parser) peekByte() byte {
	if p.eof() {
		return 0
	}
	return p.src[p.pos]
}

func (p *parser) hasPrefix(s string) bool { return strings.HasPrefix(p.src[p.pos:], s) }

func isMeta(c byte) bool {
	switch c {
	case ' ', '\t', '\n', ';', '&', '|', '<', '>', '(', ')':
		return true
	}
	return false
}

// skipBlanks skips spaces, tabs, line continuations and comments, but not
// newlines.
func (p *parser) skipBlanks() {
	for !p.eof() {
		switch c := p.src[p.pos]; {
		case c == ' ' || c == '\t' || c == '\r':
			p.pos++
		case c == '\\' && p.pos+1 < len(p.src) && p.src[p.pos+1] == '\n':
			p.pos += 2
			p.line++
		case c == '#':
			for !p.eof() && p.src[p.pos] != '\n' {
				p.pos++
			}
		default:
			return
		}
	}
}

// skipNewlines skips blanks and newlines.
func (p *parser) skipNewlines() {
	for {
		p.skipBlanks()
		if p.peekByte() != '\n' {
			return
		}
		p.pos++
		p.line++
	}
}

func (p *parser) errorf(format string, args ...any) *syntaxError {
	return &syntaxError{line: p.line, msg: fmt.Sprintf(format, args...)}
}

func (p *parser) eofError() *syntaxError {
	return &syntaxError{line: p.lineAfterEnd(), msg: "syntax error: unexpected end of file", eof: true}
}

// lineAfterEnd is the line number bash gives errors at the end of input:
// one past the last line, counting an unterminated last line.
func (p *parser) lineAfterEnd() int {
	lines := strings.Count(p.src, "\n")
	if !strings.HasSuffix(p.src, "\n") {
		lines++
	}
	return lines + 1
}

// unexpected reports the token at the current position.
func (p *parser) unexpected() *syntaxError {
	if p.eof() {
		return p.eofError()
	}
	return p.errorf("syntax error near unexpected token `%s'", p.token())
}

// token returns the operator or word at the current position, for messages.
func (p *parser) token() string {
	for _, op := range []string{"&&", "||", ";;", "&>", ">>", ">&", "<<", "|", "&", ";", "<", ">", "(", ")"} {
		if p.hasPrefix(op) {
			return op
		}
	}
	if p.peekByte() == '\n' {
		return "newline"
	}
	end := p.pos
	for end < len(p.src) && !isMeta(p.src[end]) {
		end++
	}
	return p.src[p.pos:end]
}

// peekKeyword returns the unquoted word at the current position without
// consuming it, or "".
func (p *parser) peekKeyword() string {
	end := p.pos
	for end < len(p.src) && !isMeta(p.src[end]) {
		switch p.src[end] {
		case '\'', '"', '\\', '$', '`':
			return ""
		}
		end++
	}
	return p.src[p.pos:end]
}

func isTerminator(w string) bool {
	switch w {
	case "do", "done", "then", "else", "elif", "fi", "}":
		return true
	}
	return false
}

// list parses and-or lists until the end of input, a ')' inside a nested
// construct, or a reserved word that closes a compound command.
func (p *parser) list() (*script, error) {
	s := &script{}
	for {
		p.skipNewlines()
		if p.eof() || (p.depth > 0 && p.peekByte() == ')') || isTerminator(p.peekKeyword()) {
			return s, nil
		}
		ao, err := p.andOr()
		if err != nil {
			return nil, err
		}
		s.items = append(s.items, ao)
		p.skipBlanks()
		switch {
		case p.hasPrefix(";;"):
			return nil, p.unexpected()
		case p.peekByte() == ';':
			p.pos++
		case p.peekByte() == '\n':
			p.pos++
			p.line++
		case p.eof(), p.depth > 0 && p.peekByte() == ')', isTerminator(p.peekKeyword()):
			return s, nil
		default:
			return nil, p.unexpected()
		}
	}
}

func (p *parser) andOr() (*andOr, error) {
	ao := &andOr{}
	for {
		pl, err := p.pipeline()
		if err != nil {
			return nil, err
		}
		ao.pipes = append(ao.pipes, pl)
		p.skipBlanks()
		if !p.hasPrefix("&&") && !p.hasPrefix("||") {
			return ao, nil
		}
		ao.ops = append(ao.ops, p.src[p.pos:p.pos+2])
		p.pos += 2
		p.skipNewlines()
	}
}

func (p *parser) pipeline() (*pipeline, error) {
	pl := &pipeline{}
	p.skipBlanks()
	if p.peekKeyword() == "!" {
		pl.bang = true
		p.pos++
	}
	for {
		c, err := p.command()
		if err != nil {
			return nil, err
		}
		pl.cmds = append(pl.cmds, c)
		p.skipBlanks()
		if p.peekByte() != '|' || p.hasPrefix("||") {
			return pl, nil
		}
		p.pos++
		p.skipNewlines()
	}
}

func (p *parser) command() (*command, error) {
	p.skipBlanks()
	var c *command
	var err error
	switch kw := p.peekKeyword(); {
	case kw == "for":
		c, err = p.forCommand()
	case kw == "if":
		c, err = p.ifCommand()
	case kw == "while" || kw == "until":
		c, err = p.whileCommand(kw)
	case kw == "{":
		c, err = p.groupCommand()
	case p.peekByte() == '(':
		c, err = p.subshellCommand()
	case isTerminator(kw):
		return nil, p.unexpected()
	default:
		return p.simpleCommand()
	}
	if err != nil {
		return nil, err
	}
	// Redirections after a compound command apply to all of it.
	for {
		p.skipBlanks()
		if !p.atRedirection() {
			return c, nil
		}
		r, err := p.redirection()
		if err != nil {
			return nil, err
		}
		c.redirs = append(c.redirs, r)
	}
}

// keyword consumes the reserved word kw or fails.
func (p *parser) keyword(kw string) error {
	p.skipNewlines()
	if p.peekKeyword() != kw {
		return p.unexpected()
	}
	p.pos += len(kw)
	return nil
}

func (p *parser) forCommand() (*command, error) {
	c := &command{kind: forCmd, line: p.line}
	p.pos += len("for")
	p.skipBlanks()
	name := p.peekKeyword()
	if !isName(name) {
		if p.eof() {
			return nil, p.eofError()
		}
		return nil, p.errorf("`%s': not a valid identifier", p.token())
	}
	c.name = name
	p.pos += len(name)
	p.skipNewlines()
	if p.peekKeyword() == "in" {
		c.hasIn = true
		p.pos += len("in")
		for {
			p.skipBlanks()
			if p.eof() || isMeta(p.peekByte()) {
				break
			}
			w, err := p.word()
			if err != nil {
				return nil, err
			}
			c.words = append(c.words, w)
		}
	}
	p.skipBlanks()
	if p.peekByte() == ';' {
		p.pos++
	}
	if err := p.keyword("do"); err != nil {
		return nil, err
	}
	body, err := p.list()
	if err != nil {
		return nil, err
	}
	c.bodies = []*script{body}
	return c, p.keyword("done")
}

func (p *parser) ifCommand() (*command, error) {
	c := &command{kind: ifCmd, line: p.line}
	p.pos += len("if")
	for {
		cond, err := p.list()
		if err != nil {
			return nil, err
		}
		if err := p.keyword("then"); err != nil {
			return nil, err
		}
		body, err := p.list()
		if err != nil {
			return nil, err
		}
		c.conds = append(c.conds, cond)
		c.bodies = append(c.bodies, body)
		switch p.peekKeyword() {
		case "elif":
			p.pos += len("elif")
			continue
		case "else":
			p.pos += len("else")
			if c.els, err = p.list(); err != nil {
				return nil, err
			}
		}
		return c, p.keyword("fi")
	}
}

func (p *parser) whileCommand(kw string) (*command, error) {
	c := &command{kind: whileCmd, line: p.line}
	if kw == "until" {
		c.kind = untilCmd
	}
	p.pos += len(kw)
	cond, err := p.list()
	if err != nil {
		return nil, err
	}
	if err := p.keyword("do"); err != nil {
		return nil, err
	}
	body, err := p.list()
	if err != nil {
		return nil, err
	}
	c.conds = []*script{cond}
	c.bodies = []*script{body}
	return c, p.keyword("done")
}

func (p *parser) groupCommand() (*command, error) {
	c := &command{kind: groupCmd, line: p.line}
	p.pos++
	body, err := p.list()
	if err != nil {
		return nil, err
	}
	c.bodies = []*script{body}
	return c, p.keyword("}")
}

func (p *parser) subshellCommand() (*command, error) {
	c := &command{kind: subshellCmd, line: p.line}
	p.pos++
	p.depth++
	body, err := p.list()
	p.depth--
	if err != nil {
		return nil, err
	}
	if p.peekByte() != ')' {
		return nil, p.unexpected()
	}
	p.pos++
	c.bodies = []*script{body}
	return c, nil
}

func (p *parser) simpleCommand() (*command, error) {
	c := &command{kind: simpleCmd, line: p.line}
	for {
		p.skipBlanks()
		switch {
		case p.atRedirection():
			r, err := p.redirection()
			if err != nil {
				return nil, err
			}
			c.redirs = append(c.redirs, r)
			continue
		case p.eof() || isMeta(p.peekByte()):
			if len(c.words) == 0 && len(c.assigns) == 0 && len(c.redirs) == 0 {
				return nil, p.unexpected()
			}
			if p.peekByte() == '(' {
				return nil, p.unexpected()
			}
			return c, nil
		}
		w, err := p.word()
		if err != nil {
			return nil, err
		}
		if len(c.words) == 0 {
			if a, ok := assignment(w); ok {
				c.assigns = append(c.assigns, a)
				continue
			}
		}
		c.words = append(c.words, w)
	}
}

// assignment splits a NAME=value word.
func assignment(w word) (assign, bool) {
	if len(w.parts) == 0 || w.parts[0].kind != litPart || w.parts[0].quoted {
		return assign{}, false
	}
	name, rest, ok := strings.Cut(w.parts[0].text, "=")
	if !ok || !isName(name) {
		return assign{}, false
	}
	value := word{}
	if rest != "" {
		value.parts = append(value.parts, part{kind: litPart, text: rest})
	}
	value.parts = append(value.parts, w.parts[1:]...)
	return assign{name: name, value: value}, true
}

func isName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range []byte(s) {
		if c != '_' && !isAlpha(c) && (i == 0 || !isDigit(c)) {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// atRedirection reports whether a redirection operator starts here.
func (p *parser) atRedirection() bool {
	i := p.pos
	if i < len(p.src) && isDigit(p.src[i]) {
		i++
	}
	if i >= len(p.src) {
		return false
	}
	return p.src[i] == '<' || p.src[i] == '>' || (i == p.pos && strings.HasPrefix(p.src[i:], "&>"))
}

func (p *parser) redirection() (redir, error) {
	r := redir{fd: 1}
	switch {
	case p.hasPrefix("&>>"):
		r.fd, r.op = -1, ">>"
		p.pos += 3
	case p.hasPrefix("&>"):
		r.fd, r.op = -1, ">"
		p.pos += 2
	default:
		if isDigit(p.peekByte()) {
			r.fd = int(p.peekByte() - '0')
			p.pos++
		} else if p.peekByte() == '<' {
			r.fd = 0
		}
		switch {
		case p.hasPrefix("<<"):
			return r, p.errorf("here-documents are not supported")
		case p.hasPrefix(">>"):
			r.op = ">>"
		case p.hasPrefix(">&"), p.hasPrefix("<&"):
			r.op = ">&"
		case p.hasPrefix(">|"):
			r.op = ">"
			p.pos++
		default:
			r.op = p.src[p.pos : p.pos+1]
		}
		p.pos += len(r.op)
	}
	p.skipBlanks()
	if r.op == ">&" {
		if isDigit(p.peekByte()) && (p.pos+1 >= len(p.src) || isMeta(p.src[p.pos+1])) {
			r.dup = int(p.peekByte() - '0')
			p.pos++
			return r, nil
		}
		// ">&file" is "&>file" in disguise.
		if r.fd != 1 {
			return r, p.unexpected()
		}
		r.fd, r.op = -1, ">"
	}
	if p.eof() || isMeta(p.peekByte()) {
		if p.eof() {
			return r, p.errorf("syntax error near unexpected token `newline'")
		}
		return r, p.unexpected()
	}
	w, err := p.word()
	r.target = w
	return r, err
}

// word parses one word up to the next unquoted metacharacter.
func (p *parser) word() (word, error) {
	var w word
	start := p.pos
	for !p.eof() {
		c := p.src[p.pos]
		switch {
		case isMeta(c):
			return w, nil
		case c == '\'':
			end := strings.IndexByte(p.src[p.pos+1:], '\'')
			if end < 0 {
				return w, &syntaxError{line: p.line, msg: "unexpected EOF while looking for matching `''", eof: true}
			}
			text := p.src[p.pos+1 : p.pos+1+end]
			p.line += strings.Count(text, "\n")
			w.add(part{kind: litPart, text: text, quoted: true})
			p.pos += end + 2
		case c == '"':
			p.pos++
			start := p.line
			if err := p.doubleQuoted(&w, '"'); err != nil {
				if se, ok := err.(*syntaxError); ok && se.eof {
					se.line = start // bash names the line the quote opened on
				}
				return w, err
			}
		case c == '\\':
			switch {
			case p.pos+1 >= len(p.src):
				w.add(part{kind: litPart, text: `\`})
				p.pos++
			case p.src[p.pos+1] == '\n':
				p.pos += 2
				p.line++
			default:
				w.add(part{kind: litPart, text: p.src[p.pos+1 : p.pos+2], quoted: true})
				p.pos += 2
			}
		case c == '$':
			if err := p.dollar(&w, false); err != nil {
				return w, err
			}
		case c == '`':
			if err := p.backquote(&w, false); err != nil {
				return w, err
			}
		case c == '~' && p.pos == start && (p.pos+1 >= len(p.src) || p.src[p.pos+1] == '/' || isMeta(p.src[p.pos+1])):
			w.parts = append(w.parts, part{kind: tildePart})
			p.pos++
		default:
			end := p.pos + 1
			for end < len(p.src) && !isMeta(p.src[end]) && strings.IndexByte("'\"\\$`", p.src[end]) < 0 {
				end++
			}
			w.add(part{kind: litPart, text: p.src[p.pos:end]})
			p.pos = end
		}
	}
	return w, nil
}

// add appends a part, merging adjacent literals with the same quoting.
func (w *word) add(pt part) {
	if n := len(w.parts); n > 0 && pt.kind == litPart {
		if last := &w.parts[n-1]; last.kind == litPart && last.quoted == pt.quoted {
			last.text += pt.text
			return
		}
	}
	w.parts = append(w.parts, pt)
}

// doubleQuoted parses the inside of "...", after the opening quote, up to
// end ('"'), or to the end of input when end is 0.
func (p *parser) doubleQuoted(w *word, end byte) error {
	empty := true
	for {
		if p.eof() {
			if end == 0 {
				break
			}
			return &syntaxError{line: p.line, msg: "unexpected EOF while looking for matching `\"'", eof: true}
		}
		c := p.src[p.pos]
		switch {
		case c == end:
			p.pos++
			if empty {
				w.add(part{kind: litPart, quoted: true})
			}
			return nil
		case c == '\\' && p.pos+1 < len(p.src) && strings.IndexByte("$`\"\\\n", p.src[p.pos+1]) >= 0:
			if p.src[p.pos+1] == '\n' {
				p.line++
			} else {
				w.add(part{kind: litPart, text: p.src[p.pos+1 : p.pos+2], quoted: true})
			}
			p.pos += 2
		case c == '$':
			if err := p.dollar(w, true); err != nil {
				return err
			}
		case c == '`':
			if err := p.backquote(w, true); err != nil {
				return err
			}
		default:
			j := p.pos + 1
			for j < len(p.src) && p.src[j] != end && strings.IndexByte("\\$`", p.src[j]) < 0 {
				j++
			}
			text := p.src[p.pos:j]
			p.line += strings.Count(text, "\n")
			w.add(part{kind: litPart, text: text, quoted: true})
			p.pos = j
		}
		empty = false
	}
	return nil
}

// dollar parses an expansion starting at '$'.
func (p *parser) dollar(w *word, quoted bool) error {
	rest := p.src[p.pos+1:]
	switch {
	case strings.HasPrefix(rest, "(("):
		return p.errorf("arithmetic expansion is not supported")
	case strings.HasPrefix(rest, "("):
		p.pos += 2
		p.depth++
		sub, err := p.list()
		p.depth--
		if err != nil {
			return err
		}
		if p.peekByte() != ')' {
			if p.eof() {
				return &syntaxError{line: p.lineAfterEnd(), msg: "unexpected EOF while looking for matching `)'", eof: true}
			}
			return p.unexpected()
		}
		p.pos++
		w.parts = append(w.parts, part{kind: cmdsubPart, sub: sub, quoted: quoted})
		return nil
	case strings.HasPrefix(rest, "{"):
		end := matchBrace(rest)
		if end < 0 {
			return &syntaxError{line: p.line, msg: "unexpected EOF while looking for matching `}'", eof: true}
		}
		expr := rest[1:end]
		p.pos += end + 2
		pt := part{kind: paramPart, quoted: quoted}
		if strings.HasPrefix(expr, "#") && len(expr) > 1 {
			pt.kind, expr = lengthPart, expr[1:]
		}
		name := expr
		if i := strings.IndexAny(expr, ":-"); i > 0 && pt.kind == paramPart {
			name = expr[:i]
			op, def := expr[i:], ""
			switch {
			case strings.HasPrefix(op, ":-"):
				pt.defOp, def = ":-", op[2:]
			case strings.HasPrefix(op, "-"):
				pt.defOp, def = "-", op[1:]
			default:
				return p.errorf("${%s}: bad substitution", expr)
			}
			dp := &parser{src: def, line: p.line}
			var dw word
			if err := dp.doubleQuoted(&dw, 0); err != nil {
				return err
			}
			for i := range dw.parts {
				dw.parts[i].quoted = dw.parts[i].quoted && quoted
			}
			pt.def = &dw
		}
		if !isName(name) && !isSpecialParam(name) {
			return p.errorf("${%s}: bad substitution", expr)
		}
		pt.text = name
		w.parts = append(w.parts, pt)
		return nil
	case rest != "" && isSpecialParam(rest[:1]):
		p.pos += 2
		w.parts = append(w.parts, part{kind: paramPart, text: rest[:1], quoted: quoted})
		return nil
	case rest != "" && (isAlpha(rest[0]) || rest[0] == '_'):
		n := 1
		for n < len(rest) && (isAlpha(rest[n]) || isDigit(rest[n]) || rest[n] == '_') {
			n++
		}
		p.pos += 1 + n
		w.parts = append(w.parts, part{kind: paramPart, text: rest[:n], quoted: quoted})
		return nil
	}
	w.add(part{kind: litPart, text: "$", quoted: quoted})
	p.pos++
	return nil
}

// matchBrace returns the index of the '}' closing the "{" at the start of
// s, skipping quoted text and nested ${...}, or -1.
func matchBrace(s string) int {
	braces := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			i++
		case quote == '\'':
			if c == '\'' {
				quote = 0
			}
		case c == '\'' && quote == 0:
			quote = c
		case c == '"':
			if quote == '"' {
				quote = 0
			} else if quote == 0 {
				quote = c
			}
		case c == '{' && (i == 0 || s[i-1] == '$'):
			braces++
		case c == '}' && (quote == 0 || braces > 1):
			braces--
			if braces == 0 {
				return i
			}
		}
	}
	return -1
}

func isSpecialParam(s string) bool {
	return len(s) == 1 && strings.Contains("?$#@*!-0123456789", s)
}

// backquote parses `...` command substitution.
func (p *parser) backquote(w *word, quoted bool) error {
	var inner strings.Builder
	i := p.pos + 1
	for ; i < len(p.src) && p.src[i] != '`'; i++ {
		if p.src[i] == '\\' && i+1 < len(p.src) && strings.IndexByte("`\\$", p.src[i+1]) >= 0 {
			i++
		}
		inner.WriteByte(p.src[i])
	}
	if i >= len(p.src) {
		return &syntaxError{line: p.line, msg: "unexpected EOF while looking for matching ``'", eof: true}
	}
	sub := &parser{src: inner.String(), line: p.line}
	s, err := sub.list()
	if err == nil && !sub.eof() {
		err = sub.unexpected()
	}
	if err != nil {
		return err
	}
	p.line += strings.Count(inner.String(), "\n")
	p.pos = i + 1
	w.parts = append(w.parts, part{kind: cmdsubPart, sub: s, quoted: quoted})
	return nil
}
