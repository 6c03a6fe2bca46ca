package sshd

import (
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/pkg/sftp"
)

// rootFS serves SFTP requests from an os.Root. The request server hands it
// absolute, cleaned paths ("/../x" arrives as "/x"); os.Root refuses any
// symbolic link that resolves outside the tree.
type rootFS struct {
	root *os.Root
}

// Fileread opens a file for a download.
func (r *rootFS) Fileread(req *sftp.Request) (io.ReaderAt, error) {
	f, err := r.root.Open(rel(req.Filepath))
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.IsDir() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: req.Filepath, Err: syscall.EISDIR}
	}
	return f, nil
}

// Filewrite opens a file for an upload.
func (r *rootFS) Filewrite(req *sftp.Request) (io.WriterAt, error) {
	return r.openFile(req)
}

// OpenFile opens a file for reading and writing through one handle.
func (r *rootFS) OpenFile(req *sftp.Request) (sftp.WriterAtReaderAt, error) {
	return r.openFile(req)
}

func (r *rootFS) openFile(req *sftp.Request) (*os.File, error) {
	pf := req.Pflags()
	var flag int
	switch {
	case pf.Read && pf.Write:
		flag = os.O_RDWR
	case pf.Write:
		flag = os.O_WRONLY
	default:
		flag = os.O_RDONLY
	}
	// O_APPEND is left out on purpose: clients send explicit offsets and
	// WriteAt refuses files opened for appending.
	if pf.Creat {
		flag |= os.O_CREATE
	}
	if pf.Trunc {
		flag |= os.O_TRUNC
	}
	if pf.Excl {
		flag |= os.O_EXCL
	}
	perm := os.FileMode(0o644)
	if req.AttrFlags().Permissions {
		perm = req.Attributes().FileMode().Perm()
	}
	return r.root.OpenFile(rel(req.Filepath), flag, perm)
}

// Filecmd handles Setstat, Rename, Rmdir, Mkdir, Link, Symlink and Remove.
func (r *rootFS) Filecmd(req *sftp.Request) error {
	name := rel(req.Filepath)
	switch req.Method {
	case "Setstat":
		return r.setstat(req)
	case "Rename":
		// SFTP v3 rename never replaces an existing file.
		if _, err := r.root.Lstat(rel(req.Target)); err == nil {
			return &fs.PathError{Op: "rename", Path: req.Target, Err: fs.ErrExist}
		}
		return r.root.Rename(name, rel(req.Target))
	case "Rmdir":
		fi, err := r.root.Lstat(name)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return &fs.PathError{Op: "rmdir", Path: req.Filepath, Err: syscall.ENOTDIR}
		}
		return r.root.Remove(name)
	case "Mkdir":
		return r.root.Mkdir(name, 0o755)
	case "Remove":
		fi, err := r.root.Lstat(name)
		if err != nil {
			return err
		}
		if fi.IsDir() {
			return &fs.PathError{Op: "remove", Path: req.Filepath, Err: syscall.EISDIR}
		}
		return r.root.Remove(name)
	case "Symlink":
		// The request server puts the link's target in Filepath, unchanged,
		// and the new link's path in Target.
		return r.root.Symlink(req.Filepath, rel(req.Target))
	case "Link":
		return r.root.Link(name, rel(req.Target))
	}
	return sftp.ErrSSHFxOpUnsupported
}

// PosixRename renames, replacing the target (posix-rename@openssh.com).
func (r *rootFS) PosixRename(req *sftp.Request) error {
	return r.root.Rename(rel(req.Filepath), rel(req.Target))
}

// setstat applies size, permissions and times. Ownership changes are accepted
// and ignored: every file of the simulated node belongs to root.
func (r *rootFS) setstat(req *sftp.Request) error {
	name := rel(req.Filepath)
	flags := req.AttrFlags()
	attrs := req.Attributes()
	if _, err := r.root.Stat(name); err != nil {
		return err
	}
	if flags.Size {
		f, err := r.root.OpenFile(name, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		err = f.Truncate(int64(attrs.Size))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	if flags.Permissions {
		if err := r.root.Chmod(name, attrs.FileMode().Perm()); err != nil {
			return err
		}
	}
	if flags.Acmodtime {
		if err := r.root.Chtimes(name, attrs.AccessTime(), attrs.ModTime()); err != nil {
			return err
		}
	}
	return nil
}

// Filelist handles List, Stat and Readlink (the latter through Readlink).
func (r *rootFS) Filelist(req *sftp.Request) (sftp.ListerAt, error) {
	name := rel(req.Filepath)
	switch req.Method {
	case "List":
		f, err := r.root.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		infos, err := f.Readdir(-1)
		if err != nil {
			return nil, err
		}
		slices.SortFunc(infos, func(a, b os.FileInfo) int { return strings.Compare(a.Name(), b.Name()) })
		return lister(infos), nil
	case "Stat":
		fi, err := r.root.Stat(name)
		if err != nil {
			return nil, err
		}
		return lister{fi}, nil
	}
	return nil, sftp.ErrSSHFxOpUnsupported
}

// Lstat stats a path without following a final symbolic link.
func (r *rootFS) Lstat(req *sftp.Request) (sftp.ListerAt, error) {
	fi, err := r.root.Lstat(rel(req.Filepath))
	if err != nil {
		return nil, err
	}
	return lister{fi}, nil
}

// Readlink returns a symbolic link's target as stored.
func (r *rootFS) Readlink(p string) (string, error) {
	return r.root.Readlink(rel(p))
}

// lister serves a fixed list of file infos.
type lister []os.FileInfo

// ListAt copies entries from offset into ls.
func (l lister) ListAt(ls []os.FileInfo, offset int64) (int, error) {
	if offset >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(ls, l[offset:])
	if n < len(ls) {
		return n, io.EOF
	}
	return n, nil
}

// Interface guards.
var (
	_ sftp.OpenFileWriter       = (*rootFS)(nil)
	_ sftp.PosixRenameFileCmder = (*rootFS)(nil)
	_ sftp.LstatFileLister      = (*rootFS)(nil)
	_ sftp.ReadlinkFileLister   = (*rootFS)(nil)
)

// errEscape reports whether err is os.Root refusing a path outside the tree.
func errEscape(err error) bool {
	return err != nil && strings.Contains(err.Error(), "path escapes from parent")
}
