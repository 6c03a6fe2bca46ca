package shell

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"runbook/internal/runfile"

	"github.com/pkg/sftp"

	"runbook/engine"
	"runbook/steps/conn"
	"runbook/target"
)

// putParams are the params of sftp.put.
type putParams struct {
	Node      string `yaml:"node" doc:"The PNID of the node to write to; the target's first node when empty."`
	Path      string `yaml:"path" required:"true" doc:"The absolute path of the file on the node. Its folder must exist."`
	Content   string `yaml:"content" doc:"The file's new content, as text. Exactly one of content and local_file is given."`
	LocalFile string `yaml:"local_file" doc:"A file on the machine running the runbook whose bytes become the file's new content, such as one an earlier step wrote; a relative path is relative to the run folder."`
	Mode      string `yaml:"mode" default:"0644" doc:"The file's permission bits, in octal (0600 for a key)."`
}

// putOutputs are the outputs of sftp.put.
type putOutputs struct {
	// Node is the PNID of the node written to.
	Node string `json:"node" expr:"node"`
	// Path is the file's path on the node.
	Path string `json:"path" expr:"path"`
	// Size is the new content's size in bytes.
	Size int64 `json:"size" expr:"size"`
	// SHA256 is the new content's SHA-256, in lower-case hex.
	SHA256 string `json:"sha256" expr:"sha256"`
}

// getParams are the params of sftp.get.
type getParams struct {
	Node string `yaml:"node" doc:"The PNID of the node to read from; the target's first node when empty."`
	Path string `yaml:"path" required:"true" doc:"The absolute path of the file on the node."`
	To   string `yaml:"to" doc:"The name of the copy inside the run folder (folders in it are created); the file's base name when empty. An existing copy is replaced."`
}

// getOutputs are the outputs of sftp.get.
type getOutputs struct {
	// File is the absolute path of the copy in the run folder.
	File string `json:"file" expr:"file"`
	// Size is its size in bytes.
	Size int64 `json:"size" expr:"size"`
	// SHA256 is its SHA-256, in lower-case hex.
	SHA256 string `json:"sha256" expr:"sha256"`
	// Content is the file's text, secrets redacted, when it is valid UTF-8
	// without NUL bytes, smaller than 64 KiB and holds no PEM private key;
	// empty otherwise.
	Content string `json:"content" expr:"content"`
}

// contentLimit is the size below which sftp.get puts a text file's content
// into its outputs.
const contentLimit = 64 << 10

// PutBackupFile and PutBackupContent are the files sftp.put's backup
// writes into the step's backup folder: what the remote file was (JSON) and,
// when it existed, its bytes. Restore reads them.
const (
	PutBackupFile    = "sftp-put.json"
	PutBackupContent = "original"
)

// putBackup is the JSON record of sftp.put's backup.
type putBackup struct {
	Node    string `json:"node"`
	Path    string `json:"path"`
	Existed bool   `json:"existed"`
	Mode    string `json:"mode,omitempty"`
	Size    int64  `json:"size,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
}

var putStep = engine.Write[putParams, putOutputs]{
	Spec: engine.Spec{
		ID:      "sftp.put",
		Summary: "Write a file on an appliance node over SFTP.",
		Doc: "Writes `content` (or the bytes of `local_file`) to `path` on the node with permission " +
			"bits `mode`: into a temporary file beside it, which is then renamed over it, so that " +
			"the file is never seen half written. The new file belongs to the SSH user (root on an " +
			"appliance).\n\n" +
			"The plan compares size and SHA-256 of the current file with the new content: create " +
			"when there is none, replace when it differs, update when only the mode differs, and " +
			"already in place when both match. The backup keeps the current file (`original` and " +
			"`sftp-put.json` in the step's backup folder); `shell.Restore` puts it back, or removes " +
			"the file when there was none. Check is applied once the file's SHA-256 and mode are the " +
			"new ones.\n\n" +
			"```yaml\n- id: upload\n  uses: sftp.put\n  with:\n    path: /tmp/vmware-fixsts/certool.cfg\n" +
			"    local_file: certool.cfg\n    mode: \"0600\"\n```",
	},
	Plan:   planPut,
	Backup: backupPut,
	Apply:  applyPut,
	Check:  checkPut,
}

var getStep = engine.Read[getParams, getOutputs]{
	Spec: engine.Spec{
		ID:      "sftp.get",
		Summary: "Copy a file from an appliance node into the run folder over SFTP.",
		Doc: "Downloads `path` from the node into the run folder (as `to`, or its base name), readable " +
			"by the owner only, and returns the copy's path, size and SHA-256; a small text file's " +
			"content is returned too, secrets redacted (never one holding a PEM private key). Use it to keep a file before a step changes " +
			"it, or to read a configuration file.\n\n" +
			"```yaml\n- id: root_cert\n  uses: sftp.get\n  with:\n    path: /var/lib/vmware/vmca/root.cer\n```",
	},
	Run: runGet,
}

