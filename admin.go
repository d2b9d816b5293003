package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

// version is the build version; set it with -ldflags "-X main.version=...".
// When empty, the module version and VCS revision from the build are used.
var version string

// buildVersion returns the version tars.viewversion reports.
func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+dirty"
			}
		}
	}
	if rev != "" {
		v += " " + rev[:min(len(rev), 12)] + modified
	}
	return v
}

// AdminServant and AdminAdapter are the names tarsnode uses for the admin
// servant on the local endpoint.
const (
	AdminServant = "AdminObj"
	AdminAdapter = "AdminAdapter"
)

// adminCommand is one operator command of AdminObj.notify.
type adminCommand struct {
	usage string // the command with its arguments, for tars.help
	help  string // one line
	run   func(ctx context.Context, args []string) string
}

// Admin serves AdminObj (AdminF): shutdown and the operator commands.
type Admin struct {
	app      *App
	commands map[string]adminCommand

	// LoadConfig pulls file from the config service and applies it; nil
	// means no config service is configured. Set it before serving.
	LoadConfig func(ctx context.Context, file string) (string, error)
}

func newAdmin(app *App) *Admin {
	ad := &Admin{app: app}
	ad.commands = map[string]adminCommand{
		"tars.help": {"tars.help", "lists the commands", ad.help},
		"tars.viewversion": {"tars.viewversion", "shows the build version",
			func(context.Context, []string) string { return buildVersion() }},
		"tars.setloglevel": {"tars.setloglevel INFO|WARN|ERROR|DEBUG|NONE", "changes the log level", ad.setLogLevel},
		"tars.loadconfig":  {"tars.loadconfig FILE", "pulls FILE from the config service", ad.loadConfig},
		"tars.viewstatus":  {"tars.viewstatus", "shows the server's state", ad.viewStatus},
		"tars.connection":  {"tars.connection", "shows the connections open on each adapter", ad.connections},
		"ws.rooms":         {"ws.rooms", "lists the rooms with their member counts", ad.rooms},
		"ws.kick":          {"ws.kick ROOM", fmt.Sprintf("closes every connection in ROOM (close code %d)", closeKicked), ad.kick},
		"ws.stats":         {"ws.stats", "shows the WebSocket counters as JSON", ad.stats},
	}
	return ad
}

// Handle adds an operator command; call it before serving.
func (ad *Admin) Handle(name, usage, help string, run func(ctx context.Context, args []string) string) {
	ad.commands[name] = adminCommand{usage, help, run}
}

// register adds AdminObj's functions to s.
func (ad *Admin) register(s *tars.Server) {
	s.Handle(AdminServant, "shutdown", func(ctx context.Context, cur *tars.Current, in *tars.Args, out *tars.Results) (int32, error) {
		ad.app.Log.Info("shutdown requested through AdminObj", "peer", cur.RemoteAddr.String())
		ad.app.Stop() // the drain answers this call before closing its connection
		return tars.Success, nil
	})
	s.Handle(AdminServant, "notify", func(ctx context.Context, cur *tars.Current, in *tars.Args, out *tars.Results) (int32, error) {
		cmd, err := in.String(1, "command")
		if err != nil {
			return 0, err
		}
		ad.app.Log.Info("AdminObj notify", "command", cmd, "peer", cur.RemoteAddr.String())
		out.PutString(0, "", ad.Notify(ctx, cmd))
		return tars.Success, nil
	})
}

// Notify runs one operator command, split on spaces, and returns its answer.
func (ad *Admin) Notify(ctx context.Context, command string) string {
	f := strings.Fields(command)
	if len(f) == 0 {
		return "empty command; tars.help lists the commands"
	}
	c, ok := ad.commands[f[0]]
	if !ok {
		return fmt.Sprintf("unknown command %q; tars.help lists the commands", f[0])
	}
	return c.run(ctx, f[1:])
}

func (ad *Admin) help(context.Context, []string) string {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(ad.commands)) {
		c := ad.commands[name]
		fmt.Fprintf(&b, "%s: %s\n", c.usage, c.help)
	}
	return b.String()
}

func (ad *Admin) setLogLevel(_ context.Context, args []string) string {
	if len(args) != 1 {
		return "tars.setloglevel: want one level: INFO, WARN, ERROR, DEBUG or NONE"
	}
	if err := ad.app.Logs.SetLevel(args[0]); err != nil {
		return "tars.setloglevel: " + err.Error()
	}
	return "tars.setloglevel succ"
}

func (ad *Admin) loadConfig(ctx context.Context, args []string) string {
	if len(args) != 1 {
		return "tars.loadconfig: want one file name"
	}
	if ad.LoadConfig == nil {
		return "tars.loadconfig: no config server configured (/tars/application/server<config>)"
	}
	res, err := ad.LoadConfig(ctx, args[0])
	if err != nil {
		return "tars.loadconfig " + args[0] + ": " + err.Error()
	}
	return res
}

func (ad *Admin) viewStatus(context.Context, []string) string {
	a := ad.app
	st := a.Hub.Counts()
	var b strings.Builder
	fmt.Fprintf(&b, "server: %s.%s\n", a.Conf.App, a.Conf.Server)
	fmt.Fprintf(&b, "version: %s\n", buildVersion())
	fmt.Fprintf(&b, "pid: %d\n", os.Getpid())
	fmt.Fprintf(&b, "uptime: %s\n", time.Since(a.started).Round(time.Second))
	fmt.Fprintf(&b, "loglevel: %s\n", a.Logs.Level())
	fmt.Fprintf(&b, "adapters: %d\n", len(a.Adapters))
	fmt.Fprintf(&b, "websocket connections: %d\n", st.Connections)
	fmt.Fprintf(&b, "rooms: %d\n", len(st.Rooms))
	fmt.Fprintf(&b, "tars calls: %d\n", a.Tars.Calls())
	return b.String()
}

func (ad *Admin) connections(context.Context, []string) string {
	var b strings.Builder
	for _, a := range ad.app.Adapters {
		fmt.Fprintf(&b, "%s %s (%s): %d connections, maxconns %d, refused %d, denied %d\n",
			a.Conf.Name, a.Addr(), a.Conf.Protocol, a.Conns(), a.Conf.MaxConns, a.Refused(), a.Denied())
	}
	return b.String()
}

func (ad *Admin) rooms(context.Context, []string) string {
	st := ad.app.Hub.Counts()
	if len(st.Rooms) == 0 {
		return "no rooms"
	}
	var b strings.Builder
	for _, room := range slices.Sorted(maps.Keys(st.Rooms)) {
		fmt.Fprintf(&b, "%s %d\n", room, st.Rooms[room])
	}
	return b.String()
}

func (ad *Admin) kick(_ context.Context, args []string) string {
	if len(args) != 1 {
		return "ws.kick: want one room name"
	}
	n := ad.app.Hub.Kick(args[0], closeKicked, "kicked by an operator")
	ad.app.Log.Info("kicked a room", "room", args[0], "connections", n)
	return fmt.Sprintf("ws.kick: closed %d connections in room %s", n, args[0])
}

func (ad *Admin) stats(context.Context, []string) string {
	b, err := json.Marshal(ad.app.Hub.Counts())
	if err != nil {
		return "ws.stats: " + err.Error()
	}
	return string(b)
}
