package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/TarsCloud/TarsGo/tars/protocol/res/configf"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/endpointf"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/logf"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/nodef"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/notifyf"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/propertyf"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/statf"
	"github.com/TarsCloud/TarsGo/tars/util/current"
	"github.com/TarsCloud/TarsGo/tars/util/endpoint"

	"github.com/tarsws/websocketserver/interop/testapp"
)

// helloImp is TestApp.Hello as a TarsGo service.
type helloImp struct{}

func (helloImp) Hello(ctx context.Context, no int32, name string) (string, error) {
	emit("hello", "hello", map[string]any{"no": no, "name": name})
	return fmt.Sprintf("hello %s from TarsGo #%d", name, no), nil
}

// orderImp is TestApp.Order, which browsers call through the product: the
// order's total is its quantities' sum, caller the ws.conn of the context.
type orderImp struct{}

func (orderImp) GetOrder(ctx context.Context, id string, items []testapp.Item, order *testapp.Order, caller *string) (int32, error) {
	rc, _ := current.GetRequestContext(ctx)
	*caller = rc["ws.conn"]
	*order = testapp.Order{Id: id, Items: items}
	for _, it := range items {
		order.Total += it.Qty
	}
	emit("order", "getOrder", map[string]any{"id": id, "items": len(items), "caller": *caller})
	return 0, nil
}

func (orderImp) Secret(ctx context.Context) (int32, error) {
	emit("order", "secret", nil)
	return 0, nil
}

// hookImp is Websocket.Hook (tars/Hook.tars), asked by the product before a
// browser's subscribe or publish: room vip is refused, "darn" is masked.
type hookImp struct{}

func (hookImp) OnSubscribe(ctx context.Context, connId, name, room, token string, reason *string) (int32, error) {
	emit("hook", "onSubscribe", map[string]any{"connId": connId, "name": name, "room": room})
	if room == "vip" {
		*reason = "room vip is for members only"
		return 1, nil
	}
	return 0, nil
}

func (hookImp) OnPublish(ctx context.Context, connId, name, room, text string, reason, replacement *string) (int32, error) {
	emit("hook", "onPublish", map[string]any{"connId": connId, "room": room, "text": text})
	if strings.Contains(text, "darn") {
		*replacement = strings.ReplaceAll(text, "darn", "d**n")
		return 2, nil
	}
	return 0, nil
}

// nodeImp records heartbeats as tarsnode's ServerF would receive them.
type nodeImp struct{ last atomic.Int64 }

func (n *nodeImp) beat(fn string, si *nodef.ServerInfo) (int32, error) {
	n.last.Store(time.Now().Unix())
	emit("node", fn, map[string]any{"app": si.Application, "server": si.ServerName, "adapter": si.Adapter, "pid": si.Pid})
	return 0, nil
}

func (n *nodeImp) KeepAlive(ctx context.Context, si *nodef.ServerInfo) (int32, error) {
	return n.beat("keepAlive", si)
}

func (n *nodeImp) KeepActiving(ctx context.Context, si *nodef.ServerInfo) (int32, error) {
	return n.beat("keepActiving", si)
}

func (n *nodeImp) ReportVersion(ctx context.Context, app, server, version string) (int32, error) {
	emit("node", "reportVersion", map[string]any{"app": app, "server": server, "version": version})
	return 0, nil
}

func (n *nodeImp) GetLatestKeepAliveTime(ctx context.Context) (uint32, error) {
	emit("node", "getLatestKeepAliveTime", nil)
	return uint32(n.last.Load()), nil
}

// parseRegistry turns "obj=ep:ep" config lines into the registry's table.
func parseRegistry(lines map[string]string) (map[string][]endpointf.EndpointF, error) {
	table := map[string][]endpointf.EndpointF{}
	for obj, eps := range lines {
		for _, s := range strings.Split(eps, ":") {
			if strings.TrimSpace(s) == "" {
				continue
			}
			ep := endpoint.Parse(s)
			if ep.Host == "" || ep.Port == 0 {
				return nil, fmt.Errorf("registry entry %s: endpoint %q needs -h and -p", obj, s)
			}
			table[obj] = append(table[obj], endpoint.Endpoint2tars(ep))
		}
	}
	return table, nil
}