// remoteFile is what a remote path holds.
type remoteFile struct {
	exists bool
	size   int64
	sha256 string
	mode   fs.FileMode
}

func (f remoteFile) String() string {
	if !f.exists {
		return "absent"
	}
	return fmt.Sprintf("%d bytes, sha256 %s, mode %04o", f.size, f.sha256, f.mode.Perm())
}

// putJob is a checked sftp.put request.
type putJob struct {
	node    *target.Node
	path    string
	content []byte
	sha256  string
	mode    fs.FileMode
}

func (j *putJob) want() remoteFile {
	return remoteFile{exists: true, size: int64(len(j.content)), sha256: j.sha256, mode: j.mode}
}

func newPutJob(env *engine.Env, p *putParams) (*putJob, error) {
	if err := checkRemotePath(p.Path); err != nil {
		return nil, err
	}
	mode, err := parseMode(p.Mode)
	if err != nil {
		return nil, err
	}
	j := &putJob{path: path.Clean(p.Path), mode: mode}
	switch {
	case p.Content != "" && p.LocalFile != "":
		return nil, errors.New("content and local_file: give one of them, not both")
	case p.LocalFile != "":
		name := p.LocalFile
		if !filepath.IsAbs(name) {
			name = filepath.Join(env.RunDir, name)
		}
		if j.content, err = os.ReadFile(name); err != nil {
			return nil, fmt.Errorf("local_file: %w", err)
		}
	default:
		// An empty content writes an empty file.
		j.content = []byte(p.Content)
	}
	sum := sha256.Sum256(j.content)
	j.sha256 = hex.EncodeToString(sum[:])
	if j.node, err = conn.Node(env, p.Node); err != nil {
		return nil, err
	}
	return j, nil
}

// checkRemotePath refuses a path that is not an absolute file path.
func checkRemotePath(p string) error {
	switch {
	case p == "":
		return errors.New("path: no path given")
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("path: %q is not absolute", p)
	case path.Clean(p) == "/", strings.HasSuffix(p, "/"):
		return fmt.Errorf("path: %q names a folder, not a file", p)
	case strings.ContainsRune(p, 0):
		return errors.New("path: holds a NUL byte")
	}
	return nil
}

