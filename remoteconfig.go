package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tarsws/websocketserver/tars"
)

// configPuller fetches files from the Tars config service (ConfigF
// loadConfig, framework.tars) into the server's base path.
type configPuller struct {
	proxy       *tars.ObjProxy
	app, server string
	dir         string // basepath; "" is the working directory
}

// checkConfigName refuses a file name that could write outside the base
// path: the config service names files, never paths.
func checkConfigName(name string) error {
	switch {
	case name == "":
		return errors.New("empty file name")
	case strings.ContainsAny(name, `/\`) || name != filepath.Base(name):
		return fmt.Errorf("file name %q has a path separator; want a bare name", name)
	case strings.Contains(name, ".."):
		return fmt.Errorf("file name %q contains \"..\"", name)
	case strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return fmt.Errorf("file name %q has a control character", name)
	}
	return nil
}

// Load fetches name and writes it atomically under the base path. On any
// failure the file already there is left as it was.
func (c *configPuller) Load(ctx context.Context, name string) (string, error) {
	if err := checkConfigName(name); err != nil {
		return "", err
	}
	var ret int32
	var text string
	err := c.proxy.Invoke(ctx, "loadConfig",
		func(in *tars.Results) {
			in.PutString(1, "app", c.app)
			in.PutString(2, "server", c.server)
			in.PutString(3, "filename", name)
		},
		func(out *tars.Args) (err error) {
			if ret, err = out.Int32(0, ""); err != nil || ret != 0 {
				return err
			}
			text, err = out.String(4, "config")
			return err
		})
	if err != nil {
		return "", fmt.Errorf("config service %s: %w", c.proxy.Name(), err)
	}
	if ret != 0 {
		return "", fmt.Errorf("config service %s: loadConfig(%s, %s, %s) returned %d (no such file?)", c.proxy.Name(), c.app, c.server, name, ret)
	}
	dir := c.dir
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	if err := writeFileAtomic(path, []byte(text), true); err != nil {
		return "", err
	}
	return fmt.Sprintf("[succ] get remote config: %s (%d bytes to %s)", name, len(text), path), nil
}
