package sshd

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pkg/sftp"
)

func sftpClient(t testing.TB, srv *Server) *sftp.Client {
	t.Helper()
	c, err := sftp.NewClient(dial(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func put(t testing.TB, c *sftp.Client, name string, data []byte) {
	t.Helper()
	f, err := c.Create(name)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if _, err := f.ReadFrom(bytes.NewReader(data)); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close %s: %v", name, err)
	}
}

func get(c *sftp.Client, name string) ([]byte, error) {
	f, err := c.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var b bytes.Buffer
	_, err = f.WriteTo(&b)
	return b.Bytes(), err
}

func TestSFTPRoundTrip(t *testing.T) {
	root := newTree(t)
	c := sftpClient(t, startServer(t, Config{Root: root}))
	data := make([]byte, 1<<20)
	rand.Read(data)
	put(t, c, "/var/tmp/vmware/blob.bin", data)
	onDisk, err := os.ReadFile(filepath.Join(root, "var/tmp/vmware/blob.bin"))
	if err != nil || !bytes.Equal(onDisk, data) {
		t.Fatalf("upload landed wrong: %d bytes, %v", len(onDisk), err)
	}
	got, err := get(c, "/var/tmp/vmware/blob.bin")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("download: %d bytes, %v", len(got), err)
	}
	// Relative paths start in root's home directory.
	put(t, c, "rel.txt", []byte("rel"))
	if _, err := os.Stat(filepath.Join(root, "root", "rel.txt")); err != nil {
		t.Errorf("relative upload: %v", err)
	}
	if wd, err := c.Getwd(); err != nil || wd != "/root" {
		t.Errorf("Getwd = %q, %v", wd, err)
	}
}

// TestSFTPOperations runs file operations in order on one node and checks
// both the client's view and the files on disk.
func TestSFTPOperations(t *testing.T) {
	root := newTree(t)
	c := sftpClient(t, startServer(t, Config{Root: root}))
	onDisk := func(name string) string {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}
	tests := []struct {
		name string
		op   func() error
		// check returns "" when the state is right.
		check   func() string
		wantErr error // nil for success; fs.ErrNotExist etc. for a status
	}{
		{"mkdir", func() error { return c.Mkdir("/tmp/new") }, func() string {
			if fi, err := os.Stat(filepath.Join(root, "tmp/new")); err != nil || !fi.IsDir() {
				return "no directory"
			}
			return ""
		}, nil},
		{"mkdir existing", func() error { return c.Mkdir("/tmp/new") }, nil, errFailure},
		{"mkdir all", func() error { return c.MkdirAll("/tmp/a/b/c") }, nil, nil},
		{"put", func() error { put(t, c, "/tmp/new/f1", []byte("one")); return nil }, func() string {
			if got := onDisk("tmp/new/f1"); got != "one" {
				return got
			}
			return ""
		}, nil},
		{"stat", func() error {
			fi, err := c.Stat("/tmp/new/f1")
			if err == nil && (fi.Size() != 3 || fi.Name() != "f1" || fi.IsDir()) {
				t.Errorf("stat: %v %d", fi.Name(), fi.Size())
			}
			return err
		}, nil, nil},
		{"stat missing", func() error { _, err := c.Stat("/tmp/none"); return err }, nil, fs.ErrNotExist},
		{"rename", func() error { return c.Rename("/tmp/new/f1", "/tmp/new/f2") }, func() string {
			if got := onDisk("tmp/new/f2"); got != "one" {
				return got
			}
			if _, err := os.Stat(filepath.Join(root, "tmp/new/f1")); err == nil {
				return "old name still exists"
			}
			return ""
		}, nil},
		{"rename onto existing", func() error {
			put(t, c, "/tmp/new/f3", []byte("three"))
			return c.Rename("/tmp/new/f3", "/tmp/new/f2")
		}, func() string {
			if got := onDisk("tmp/new/f2"); got != "one" {
				return "overwritten: " + got
			}
			return ""
		}, errFailure},
		{"posix rename replaces", func() error { return c.PosixRename("/tmp/new/f3", "/tmp/new/f2") }, func() string {
			if got := onDisk("tmp/new/f2"); got != "three" {
				return got
			}
			return ""
		}, nil},
		{"list", func() error {
			infos, err := c.ReadDir("/tmp/new")
			var names []string
			for _, fi := range infos {
				names = append(names, fi.Name())
			}
			if !slices.Equal(names, []string{"f2"}) {
				t.Errorf("list = %q", names)
			}
			return err
		}, nil, nil},
		{"chmod", func() error { return c.Chmod("/tmp/new/f2", 0o600) }, func() string {
			if fi, _ := os.Stat(filepath.Join(root, "tmp/new/f2")); fi.Mode().Perm() != 0o600 {
				return fi.Mode().String()
			}
			return ""
		}, nil},
		{"truncate", func() error { return c.Truncate("/tmp/new/f2", 2) }, func() string {
			if got := onDisk("tmp/new/f2"); got != "th" {
				return got
			}
			return ""
		}, nil},
		{"read write handle", func() error {
			f, err := c.OpenFile("/tmp/new/f2", os.O_RDWR)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte("X"), 1); err != nil {
				return err
			}
			b := make([]byte, 2)
			if _, err := f.ReadAt(b, 0); err != nil {
				return err
			}
			if string(b) != "tX" {
				t.Errorf("read back %q", b)
			}
			return nil
		}, nil, nil},
		{"remove a directory with remove", func() error { return c.Remove("/tmp/a/b/c") }, nil, nil},
		{"rmdir not empty", func() error { return c.RemoveDirectory("/tmp/new") }, nil, errFailure},
		{"remove file", func() error { return c.Remove("/tmp/new/f2") }, func() string {
			if _, err := os.Stat(filepath.Join(root, "tmp/new/f2")); err == nil {
				return "still there"
			}
			return ""
		}, nil},
		{"remove missing", func() error { return c.Remove("/tmp/new/f2") }, nil, fs.ErrNotExist},
		{"rmdir", func() error { return c.RemoveDirectory("/tmp/new") }, nil, nil},
		{"symlink inside and readlink", func() error {
			if err := c.Symlink("hostname", "/etc/hn"); err != nil {
				return err
			}
			target, err := c.ReadLink("/etc/hn")
			if target != "hostname" {
				t.Errorf("readlink = %q", target)
			}
			if b, _ := get(c, "/etc/hn"); string(b) != testHost+"\n" {
				t.Errorf("read through link = %q", b)
			}
			fi, _ := c.Lstat("/etc/hn")
			if fi == nil || fi.Mode()&fs.ModeSymlink == 0 {
				t.Errorf("lstat does not see a link")
			}
			return err
		}, nil, nil},
		{"get a directory", func() error { _, err := get(c, "/etc"); return err }, nil, errFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op()
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != nil && !isStatus(err, tt.wantErr):
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if tt.check != nil {
				if msg := tt.check(); msg != "" {
					t.Error(msg)
				}
			}
		})
	}
}