// parseMode parses octal permission bits; empty means 0644.
func parseMode(s string) (fs.FileMode, error) {
	if s == "" {
		return 0o644, nil
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o777 {
		return 0, fmt.Errorf("mode: %q is not octal permission bits such as 0644", s)
	}
	return fs.FileMode(v), nil
}

// stat reads what path holds on the node: its size, SHA-256 and mode.
func stat(c *sftp.Client, p string) (remoteFile, error) {
	fi, err := c.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return remoteFile{}, nil
	}
	if err != nil {
		return remoteFile{}, fmt.Errorf("stat %s: %w", p, err)
	}
	if !fi.Mode().IsRegular() {
		return remoteFile{}, fmt.Errorf("%s is not a regular file", p)
	}
	f, err := c.Open(p)
	if err != nil {
		return remoteFile{}, fmt.Errorf("open %s: %w", p, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return remoteFile{}, fmt.Errorf("read %s: %w", p, err)
	}
	return remoteFile{exists: true, size: n, sha256: hex.EncodeToString(h.Sum(nil)), mode: fi.Mode().Perm()}, nil
}

func (j *putJob) sftp(ctx context.Context) (*sftp.Client, error) {
	c, err := j.node.SFTP(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: sftp: %w", j.node.PNID(), err)
	}
	return c, nil
}

func planPut(ctx context.Context, env *engine.Env, p *putParams) (engine.Plan, error) {
	j, err := newPutJob(env, p)
	if err != nil {
		return engine.Plan{}, err
	}
	c, err := j.sftp(ctx)
	if err != nil {
		return engine.Plan{}, err
	}
	have, err := stat(c, j.path)
	if err != nil {
		return engine.Plan{}, fmt.Errorf("%s: %w", j.node.PNID(), err)
	}
	want := j.want()
	obj := j.node.PNID() + " file " + j.path
	pl := engine.Plan{Facts: map[string]string{"node": j.node.PNID(), "path": j.path, "before": have.String(), "after": want.String()}}
	switch {
	case !have.exists:
		pl.Summary = fmt.Sprintf("create %s on %s (%d bytes)", j.path, j.node.PNID(), want.size)
		pl.Changes = []engine.Change{{Action: "create", Object: obj, After: want.String()}}
	case have.sha256 != want.sha256:
		pl.Summary = fmt.Sprintf("replace %s on %s (%d bytes, was %d)", j.path, j.node.PNID(), want.size, have.size)
		pl.Changes = []engine.Change{{Action: "replace", Object: obj, Before: have.String(), After: want.String()}}
	case have.mode != want.mode:
		pl.Summary = fmt.Sprintf("change the mode of %s on %s to %04o", j.path, j.node.PNID(), want.mode)
		pl.Changes = []engine.Change{{Action: "update", Object: obj, Before: have.String(), After: want.String()}}
	default:
		pl.Summary = fmt.Sprintf("%s on %s already has this content and mode", j.path, j.node.PNID())
		pl.InPlace = true
	}
	return pl, nil
}

func backupPut(ctx context.Context, env *engine.Env, p *putParams) ([]string, error) {
	j, err := newPutJob(env, p)
	if err != nil {
		return nil, err
	}
	c, err := j.sftp(ctx)
	if err != nil {
		return nil, err
	}
	rec := putBackup{Node: j.node.PNID(), Path: j.path}
	var files []string
	fi, err := c.Stat(j.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("%s: stat %s: %w", j.node.PNID(), j.path, err)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s: %s is not a regular file", j.node.PNID(), j.path)
	default:
		dst := filepath.Join(env.BackupDir, PutBackupContent)
		size, sum, err := download(c, j.path, dst)
		if err != nil {
			return nil, fmt.Errorf("%s: back up %s: %w", j.node.PNID(), j.path, err)
		}
		rec.Existed, rec.Size, rec.SHA256 = true, size, sum
		rec.Mode = fmt.Sprintf("%04o", fi.Mode().Perm())
		files = append(files, dst)
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode backup record: %w", err)
	}
	meta := filepath.Join(env.BackupDir, PutBackupFile)
	if err := runfile.Write(meta, append(data, '\n'), 0o600); err != nil {
		return nil, err
	}
	return append(files, meta), nil
}

func applyPut(ctx context.Context, env *engine.Env, p *putParams) (putOutputs, error) {
	j, err := newPutJob(env, p)
	if err != nil {
		return putOutputs{}, err
	}
	c, err := j.sftp(ctx)
	if err != nil {
		return putOutputs{}, err
	}
	if err := upload(c, j.path, j.content, j.mode); err != nil {
		return putOutputs{}, fmt.Errorf("%s: %w", j.node.PNID(), err)
	}
	return putOutputs{Node: j.node.PNID(), Path: j.path, Size: int64(len(j.content)), SHA256: j.sha256}, nil
}

func checkPut(ctx context.Context, env *engine.Env, p *putParams) (engine.Verdict[putOutputs], error) {
	j, err := newPutJob(env, p)
	if err != nil {
		return engine.Verdict[putOutputs]{}, err
	}
	c, err := j.sftp(ctx)
	if err != nil {
		return engine.Verdict[putOutputs]{}, err
	}
	have, err := stat(c, j.path)
	if err != nil {
		return engine.Verdict[putOutputs]{}, fmt.Errorf("%s: %w", j.node.PNID(), err)
	}
	want := j.want()
	detail := fmt.Sprintf("%s %s: %s; want %s", j.node.PNID(), j.path, have, want)
	if have != want {
		return engine.Verdict[putOutputs]{State: engine.NotApplied, Detail: detail}, nil
	}
	return engine.Verdict[putOutputs]{
		State:   engine.Applied,
		Detail:  detail,
		Outputs: putOutputs{Node: j.node.PNID(), Path: j.path, Size: want.size, SHA256: want.sha256},
	}, nil
}

// upload writes content to p with mode: into a temporary file in p's
// folder, then renamed over p, so that p is never seen half written.
func upload(c *sftp.Client, p string, content []byte, mode fs.FileMode) error {
	suffix := make([]byte, 6)
	if _, err := rand.Read(suffix); err != nil {
		return fmt.Errorf("temporary name: %w", err)
	}
	tmp := path.Join(path.Dir(p), "."+path.Base(p)+".runbook-"+hex.EncodeToString(suffix))
	f, err := c.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("write %s: its folder %s does not exist", p, path.Dir(p))
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			_ = c.Remove(tmp)
		}
	}()
	if _, err := f.Write(content); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := c.Chmod(tmp, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if _, ok := c.HasExtension("posix-rename@openssh.com"); ok {
		err = c.PosixRename(tmp, p)
	} else {
		// SFTP v3 rename does not replace: remove first.
		if err = c.Remove(p); err == nil || errors.Is(err, fs.ErrNotExist) {
			err = c.Rename(tmp, p)
		}
	}
	if err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, p, err)
	}
	done = true
	return nil
}

