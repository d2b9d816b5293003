package tars

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

// AdminServant and AdminAdapter are the names tarsnode uses for the admin servant on the local endpoint.
const (
	AdminServant = "AdminObj"
	AdminAdapter = "AdminAdapter"
)

// command is one operator command of AdminObj.notify.
type command struct {
	usage, help string
	run         func(ctx context.Context, args []string) string
}

// Command adds an operator command to AdminObj.notify: name, usage (its arguments, "" for none) and help (one
// line) are listed by tars.help, and run answers the command split on spaces. Call it before Run.
func (a *App) Command(name, usage, help string, run func(ctx context.Context, args []string) string) {
	a.commands[name] = command{strings.TrimSpace(name + " " + usage), help, run}
}

// Status adds a line "label: value" to what tars.viewstatus shows.
func (a *App) Status(label string, value func() any) {
	a.status = append(a.status, func() string { return fmt.Sprintf("%s: %v\n", label, value()) })
}

// adminObj serves AdminObj (AdminF): shutdown and the operator commands.
func (a *App) adminObj() {
	a.Command("tars.help", "", "lists the commands", func(context.Context, []string) string {
		var b strings.Builder
		for _, name := range slices.Sorted(maps.Keys(a.commands)) {
			fmt.Fprintf(&b, "%s: %s\n", a.commands[name].usage, a.commands[name].help)
		}
		return b.String()
	})
	a.Command("tars.viewversion", "", "shows the build version", func(context.Context, []string) string { return a.version() })
	a.Command("tars.setloglevel", "INFO|WARN|ERROR|DEBUG|NONE", "changes the log level", func(_ context.Context, args []string) string {
		if len(args) != 1 {
			return "tars.setloglevel: want one level: INFO, WARN, ERROR, DEBUG or NONE"
		} else if err := a.logs.SetLevel(args[0]); err != nil {
			return "tars.setloglevel: " + err.Error()
		}
		return "tars.setloglevel succ"
	})
	a.Command("tars.loadconfig", "FILE", "pulls FILE from the config service", func(ctx context.Context, args []string) string {
		if len(args) != 1 {
			return "tars.loadconfig: want one file name"
		} else if a.config == nil {
			return "tars.loadconfig: no config server configured (/tars/application/server<config>)"
		} else if res, err := a.pull(ctx, args[0]); err != nil {
			return "tars.loadconfig " + args[0] + ": " + err.Error()
		} else {
			return res
		}
	})
	a.Command("tars.viewstatus", "", "shows the server's state", func(context.Context, []string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "server: %s.%s\nversion: %s\npid: %d\nuptime: %s\nloglevel: %s\nadapters: %d\n", a.cfg.App, a.cfg.Server,
			a.version(), os.Getpid(), time.Since(a.started).Round(time.Second), a.logs.Level(), len(a.adapters))
		for _, line := range a.status {
			b.WriteString(line())
		}
		fmt.Fprintf(&b, "tars calls: %d\n", a.srv.calls.Load())
		return b.String()
	})
	a.Command("tars.connection", "", "shows the connections open on each adapter", func(context.Context, []string) string {
		var b strings.Builder
		for _, s := range a.Adapters() {
			fmt.Fprintf(&b, "%s %s (%s): %d connections, maxconns %d, refused %d, denied %d\n",
				s.Name, s.Addr, s.Protocol, s.Conns, s.MaxConns, s.Refused, s.Denied)
		}
		return b.String()
	})
	a.srv.Handle(AdminServant, "shutdown", func(ctx context.Context, cur *Current, in *Args, out *Results) (int32, error) {
		a.log.Info("shutdown requested through AdminObj", "peer", cur.RemoteAddr.String())
		a.stop() // the drain answers this call before closing its connection
		return Success, nil
	})
	a.srv.Handle(AdminServant, "notify", func(ctx context.Context, cur *Current, in *Args, out *Results) (int32, error) {
		cmd, err := in.String(1, "command")
		if err != nil {
			return 0, err
		}
		a.log.Info("AdminObj notify", "command", cmd, "peer", cur.RemoteAddr.String())
		answer := "empty command; tars.help lists the commands"
		if f := strings.Fields(cmd); len(f) > 0 {
			if c, ok := a.commands[f[0]]; ok {
				answer = c.run(ctx, f[1:])
			} else {
				answer = fmt.Sprintf("unknown command %q; tars.help lists the commands", f[0])
			}
		}
		out.PutString(0, "", answer)
		return Success, nil
	})
}

// checkConfigName refuses a file name that could write outside the base
// path: the config service names files, never paths.
func checkConfigName(name string) error {
	if name == "" || strings.ContainsAny(name, `/\`) || strings.Contains(name, "..") ||
		strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return fmt.Errorf("file name %q is not a bare name (no path separator, \"..\" or control character)", name)
	}
	return nil
}

// pull fetches name from the config service (ConfigF loadConfig) and writes it atomically under the base
// path; on any failure the file already there is kept. A file that parses as a config is then given to
// RunOptions.Apply, whose answer is added to the result.
func (a *App) pull(ctx context.Context, name string) (res string, err error) {
	defer func() {
		if err != nil {
			a.log.Error("config file not pulled; the old file is kept", "file", name, "err", err)
		} else {
			a.log.Info("pulled a config file", "file", name, "result", res)
		}
	}()
	if err := checkConfigName(name); err != nil {
		return "", err
	}
	var ret int32
	var text string
	err = a.config.Invoke(ctx, "loadConfig", func(in *Results) {
		in.PutString(1, "app", a.cfg.App)
		in.PutString(2, "server", a.cfg.Server)
		in.PutString(3, "filename", name)
	}, func(out *Args) (err error) {
		if ret, err = out.Int32(0, ""); err != nil || ret != 0 {
			return err
		}
		text, err = out.String(4, "config")
		return err
	})
	if err == nil && ret != 0 {
		err = fmt.Errorf("loadConfig(%s, %s, %s) returned %d (no such file?)", a.cfg.App, a.cfg.Server, name, ret)
	}
	if err != nil {
		return "", fmt.Errorf("config service %s: %w", a.config.Name(), err)
	}
	dir := cmp.Or(a.cfg.BasePath, ".")
	path := filepath.Join(dir, name)
	if err := writeAtomic(dir, name, text); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	res = fmt.Sprintf("[succ] get remote config: %s (%d bytes to %s)", name, len(text), path)
	if c, err := ParseConf(name, []byte(text)); err == nil && a.apply != nil {
		if applied, err := a.apply(name, c); err != nil {
			res += "; not applied: " + err.Error()
		} else {
			res += "; " + applied
		}
	}
	return res, nil
}

// writeAtomic writes dir/name through a temporary file, so a reader sees
// the old file or the new one, never a part.
func writeAtomic(dir, name, text string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return err
	}
	_, err = tmp.WriteString(text)
	if err = errors.Join(err, tmp.Sync(), tmp.Close()); err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// version returns Config.Version, or the module version the build stamped, which holds the VCS revision.
func (a *App) version() string {
	if info, ok := debug.ReadBuildInfo(); ok && a.cfg.Version == "" {
		return info.Main.Version
	}
	return cmp.Or(a.cfg.Version, "unknown")
}
