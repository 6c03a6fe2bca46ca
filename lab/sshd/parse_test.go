package sshd

import "testing"

func TestParseErrors(t *testing.T) {
	tests := []struct {
		src, msg   string
		incomplete bool
		line       int
	}{
		{"echo 'abc", "unexpected EOF while looking for matching `''", true, 1},
		{"echo \"abc\n\n", "unexpected EOF while looking for matching `\"'", true, 1},
		{"echo a\n\nfor i in a b\n\n", "syntax error: unexpected end of file", true, 5},
		{`echo "abc`, "unexpected EOF while looking for matching `\"'", true, 1},
		{"echo $(ls", "unexpected EOF while looking for matching `)'", true, 2},
		{"echo `ls", "unexpected EOF while looking for matching ``'", true, 1},
		{"for i in a b", "syntax error: unexpected end of file", true, 2},
		{"for i in a b; do echo $i", "syntax error: unexpected end of file", true, 2},
		{"if true; then echo", "syntax error: unexpected end of file", true, 2},
		{"ls &&", "syntax error: unexpected end of file", true, 2},
		{"ls |", "syntax error: unexpected end of file", true, 2},
		{"{ echo a", "syntax error: unexpected end of file", true, 2},
		{"; ls", "syntax error near unexpected token `;'", false, 1},
		{"ls | | wc", "syntax error near unexpected token `|'", false, 1},
		{"ls && && wc", "syntax error near unexpected token `&&'", false, 1},
		{"done", "syntax error near unexpected token `done'", false, 1},
		{"echo )", "syntax error near unexpected token `)'", false, 1},
		{"sleep 1 &", "syntax error near unexpected token `&'", false, 1},
		{"echo >", "syntax error near unexpected token `newline'", false, 1},
		{"echo > | x", "syntax error near unexpected token `|'", false, 1},
		{"cat <<EOF", "here-documents are not supported", false, 1},
		{"echo $((1+2))", "arithmetic expansion is not supported", false, 1},
		{"echo ${a%b}", "${a%b}: bad substitution", false, 1},
		{"for 1 in a; do :; done", "`1': not a valid identifier", false, 1},
		{"{ echo a; } echo b", "syntax error near unexpected token `echo'", false, 1},
		{"if true; then :; fi x", "syntax error near unexpected token `x'", false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			_, err := parse(tt.src)
			se, ok := err.(*syntaxError)
			if !ok {
				t.Fatalf("parse: %v, want a syntax error", err)
			}
			if se.line != tt.line {
				t.Errorf("line %d, want %d", se.line, tt.line)
			}
			if se.msg != tt.msg || se.eof != tt.incomplete {
				t.Errorf("got %q (eof %v), want %q (eof %v)", se.msg, se.eof, tt.msg, tt.incomplete)
			}
			if incomplete(tt.src) != tt.incomplete {
				t.Errorf("incomplete = %v", !tt.incomplete)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	for _, src := range []string{
		"",
		"   # only a comment",
		"ls\n\n  ls ;",
		"a=1 b=2",
		"for i; do :; done",
		"for i in\ndo :; done",
		"while false; do :; done; until true; do :; done",
		"if a; then b; elif c; then d; else e; fi > /dev/null 2>&1",
		"{ a; b; } | (c; d) && ! e || f",
		"echo ${x:-$(echo \"${y-z}\")} `echo \\`nested\\``",
		"x 2>&1 >&2 1>&2 &> f &>> g >| h < i 2>> j",
		"echo a\\\n b",
		"ls |\n wc -l",
	} {
		if _, err := parse(src); err != nil {
			t.Errorf("parse(%q): %v", src, err)
		}
	}
}

// FuzzParse checks that the parser never panics and reports failures only
// as syntax errors. (Fuzzed scripts are not run: they could loop or sleep.)
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`for i in $(vecs-cli store list); do echo STORE $i; vecs-cli entry list --store $i --text | egrep "Alias|Not After"; done`,
		`if [ -f /etc/x ]; then cat /etc/x 2>&1 | grep -A1 'a\|b'; else echo "no $X"; fi`,
		"a=b c=${d:-e} f `g` 'h' \"i\" j\\ k > l 2>&1",
		"{ (x) ; } || ! y && z\n#c\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		// Line by line, as scripts run, must agree with the whole parse.
		p := &parser{src: src, line: 1}
		var lineErr error
		for lineErr == nil {
			var s *script
			if s, lineErr = p.commandLine(); s == nil {
				break
			}
		}
		s, err := parse(src)
		if (err == nil) != (lineErr == nil) {
			t.Fatalf("parse: %v, line by line: %v", err, lineErr)
		}
		if err != nil {
			if _, ok := err.(*syntaxError); !ok {
				t.Fatalf("non-syntax error %T %v", err, err)
			}
			return
		}
		if s == nil {
			t.Fatal("nil script without error")
		}
	})
}