// errFailure stands for SSH_FX_FAILURE in the table above.
var errFailure = errors.New("SSH_FX_FAILURE")

func isStatus(err, want error) bool {
	if err == nil {
		return false
	}
	if want == errFailure {
		var se *sftp.StatusError
		return errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxFailure
	}
	return errors.Is(err, want)
}

// TestSFTPConfinement checks that ".." cannot climb out of the node's tree
// and that symbolic links pointing outside it are refused.
func TestSFTPConfinement(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "node")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(parent, "secret")
	if err := os.WriteFile(secret, []byte("host secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(root, "abs-escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../secret", filepath.Join(root, "rel-escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..", filepath.Join(root, "up")); err != nil {
		t.Fatal(err)
	}
	c := sftpClient(t, startServer(t, Config{Root: root}))

	// ".." is cleaned into the root: the upload lands inside it.
	put(t, c, "/../../../dotdot.txt", []byte("inside"))
	if b, err := os.ReadFile(filepath.Join(root, "dotdot.txt")); err != nil || string(b) != "inside" {
		t.Errorf("upload through ..: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(parent, "dotdot.txt")); err == nil {
		t.Error("upload through .. escaped the root")
	}
	if _, err := get(c, "/../secret"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("get /../secret: %v, want not found", err)
	}
	if wd, err := c.RealPath("/../../.."); err != nil || wd != "/" {
		t.Errorf("realpath = %q %v", wd, err)
	}

	for _, name := range []string{"/abs-escape", "/rel-escape", "/up/secret"} {
		t.Run(strings.TrimPrefix(name, "/"), func(t *testing.T) {
			if b, err := get(c, name); err == nil {
				t.Fatalf("read %s through a link: %q", name, b)
			} else if !strings.Contains(err.Error(), "escapes") {
				t.Errorf("error %v does not say the path escapes", err)
			}
			f, err := c.Create(name)
			if err == nil {
				f.Write([]byte("overwritten"))
				f.Close()
			}
			if _, err := c.Stat(name); err == nil {
				t.Errorf("stat %s followed the link", name)
			}
		})
	}
	if b, _ := os.ReadFile(secret); string(b) != "host secret" {
		t.Errorf("secret changed to %q", b)
	}
	// A link made over SFTP to an outside path cannot be followed either.
	if err := c.Symlink(secret, "/made"); err != nil {
		t.Fatal(err)
	}
	if _, err := get(c, "/made"); err == nil {
		t.Error("followed a link made over SFTP")
	}
	if _, err := c.ReadDir("/up"); err == nil {
		t.Error("listed the parent through a link")
	}
	if _, err := c.Lstat("/up"); err != nil {
		t.Errorf("lstat of the link itself: %v", err)
	}
}

func TestSFTPDropFault(t *testing.T) {
	srv := startServer(t, Config{Faults: FaultFunc(func(op string) error {
		if op == OpSFTP {
			return ErrDrop
		}
		return nil
	})})
	c := dial(t, srv)
	// A refused subsystem would fail with "subsystem request failed"; a
	// dropped connection ends the session's requests with EOF.
	if _, err := sftp.NewClient(c); !errors.Is(err, io.EOF) {
		t.Fatalf("sftp client: %v, want EOF from a dropped connection", err)
	}
	_ = c.Wait() // returns once the transport is gone

}
