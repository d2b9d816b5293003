package main

import (
	"archive/tar"
	"bytes"
	"cmp"
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

	"github.com/tarsws/websocketserver/tars"
)

// newFlags returns a subcommand's flags, reporting to stderr; -h prints usage, then the flags.
func newFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	flags := flag.NewFlagSet(name, flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprint(stderr, usage)
		flags.PrintDefaults()
	}
	return flags
}

// flagError is a command's error for flags that do not parse: none for -h, else a usage error
// (the parser has said what is wrong).
func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return usageError("")
}

// runPush pushes one message through PushObj.
func runPush(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags := newFlags("push", `usage: websocketserver push [-config FILE] [-proxy PROXY] [-room ROOM | -all] [-token T] [-tup] TEXT

Pushes TEXT over Tars RPC and prints "delivered N", the connections it was queued for.

`, stderr)
	config := flags.String("config", "", "the server's config file (default: the embedded default.conf)")
	proxy := flags.String("proxy", "", "PushObj's proxy string, App.Server.PushObj@tcp -h HOST -p PORT (default: from the config)")
	room := flags.String("room", "", "the room to push to (PushObj.pushByRoom)")
	all := flags.Bool("all", false, "push to every connection (PushObj.pushAll)")
	token := flags.String("token", "", "the push token, when the server has push-token set")
	tup := flags.Bool("tup", false, "call in the TUP layout (version 3) rather than TARS (version 1)")
	if err := flags.Parse(args); err != nil {
		return flagError(err)
	}
	switch {
	case flags.NArg() == 0:
		return usageError("push: no TEXT to push")
	case flags.NArg() > 1:
		return usageError(fmt.Sprintf("push: unexpected argument %q (quote TEXT if it has spaces)", flags.Arg(1)))
	case *all == (*room != ""):
		return usageError("push: want exactly one of -room ROOM and -all")
	case flags.Arg(0) == "":
		return usageError("push: empty TEXT")
	}
	_, cfg, name, err := loadConf(*config)
	if err != nil {
		return err
	}
	if *proxy == "" { // the config's own PushObj, reached on this machine
		servant := cfg.ServantName("PushObj")
		ad, ok := cfg.Adapter(servant)
		if !ok {
			return fmt.Errorf("%s: no adapter serves %s; give -proxy", name, servant)
		}
		*proxy = servant + "@" + ad.Endpoint.Dialable("").String()
	}
	// A bare servant name is found through the config's registry.
	client := tars.NewClient(tars.ClientOptions{SyncTimeout: cfg.SyncInvokeTimeout,
		MaxPacket: cfg.MaxPacket, Locator: cfg.Locator})
	defer client.Close()
	p, err := client.Proxy(*proxy)
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	if *tup {
		p = p.WithVersion(tars.VersionTUP)
	}
	if *token != "" {
		p = p.WithContext(map[string]string{pushTokenKey: *token})
	}
	fn, tag := "pushAll", uint8(1) // message's tag; delivered is the next
	if *room != "" {
		fn, tag = "pushByRoom", 2
	}
	var n int32
	err = p.Invoke(ctx, fn,
		func(in *tars.Results) {
			if *room != "" {
				in.PutString(1, "roomNum", *room)
			}
			in.PutString(tag, "message", flags.Arg(0))
		},
		func(out *tars.Args) (err error) {
			if ret, err := out.Int32(0, ""); err != nil || ret != 0 {
				return cmp.Or(err, fmt.Errorf("%s returned %d", fn, ret))
			}
			n, err = out.Int32(tag+1, "delivered")
			return err
		})
	if err == nil {
		fmt.Fprintf(stdout, "delivered %d\n", n)
	}
	return err
}

// runPackage packs NAME.tgz for the Tars web console's upload.
func runPackage(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags := newFlags("package", `usage: websocketserver package [-name WebsocketServer] [-o DIR] [-src DIR | -self]

Packs NAME.tgz, NAME/NAME built for linux/amd64, for the Tars web console's upload.

`, stderr)
	name := flags.String("name", "WebsocketServer", "the server name: the binary, its folder and the archive are named after it")
	out := flags.String("o", ".", "the directory NAME.tgz is written to")
	src := flags.String("src", ".", "the module directory to build from (CGO off, -trimpath)")
	self := flags.Bool("self", false, "pack this executable, which must be a linux/amd64 build, rather than building one")
	if err := flags.Parse(args); err != nil {
		return flagError(err)
	}
	if flags.NArg() > 0 {
		return usageError(fmt.Sprintf("package: unexpected argument %q", flags.Arg(0)))
	}
	if !filepath.IsLocal(*name) || strings.ContainsAny(*name, `/\`) || *name == "." {
		return usageError(fmt.Sprintf("package: -name %q: want a plain file name", *name))
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
		if bin, err = os.Executable(); err != nil {
			return fmt.Errorf("package -self: %w", err)
		}
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

// writeTgz writes, atomically, a gzipped tar holding the file bin as name/name.
func writeTgz(path, name, bin string) error {
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	dir := &tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, ModTime: time.Now(), Format: tar.FormatPAX}
	file := *dir
	file.Typeflag, file.Name, file.Size = tar.TypeReg, name+"/"+name, int64(len(data))
	if err = errors.Join(tw.WriteHeader(dir), tw.WriteHeader(&file)); err == nil {
		_, err = tw.Write(data)
	}
	if err = errors.Join(err, tw.Close(), gz.Close()); err == nil {
		err = writeFileAtomic(path, buf.Bytes())
	}
	return err
}
