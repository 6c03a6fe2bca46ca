package certmgr

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// testTiming keeps the console tests fast.
var testTiming = timing{settle: 20 * time.Millisecond, unknown: 300 * time.Millisecond, stall: 600 * time.Millisecond, exit: 300 * time.Millisecond}

// fakeAnswers are what the fake program's dialog types.
var fakeAnswers = answers{
	option: "3", user: "administrator@vsphere.local", password: "S3cret!pw", vmcaName: "vcsa1.lab.test",
	values: map[string]string{
		"Country": "US", "Name": "vcsa1.lab.test", "Organization": "VMware", "OrgUnit": "VMware Engineering",
		"State": "California", "Locality": "Palo Alto", "IPAddress": "", "Email": "email@acme.com",
		"Hostname": "vcsa1.lab.test,vcenter.lab.test",
	},
}

// act is one thing the fake program does: print text (in pieces, with
// a pause between them), then, when want is set, read a line and check
// it.
type act struct {
	print []string
	pause time.Duration
	want  *string
}

func say(pieces ...string) act { return act{print: pieces} }

func ask(prompt, want string) act { return act{print: []string{prompt}, want: &want} }

// fake runs a script as a program on a terminal would: its output goes
// to the console's chunks, CR LF line ends, and it reads what the console
// sends. It stops at the first unexpected input, which it reports on
// got.
type fake struct {
	chunks chan []byte
	input  chan string
	got    chan string // unexpected input, or "ctrl-d"
}

func runFake(ctx context.Context, script []act) *fake {
	f := &fake{chunks: make(chan []byte), input: make(chan string, 16), got: make(chan string, 16)}
	go func() {
		defer close(f.chunks)
		out := func(s string) bool {
			select {
			case f.chunks <- []byte(strings.ReplaceAll(s, "\n", "\r\n")):
				return true
			case <-ctx.Done():
				return false
			}
		}
		for _, a := range script {
			for i, p := range a.print {
				if i > 0 && a.pause > 0 {
					time.Sleep(a.pause)
				}
				if !out(p) {
					return
				}
			}
			if a.want == nil {
				continue
			}
			var in string
			select {
			case in = <-f.input:
			case <-ctx.Done():
				return
			}
			if in == ctrlD {
				f.got <- "ctrl-d"
				return
			}
			if in != *a.want+"\r" {
				f.got <- fmt.Sprintf("unexpected input %q, want %q", in, *a.want+"\r")
				return
			}
			if a.want != nil && *a.want != fakeAnswers.password {
				out(*a.want) // the terminal echoes all but the password
			}
			out("\n")
		}
	}()
	return f
}

func (f *fake) console() *console {
	return &console{chunks: f.chunks, tm: testTiming, send: func(s string) error {
		f.input <- s
		return nil
	}}
}

// option3Script is certificate-manager option 3 up to its end, as the
// reference gives its prompts.
func option3Script(end ...act) []act {
	s := []act{
		say("Note : Use Ctrl-D to exit.\n"),
		ask("Option[1 to 8]: ", "3"),
		say("\nPlease provide valid SSO and VC privileged user credential to perform certificate operations.\n"),
		ask("Enter username [Administrator@vsphere.local]:", "administrator@vsphere.local"),
		ask("Enter password:", "S3cret!pw"),
		ask("certool.cfg file exists, Do you wish to reconfigure : Option[Y/N] ? : ", "Y"),
		say("Press Enter key to skip optional parameters or use Previous value.\n"),
		ask("\nEnter proper value for 'Country' [Previous value : US] : ", "US"),
		ask("\nEnter proper value for 'Name' [Previous value : old.lab.test] : ", "vcsa1.lab.test"),
		ask("\nEnter proper value for 'Organization' [Previous value : VMware] : ", "VMware"),
		ask("\nEnter proper value for 'OrgUnit' [optional] : ", "VMware Engineering"),
		ask("\nEnter proper value for 'State' [Previous value : California] : ", "California"),
		ask("\nEnter proper value for 'Locality' [Previous value : Palo Alto] : ", "Palo Alto"),
		ask("\nEnter proper value for 'IPAddress' (Provide comma separated values for multiple IP addresses) [optional] : ", ""),
		ask("\nEnter proper value for 'Email' [Previous value : email@acme.com] : ", "email@acme.com"),
		ask("\nEnter proper value for 'Hostname' (Provide comma separated values for multiple Hostname entries) [Enter valid Fully Qualified Domain Name(FQDN), For Example : example.domain.com] : ", "vcsa1.lab.test,vcenter.lab.test"),
		ask("\nEnter proper value for VMCA 'Name' :", "vcsa1.lab.test"),
		say("\nYou are going to regenerate Machine SSL cert using VMCA\n"),
		ask("Continue operation : Option[Y/N] ? : ", "Y"),
	}
	return append(s, end...)
}

