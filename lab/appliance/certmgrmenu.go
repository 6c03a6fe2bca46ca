package appliance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"runbook/lab/sshd"
)

// certificateManagerBanner is the 7.0 menu, box and all.
const certificateManagerBanner = "\t\t _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ \n" +
	"\t\t|                                                                     |\n" +
	"\t\t|      *** Welcome to the vSphere 7.0 Certificate Manager  ***        |\n" +
	"\t\t|                                                                     |\n" +
	"\t\t|                   -- Select Operation --                            |\n" +
	"\t\t|                                                                     |\n" +
	"\t\t|      1. Replace Machine SSL certificate with Custom Certificate     |\n" +
	"\t\t|                                                                     |\n" +
	"\t\t|      2. Replace VMCA Root certificate with Custom Signing           |\n" +
	"\t\t|         Certificate and replace all Certificates                    |\n" +
	"\t\t|                                                                     |\n" +
	"\t\t|      3. Replace Machine SSL certificate with VMCA Certificate       |\n" +
	"\t\t|                                                                     |\n" +
	"\t\t|      4. Regenerate a new VMCA Root Certificate and                  |\n" +
	"\t\t|         replace all certificates                                    |\n" +
	"\t\t|                                                                     |\n" +
	"\t\t|      5. Replace Solution user certificates with                     |\n" +
	"\t\t|         Custom Certificate                                          |\n" +
	"\t\t|                                                                     |\n" +
	"\t\t|      6. Replace Solution user certificates with VMCA certificates   |\n" +
	"\t\t|                                                                     |\n" +
	"\t\t|      7. Revert last performed operation by re-publishing old        |\n" +
	"\t\t|         certificates                                                |\n" +
	"\t\t|                                                                     |\n" +
	"\t\t|      8. Reset all Certificates                                      |\n" +
	"\t\t|_ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _|\n" +
	"Note : Use Ctrl-D to exit.\n"

// Prompts and messages of certificate-manager (reference §4.2).
const (
	promptOption      = "Option[1 to 8]: "
	promptUsername    = "Enter username [Administrator@vsphere.local]:"
	promptSSOPassword = "Enter password:"
	promptContinue    = "Continue operation : Option[Y/N] ? : "
	promptUseConfig   = "Do you wish to generate all certificates using configuration file : Option[Y/N] ? : "
	promptReconfigure = "certool.cfg file exists, Do you wish to reconfigure : Option[Y/N] ? : "
	promptVMCAName    = "\nEnter proper value for VMCA 'Name' :"
	msgCredentials    = "\nPlease provide valid SSO and VC privileged user credential to perform certificate operations."
	msgConfigure      = "\nPlease configure certool.cfg with proper values before proceeding to next step.\n"
	msgSkipDefault    = "Press Enter key to skip optional parameters or use Default value."
	msgSkipPrevious   = "Press Enter key to skip optional parameters or use Previous value."
	msgYesNo          = "Please enter any value with in [Y/N]."
	defaultUser       = "Administrator@vsphere.local"
	maxAttempts       = 3
)

// errQuit ends the menu without an error message: the user typed Ctrl-D
// or answered N.
var errQuit = errors.New("quit")

// menu is one certificate-manager session on a terminal.
type menu struct {
	a   *appliance
	inv *sshd.Invocation
	tty *sshd.Terminal
}

func (m *menu) println(s string) { fmt.Fprintln(m.inv.Stdout, s) }

// readLine prompts and reads a line; Ctrl-D quits. Line breaks in the
// prompt go through the terminal's output translation; the terminal's
// line editor gets the last line only.
func (m *menu) readLine(prompt string) (string, error) {
	if i := strings.LastIndexByte(prompt, '\n'); i >= 0 {
		io.WriteString(m.inv.Stdout, prompt[:i+1])
		prompt = prompt[i+1:]
	}
	s, err := m.tty.ReadLine(prompt)
	if err != nil {
		return "", errQuit
	}
	return strings.TrimSpace(s), nil
}

// yesNo asks until the answer is y or n.
func (m *menu) yesNo(prompt string) (bool, error) {
	for {
		s, err := m.readLine(prompt)
		if err != nil {
			return false, err
		}
		switch s {
		case "y", "Y":
			return true, nil
		case "n", "N":
			return false, nil
		}
		m.println(msgYesNo)
	}
}