// download copies remote file p to local file dst (mode 0600, written
// atomically) and returns its size and SHA-256.
func download(c *sftp.Client, p, dst string) (int64, string, error) {
	src, err := c.Open(p)
	if err != nil {
		return 0, "", fmt.Errorf("open %s: %w", p, err)
	}
	defer src.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return 0, "", fmt.Errorf("create folder: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*")
	if err != nil {
		return 0, "", fmt.Errorf("create file: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), src)
	if err != nil {
		return 0, "", fmt.Errorf("read %s: %w", p, err)
	}
	if err := f.Sync(); err != nil {
		return 0, "", fmt.Errorf("sync %s: %w", dst, err)
	}
	if err := f.Close(); err != nil {
		return 0, "", fmt.Errorf("write %s: %w", dst, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return 0, "", fmt.Errorf("write %s: %w", dst, err)
	}
	ok = true
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

func runGet(ctx context.Context, env *engine.Env, p *getParams) (getOutputs, error) {
	if err := checkRemotePath(p.Path); err != nil {
		return getOutputs{}, err
	}
	to := p.To
	if to == "" {
		to = path.Base(p.Path)
	}
	dst, err := inRunDir(env, to)
	if err != nil {
		return getOutputs{}, err
	}
	n, err := conn.Node(env, p.Node)
	if err != nil {
		return getOutputs{}, err
	}
	c, err := n.SFTP(ctx)
	if err != nil {
		return getOutputs{}, fmt.Errorf("%s: sftp: %w", n.PNID(), err)
	}
	fi, err := c.Stat(p.Path)
	if err != nil {
		return getOutputs{}, fmt.Errorf("%s: stat %s: %w", n.PNID(), p.Path, err)
	}
	if !fi.Mode().IsRegular() {
		return getOutputs{}, fmt.Errorf("%s: %s is not a regular file", n.PNID(), p.Path)
	}
	size, sum, err := download(c, p.Path, dst)
	if err != nil {
		return getOutputs{}, fmt.Errorf("%s: %w", n.PNID(), err)
	}
	out := getOutputs{File: dst, Size: size, SHA256: sum}
	if size < contentLimit {
		data, err := os.ReadFile(dst)
		if err != nil {
			return getOutputs{}, fmt.Errorf("read %s: %w", dst, err)
		}
		if isText(data) && !holdsPrivateKey(data) {
			out.Content = Redact(env, string(data))
		}
	}
	return out, nil
}

// isText reports whether data is UTF-8 text without NUL bytes.
func isText(data []byte) bool {
	return utf8.Valid(data) && !strings.ContainsRune(string(data), 0)
}

// holdsPrivateKey reports whether data holds a PEM private key, which must
// not reach outputs (they are journaled).
func holdsPrivateKey(data []byte) bool {
	return strings.Contains(string(data), "PRIVATE KEY-----")
}

// inRunDir resolves a name inside the run folder, refusing one that would
// leave it.
func inRunDir(env *engine.Env, name string) (string, error) {
	if env.RunDir == "" {
		return "", errors.New("to: the run has no run folder")
	}
	if filepath.IsAbs(name) || !filepath.IsLocal(filepath.FromSlash(name)) {
		return "", fmt.Errorf("to: %q is not a name inside the run folder", name)
	}
	return filepath.Join(env.RunDir, filepath.FromSlash(name)), nil
}

// Restore puts back the file that sftp.put's backup in backupDir saved, on
// node n: its content and mode as they were, or no file when there was
// none. It is idempotent.
func Restore(ctx context.Context, n *target.Node, backupDir string) error {
	data, err := os.ReadFile(filepath.Join(backupDir, PutBackupFile))
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	var rec putBackup
	if err := json.Unmarshal(data, &rec); err != nil {
		return fmt.Errorf("restore: read %s: %w", PutBackupFile, err)
	}
	if err := checkRemotePath(rec.Path); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if !strings.EqualFold(rec.Node, n.PNID()) {
		return fmt.Errorf("restore: the backup is of node %s, not %s", rec.Node, n.PNID())
	}
	c, err := n.SFTP(ctx)
	if err != nil {
		return fmt.Errorf("restore: %s: sftp: %w", n.PNID(), err)
	}
	if !rec.Existed {
		if err := c.Remove(rec.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("restore: %s: remove %s: %w", n.PNID(), rec.Path, err)
		}
		return nil
	}
	content, err := os.ReadFile(filepath.Join(backupDir, PutBackupContent))
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	sum := sha256.Sum256(content)
	if hex.EncodeToString(sum[:]) != rec.SHA256 {
		return fmt.Errorf("restore: %s does not match the SHA-256 the backup recorded", PutBackupContent)
	}
	mode, err := parseMode(rec.Mode)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := upload(c, rec.Path, content, mode); err != nil {
		return fmt.Errorf("restore: %s: %w", n.PNID(), err)
	}
	return nil
}