// registryImp answers QueryF from a fixed table; it knows no inactive
// endpoints. An unknown object gets an empty list and, where there is a
// return code, -1.
type registryImp struct {
	table map[string][]endpointf.EndpointF
}

func (r registryImp) lookup(fn, id string, extra map[string]any) ([]endpointf.EndpointF, int32) {
	eps := r.table[id]
	fields := map[string]any{"id": id, "found": len(eps)}
	for k, v := range extra {
		fields[k] = v
	}
	emit("registry", fn, fields)
	if eps == nil {
		return []endpointf.EndpointF{}, -1
	}
	return eps, 0
}

func (r registryImp) FindObjectById(ctx context.Context, id string) ([]endpointf.EndpointF, error) {
	eps, _ := r.lookup("findObjectById", id, nil)
	return eps, nil
}

func (r registryImp) both(fn, id string, extra map[string]any, active, inactive *[]endpointf.EndpointF) (int32, error) {
	eps, ret := r.lookup(fn, id, extra)
	*active = eps
	*inactive = []endpointf.EndpointF{}
	return ret, nil
}

func (r registryImp) FindObjectById4Any(ctx context.Context, id string, active, inactive *[]endpointf.EndpointF) (int32, error) {
	return r.both("findObjectById4Any", id, nil, active, inactive)
}

func (r registryImp) FindObjectById4All(ctx context.Context, id string, active, inactive *[]endpointf.EndpointF) (int32, error) {
	return r.both("findObjectById4All", id, nil, active, inactive)
}

func (r registryImp) FindObjectByIdInSameGroup(ctx context.Context, id string, active, inactive *[]endpointf.EndpointF) (int32, error) {
	return r.both("findObjectByIdInSameGroup", id, nil, active, inactive)
}

func (r registryImp) FindObjectByIdInSameStation(ctx context.Context, id, station string, active, inactive *[]endpointf.EndpointF) (int32, error) {
	return r.both("findObjectByIdInSameStation", id, map[string]any{"station": station}, active, inactive)
}

func (r registryImp) FindObjectByIdInSameSet(ctx context.Context, id, setID string, active, inactive *[]endpointf.EndpointF) (int32, error) {
	return r.both("findObjectByIdInSameSet", id, map[string]any{"setId": setID}, active, inactive)
}

// configImp serves the files of one directory, by base name. Like
// tarsconfig, a missing file is a non-zero return, not an RPC error.
type configImp struct{ dir string }

func (c configImp) read(fn, app, server, filename string, extra map[string]any, out *string) (int32, error) {
	fields := map[string]any{"app": app, "server": server, "filename": filename}
	for k, v := range extra {
		fields[k] = v
	}
	ret := int32(0)
	if c.dir == "" || filename == "" || filename != filepath.Base(filename) {
		ret = -1
	} else if b, err := os.ReadFile(filepath.Join(c.dir, filename)); err != nil {
		ret = -1
	} else {
		*out = string(b)
	}
	fields["ret"] = ret
	fields["bytes"] = len(*out)
	emit("config", fn, fields)
	return ret, nil
}

func (c configImp) list(fn string, fields map[string]any, out *[]string) (int32, error) {
	emit("config", fn, fields)
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		*out = []string{}
		return -1, nil
	}
	names := []string{}
	for _, e := range entries {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	*out = names
	return 0, nil
}

func (c configImp) ListConfig(ctx context.Context, app, server string, vf *[]string) (int32, error) {
	return c.list("listConfig", map[string]any{"app": app, "server": server}, vf)
}

func (c configImp) LoadConfig(ctx context.Context, app, server, filename string, config *string) (int32, error) {
	return c.read("loadConfig", app, server, filename, nil, config)
}