// certificateManager is /usr/lib/vmware-vmca/bin/certificate-manager, the
// interactive front end of ReplaceMachineSSL (3), ReplaceSolutionUsers (6)
// and ResetAllCertificates (4 and 8). It needs a terminal.
func (a *appliance) certificateManager(ctx context.Context, inv *sshd.Invocation) int {
	if inv.TTY == nil {
		fmt.Fprintln(inv.Stderr, "certificate-manager: this tool is interactive and needs a terminal (use ssh -t)")
		return 1
	}
	m := &menu{a: a, inv: inv, tty: inv.TTY}
	err := m.run(ctx)
	switch {
	case err == nil, errors.Is(err, errQuit):
		return 0
	case errors.Is(err, errTerminated):
		return 1
	}
	return 1
}

// errTerminated means the session ended after printing its own message.
var errTerminated = errors.New("terminated")

func (m *menu) run(ctx context.Context) error {
	io.WriteString(m.inv.Stdout, certificateManagerBanner)
	var option string
	for {
		s, err := m.readLine(promptOption)
		if err != nil {
			return err
		}
		if len(s) == 1 && s[0] >= '1' && s[0] <= '8' {
			option = s
			break
		}
	}
	switch option {
	case "3", "6", "4", "8":
	default:
		m.println("")
		m.println("Option " + option + " is not simulated by the lab.")
		return errTerminated
	}
	useConfig := true
	if option == "4" || option == "8" {
		var err error
		if useConfig, err = m.yesNo(promptUseConfig); err != nil {
			return err
		}
	}
	if err := m.credentials(); err != nil {
		return err
	}
	var cfg CertoolConfig
	var vmcaName string
	if option != "6" {
		var err error
		if cfg, vmcaName, err = m.configure(useConfig); err != nil {
			return err
		}
	}
	confirmations := map[string][]string{
		"3": {"You are going to regenerate Machine SSL cert using VMCA"},
		"6": {"You are going to regenerate Solution User Certificates using VMCA"},
		"4": {"You are going to regenerate Root Certificate and all other certificates using VMCA"},
		"8": {"", "You are going to reset by regenerating Root Certificate and replace all certificates using VMCA"},
	}
	if !m.a.n.HasDirectory() && option == "8" {
		confirmations["8"][1] = "You are going to reset by regenerating Machine SSL cert and Solution user certs.\n" +
			"If you wish to reset Root Certificate please perform from Platform Services Controller machine " + m.a.d.DCName(m.a.n) + "."
	}
	for _, msg := range confirmations[option] {
		if msg != "" {
			m.println("\n" + msg)
		}
		ok, err := m.yesNo(promptContinue)
		if err != nil {
			return err
		}
		if !ok {
			return errQuit
		}
	}
	var err error
	var what string
	switch option {
	case "3":
		what = "replacing Machine SSL Cert"
		err = ReplaceMachineSSL(ctx, m.a.d, m.a.n, cfg, m.inv.Stdout)
	case "6":
		what = "replacing Solution User Certs"
		err = ReplaceSolutionUsers(ctx, m.a.d, m.a.n, m.inv.Stdout)
	default:
		what = "performing Reset operation"
		err = ResetAllCertificates(ctx, m.a.d, m.a.n, cfg, vmcaName, m.inv.Stdout)
	}
	if err != nil {
		if !errors.Is(err, ErrRolledBack) && !errors.Is(err, ErrRollbackFailed) {
			m.println(fmt.Sprintf("Error: %v", err))
		}
		m.println(fmt.Sprintf("certificate-manager Error while %s, please see %s for more information.", what, PathCertificateManagerLog))
		return errTerminated
	}
	return nil
}

// credentials asks for the SSO administrator and checks the password
// against the directory, three attempts at most.
func (m *menu) credentials() error {
	m.println(msgCredentials)
	user, err := m.readLine(promptUsername)
	if err != nil {
		return err
	}
	if user == "" {
		user = defaultUser
	}
	if !strings.Contains(user, "@") {
		user += "@" + m.a.d.Name
	}
	for left := maxAttempts - 1; ; left-- {
		pw, err := m.tty.ReadPassword(promptSSOPassword)
		if err != nil {
			return errQuit
		}
		if pw != "" && m.a.d.Dir.Bind(user, pw) == nil {
			return nil
		}
		if left == 0 {
			m.println("Reached max number of attempts, terminating operation.")
			return errTerminated
		}
		m.println(fmt.Sprintf("Incorrect Password! Try Again! (%d attempt/s left)", left))
	}
}