func TestConverse(t *testing.T) {
	success := []act{
		say("Status : 0% Completed [Replacing Machine SSL Cert...]\n", "Status : 70% Completed [stopping services...]\n"),
		// The progress line is left unfinished while services restart,
		// longer than an unknown prompt may wait.
		{print: []string{"Status : 85% Completed [starting services...]", "\rStatus : 100% Completed [All tasks completed successfully]\n"}, pause: 2 * testTiming.unknown},
	}
	tests := []struct {
		name   string
		script []act
		err    string // "" for success
		ctrlD  bool
	}{
		{"option 3", option3Script(success...), "", false},
		{"prompt in pieces", append([]act{
			{print: []string{"Option[1 ", "to 8]: "}, pause: testTiming.settle / 4, want: ptr("3")},
		}, option3Script(success...)[2:]...), "", false},
		{"password refused", []act{
			ask("Option[1 to 8]: ", "3"),
			ask("Enter username [Administrator@vsphere.local]:", "administrator@vsphere.local"),
			ask("Enter password:", "S3cret!pw"),
			ask("Incorrect Password! Try Again! (2 attempt/s left)\nEnter password:", "never"),
		}, "refused the SSO password of administrator@vsphere.local", true},
		{"value refused", []act{
			ask("Option[1 to 8]: ", "3"),
			ask("\nEnter proper value for 'Country' [Default value : US] : ", "US"),
			ask("Enter valid 2 letter country code\n\nEnter proper value for 'Country' [Default value : US] : ", "never"),
		}, `refused Country = "US"`, true},
		{"unknown question", []act{
			ask("Option[1 to 8]: ", "3"),
			ask("Please provide the IP/FQDN of the Platform Services Controller : ", "never"),
		}, `it waits after "Please provide the IP/FQDN of the Platform Services Controller :"`, true},
		{"unknown certool.cfg key", []act{
			ask("Option[1 to 8]: ", "3"),
			ask("\nEnter proper value for 'DomainComponent' [optional] : ", "never"),
		}, "certool.cfg key 'DomainComponent'", true},
		{"back at the menu", []act{
			ask("Option[1 to 8]: ", "3"),
			ask("Option 3 is not available.\nOption[1 to 8]: ", "never"),
		}, "it came back to its menu", true},
		{"stall before the operation", []act{
			ask("Option[1 to 8]: ", "3"),
			say("Checking credentials\n"),
			{want: ptr("never")},
		}, "printed nothing for", true},
		{"question while the operation runs", option3Script(
			say("Status : 45% Completed [Replacing Machine SSL Cert...]\n"),
			ask("Do you want to update the extension certificates ? ", "never"),
		), "asked something this step does not answer", true},
		{"second continue", []act{
			ask("Option[1 to 8]: ", "3"),
			ask("Continue operation : Option[Y/N] ? : ", "Y"),
			ask("\nYou are going to reset by regenerating Root Certificate and replace all certificates using VMCA\nContinue operation : Option[Y/N] ? : ", "Y"),
			say("Status : 100% Completed [All tasks completed successfully]\n"),
		}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			f := runFake(ctx, tt.script)
			c := f.console()
			var lines []string
			c.onLine = func(l string) { lines = append(lines, l) }
			err := c.converse(ctx, newDialog(fakeAnswers))
			select {
			case got := <-f.got:
				if !(tt.ctrlD && got == "ctrl-d") {
					t.Errorf("the program got %s", got)
				}
			default:
				if tt.ctrlD {
					t.Error("the program was not stopped with Ctrl-D")
				}
			}
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("converse: %v\n%s", err, c.raw.String())
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("converse: %v, want %q", err, tt.err)
			}
			if err != nil && strings.Contains(err.Error(), fakeAnswers.password) {
				t.Errorf("the error holds the password: %v", err)
			}
			if strings.Contains(c.raw.String(), fakeAnswers.password) {
				t.Error("the transcript holds the password")
			}
			if tt.err == "" {
				p := ParseTranscript(c.raw.String())
				if !p.Completed {
					t.Errorf("the transcript does not say completed: %+v", p)
				}
				if n := len(p.Statuses); lines == nil || n == 0 || !strings.Contains(strings.Join(lines, "\n"), p.Statuses[n-1].String()) {
					t.Errorf("progress lines %q do not end with %s", lines, p.Statuses)
				}
			}
		})
	}
}