func (c configImp) LoadConfigByHost(ctx context.Context, appServer, filename, host string, config *string) (int32, error) {
	return c.read("loadConfigByHost", appServer, "", filename, map[string]any{"host": host}, config)
}

func (c configImp) CheckConfig(ctx context.Context, appServer, filename, host string, result *string) (int32, error) {
	return c.read("checkConfig", appServer, "", filename, map[string]any{"host": host}, result)
}

func (c configImp) ListConfigByInfo(ctx context.Context, info *configf.ConfigInfo, vf *[]string) (int32, error) {
	return c.list("listConfigByInfo", map[string]any{"app": info.Appname, "server": info.Servername}, vf)
}

func (c configImp) LoadConfigByInfo(ctx context.Context, info *configf.ConfigInfo, config *string) (int32, error) {
	return c.read("loadConfigByInfo", info.Appname, info.Servername, info.Filename,
		map[string]any{"appOnly": info.BAppOnly, "host": info.Host, "setdivision": info.Setdivision}, config)
}

func (c configImp) CheckConfigByInfo(ctx context.Context, info *configf.ConfigInfo, result *string) (int32, error) {
	return c.read("checkConfigByInfo", info.Appname, info.Servername, info.Filename, nil, result)
}

func (c configImp) ListAllConfigByInfo(ctx context.Context, info *configf.GetConfigListInfo, vf *[]string) (int32, error) {
	return c.list("listAllConfigByInfo", map[string]any{"app": info.Appname, "server": info.Servername}, vf)
}

// statImp records call statistics, one line per (caller, callee, function).
type statImp struct{}

func (statImp) ReportMicMsg(ctx context.Context, msg map[statf.StatMicMsgHead]statf.StatMicMsgBody, fromClient bool) (int32, error) {
	for h, b := range msg {
		emit("stat", "reportMicMsg", map[string]any{
			"master": h.MasterName, "slave": h.SlaveName, "interface": h.InterfaceName,
			"masterIp": h.MasterIp, "slaveIp": h.SlaveIp, "slavePort": h.SlavePort,
			"returnValue": h.ReturnValue, "count": b.Count, "timeoutCount": b.TimeoutCount,
			"execCount": b.ExecCount, "totalRspTime": b.TotalRspTime, "fromClient": fromClient,
		})
	}
	return 0, nil
}

func (statImp) ReportSampleMsg(ctx context.Context, msg []statf.StatSampleMsg) (int32, error) {
	emit("stat", "reportSampleMsg", map[string]any{"count": len(msg)})
	return 0, nil
}

// propertyImp records property reports, one line per property.
type propertyImp struct{}

func (propertyImp) ReportPropMsg(ctx context.Context, msg map[propertyf.StatPropMsgHead]propertyf.StatPropMsgBody) (int32, error) {
	for h, b := range msg {
		values := map[string]string{}
		for _, v := range b.VInfo {
			values[v.Policy] = v.Value
		}
		emit("property", "reportPropMsg", map[string]any{
			"module": h.ModuleName, "ip": h.Ip, "property": h.PropertyName, "values": values,
		})
	}
	return 0, nil
}

// notifyImp records notifications a server reports (start, stop, errors).
type notifyImp struct{}

func (notifyImp) ReportNotifyInfo(ctx context.Context, info *notifyf.ReportInfo) error {
	emit("notify", "reportNotifyInfo", map[string]any{
		"type": int32(info.EType), "app": info.SApp, "server": info.SServer, "message": info.SMessage,
		"level": int32(info.ELevel),
	})
	return nil
}

// logImp records remote log lines.
type logImp struct{}

func (logImp) Logger(ctx context.Context, app, server, file, format string, buffer []string) error {
	emit("log", "logger", map[string]any{"app": app, "server": server, "file": file, "lines": buffer})
	return nil
}

func (logImp) LoggerbyInfo(ctx context.Context, info *logf.LogInfo, buffer []string) error {
	emit("log", "loggerbyInfo", map[string]any{"app": info.Appname, "server": info.Servername, "file": info.SFilename, "lines": buffer})
	return nil
}