// configure runs the certool.cfg block: first time (or when the user does
// not use a configuration file) it offers the template's values as
// defaults; when a working copy exists it asks whether to reconfigure and
// offers the previous values. The answers are written to the working
// copy. It returns the configuration and the VMCA Name.
func (m *menu) configure(useConfig bool) (CertoolConfig, string, error) {
	n := m.a.n
	defaults := DefaultCertoolConfig(n.PNID, "")
	if data, err := n.ReadFile(PathCertoolTemplate); err == nil {
		if t, err := ParseCertoolConfig(data); err == nil {
			defaults = t
		}
	}
	previous, prevErr := n.ReadFile(PathCertoolWorkingCopy)
	label := "Default value"
	if prevErr == nil {
		prev, err := ParseCertoolConfig(previous)
		if err == nil {
			reconfigure, err := m.yesNo(promptReconfigure)
			if err != nil {
				return CertoolConfig{}, "", err
			}
			if !reconfigure || !useConfig {
				name, err := m.readLine(promptVMCAName)
				return prev, name, err
			}
			defaults, label = prev, "Previous value"
			m.println(msgSkipPrevious)
		}
	} else {
		if !useConfig {
			cfg := defaults
			cfg.Hostname = []string{n.PNID}
			name, err := m.readLine(promptVMCAName)
			return cfg, name, err
		}
		m.println(msgConfigure)
		m.println(msgSkipDefault)
	}
	cfg, err := m.askConfig(defaults, label)
	if err != nil {
		return CertoolConfig{}, "", err
	}
	name, err := m.readLine(promptVMCAName)
	if err != nil {
		return CertoolConfig{}, "", err
	}
	if err := n.WriteFile(PathCertoolWorkingCopy, cfg.Marshal(), 0o644); err != nil {
		m.println(fmt.Sprintf("Error: %v", err))
		return CertoolConfig{}, "", errTerminated
	}
	return cfg, name, nil
}

// askConfig prompts for every key with validation, as certificate-manager
// does; blank answers keep the offered value.
func (m *menu) askConfig(defaults CertoolConfig, label string) (CertoolConfig, error) {
	var cfg CertoolConfig
	for _, key := range []string{"Country", "Name", "Organization", "OrgUnit", "State", "Locality", "IPAddress", "Email", "Hostname"} {
		var prompt string
		switch key {
		case "IPAddress":
			prompt = "\nEnter proper value for 'IPAddress' (Provide comma separated values for multiple IP addresses) [optional] : "
		case "Hostname":
			prompt = "\nEnter proper value for 'Hostname' (Provide comma separated values for multiple Hostname entries) [Enter valid Fully Qualified Domain Name(FQDN), For Example : example.domain.com] : "
		default:
			if v := defaults.Get(key); v != "" {
				prompt = fmt.Sprintf("\nEnter proper value for '%s' [%s : %s] : ", key, label, v)
			} else {
				prompt = fmt.Sprintf("\nEnter proper value for '%s' [optional] : ", key)
			}
		}
		for {
			v, err := m.readLine(prompt)
			if err != nil {
				return cfg, err
			}
			if v == "" && key != "IPAddress" && key != "Hostname" {
				v = defaults.Get(key)
			}
			if msg := validateConfigValue(key, v); msg != "" {
				m.println(msg)
				continue
			}
			cfg.Set(key, v)
			break
		}
	}
	return cfg, nil
}

// validateConfigValue returns certificate-manager's complaint about a
// certool.cfg answer, or "".
func validateConfigValue(key, v string) string {
	switch key {
	case "Country":
		if len(v) != 2 || !isLetters(v) {
			return "Enter valid 2 letter country code"
		}
	case "Hostname":
		if len(splitList(v)) == 0 {
			return "Hostname should not be empty, please enter valid FQDN."
		}
	case "IPAddress":
		for _, ip := range splitList(v) {
			if net.ParseIP(ip) == nil {
				return "Please enter IP address in valid IPV4 or IPV6 format"
			}
		}
	}
	return ""
}

func isLetters(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