func ptr(s string) *string { return &s }

// TestConverseCancelled: ctx ending stops the conversation with ctx's
// cause.
func TestConverseCancelled(t *testing.T) {
	ctx, cancel := context.WithCancelCause(t.Context())
	f := runFake(ctx, []act{ask("Option[1 to 8]: ", "3"), {want: ptr("never")}})
	c := f.console()
	c.tm.stall = time.Minute
	go func() {
		time.Sleep(100 * time.Millisecond)
		cancel(errors.New("operator interrupt"))
	}()
	if err := c.converse(ctx, newDialog(fakeAnswers)); err == nil || err.Error() != "operator interrupt" {
		t.Fatalf("converse: %v", err)
	}
}

// TestDialog answers screens directly: each prompt of the reference, what
// it is answered, and what is refused.
func TestDialog(t *testing.T) {
	d := newDialog(fakeAnswers)
	for _, tt := range []struct {
		screen, want, err string
	}{
		{"...\nOption[1 to 8]: ", "3", ""},
		{"Do you wish to generate all certificates using configuration file : Option[Y/N] ? : ", "Y", ""},
		{"Enter username [Administrator@vsphere.local]:", "administrator@vsphere.local", ""},
		{"Enter password:", "S3cret!pw", ""},
		{"certool.cfg file exists, Do you wish to reconfigure : Option[Y/N] ? : ", "Y", ""},
		{"\nEnter proper value for 'Hostname' (Provide comma separated values for multiple Hostname entries) [Enter valid Fully Qualified Domain Name(FQDN), For Example : example.domain.com] : ", "vcsa1.lab.test,vcenter.lab.test", ""},
		{"Enter proper value for 'IPAddress' (Provide comma separated values for multiple IP addresses) [optional] :", "", ""},
		{"Enter proper value for VMCA 'Name' :", "vcsa1.lab.test", ""},
		{"Continue operation : Option[Y/N] ? : ", "Y", ""},
		{"Continue operation : Option[Y/N] ? : ", "Y", ""},
		{"Continue operation : Option[Y/N] ? : ", "", "asked the continue question again"},
		{"Enter password:", "", "refused the SSO password"},
		{"Enter proper value for 'Hostname' [x] : ", "", `refused Hostname = "vcsa1.lab.test,vcenter.lab.test"`},
		{"Enter proper value for 'Country' [Default value : US", "", "does not answer"},
		{"Press any key", "", "does not answer"},
	} {
		got, err := d.reply(tt.screen)
		if tt.err == "" && (err != nil || got != tt.want) {
			t.Errorf("reply(%q) = %q, %v; want %q", tt.screen, got, err, tt.want)
		}
		if tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("reply(%q) = %q, %v; want error %q", tt.screen, got, err, tt.err)
		}
	}
	if !d.confirmed {
		t.Error("the dialog does not know the operation was confirmed")
	}
}

// TestNormalize: terminal line ends become "\n", and normalizing a growing
// buffer never changes what was already normalized.
func TestNormalize(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"a\r\nb\n", "a\nb\n"},
		{"Status : 1% Completed [x]\rStatus : 2% Completed [y]\r\n", "Status : 1% Completed [x]\nStatus : 2% Completed [y]\n"},
		{"\x1b[1mbold\x1b[0m\ttab\x07", "bold\ttab"},
		{"end\r", "end"},
	} {
		if got := normalize(tt.in, false); got != tt.want {
			t.Errorf("normalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := normalize("end\r", true); got != "end\n" {
		t.Errorf("final normalize of a trailing CR = %q", got)
	}
	s := "a\r\nb\rc\r\n\rd\r"
	for i := range len(s) + 1 {
		prefix, whole := normalize(s[:i], false), normalize(s, false)
		if !strings.HasPrefix(whole, prefix) {
			t.Errorf("normalize(%q) = %q is no prefix of %q", s[:i], prefix, whole)
		}
	}
}
