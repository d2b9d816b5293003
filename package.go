package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

func init() { subcommands["package"] = runPackage }

const packageUsage = `usage: websocketserver package [-name WebsocketServer] [-o DIR] [-src DIR | -self]

Builds the server for linux/amd64 and packs NAME.tgz for the Tars web
console's upload: the archive holds a folder NAME/ with the binary NAME in
it, as TarsGo's "make tar" lays it out. The binary is built from the module
in -src with the go command (CGO off, -trimpath); -self packs the running
executable instead, which must be a linux/amd64 build.
`

// runPackage is the package subcommand.
func runPackage(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("package", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() { fmt.Fprint(stderr, packageUsage) }
	name := flags.String("name", "WebsocketServer", "the server name: the binary, its folder and the archive are named after it")
	out := flags.String("o", ".", "the directory NAME.tgz is written to")
	src := flags.String("src", ".", "the module directory to build from")
	self := flags.Bool("self", false, "pack this executable rather than building one")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{}
	}
	if flags.NArg() > 0 {
		return usageError{fmt.Sprintf("package: unexpected argument %q", flags.Arg(0))}
	}
	if *name == "" || *name != filepath.Base(*name) || strings.ContainsAny(*name, `/\`) || *name == "." || *name == ".." {
		return usageError{fmt.Sprintf("package: -name %q: want a plain file name", *name)}
	}

	tmp, err := os.MkdirTemp("", "websocketserver-package-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, *name)
	if *self {
		if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
			return fmt.Errorf("package -self: this executable is %s/%s; a Tars node wants linux/amd64 (build from source instead)", runtime.GOOS, runtime.GOARCH)
		}
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("package -self: %w", err)
		}
		bin = exe
	} else {
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, ".")
		cmd.Dir = *src
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0")
		cmd.Stdout, cmd.Stderr = stderr, stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("package: go build in %s: %w", *src, err)
		}
	}
	path := filepath.Join(*out, *name+".tgz")
	if err := writeTgz(path, *name, bin); err != nil {
		return fmt.Errorf("package: %w", err)
	}
	fmt.Fprintf(stdout, "%s: %s/%s (linux/amd64)\n", path, *name, *name)
	return nil
}

// writeTgz writes a gzipped tar with the folder name/ holding the file bin
// as name/name, atomically.
func writeTgz(path, name, bin string) (err error) {
	in, err := os.Open(bin)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	now := time.Now()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	if err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, ModTime: now, Format: tar.FormatPAX}); err != nil {
		return err
	}
	if err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name + "/" + name, Mode: 0o755, Size: st.Size(), ModTime: now, Format: tar.FormatPAX}); err != nil {
		return err
	}
	if _, err = io.Copy(tw, in); err != nil {
		return fmt.Errorf("%s: %w", bin, err)
	}
	if err = tw.Close(); err != nil {
		return err
	}
	if err = gz.Close(); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
