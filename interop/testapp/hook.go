package testapp

import (
	"context"
	"fmt"

	"github.com/TarsCloud/TarsGo/tars/protocol/res/requestf"
)

// HookServantWithContext is Websocket.Hook (tars/Hook.tars), the hook a
// product asks before a browser's subscribe and publish.
type HookServantWithContext interface {
	OnSubscribe(tarsCtx context.Context, connId string, name string, room string, token string, reason *string) (ret int32, err error)
	OnPublish(tarsCtx context.Context, connId string, name string, room string, text string, reason *string, replacement *string) (ret int32, err error)
}

// Hook is the dispatcher of Websocket.Hook.
type Hook struct{ proxy }

// Dispatch serves a request for Websocket.Hook; val implements
// HookServantWithContext.
func (obj *Hook) Dispatch(tarsCtx context.Context, val interface{}, tarsReq *requestf.RequestPacket, tarsResp *requestf.ResponsePacket, withContext bool) error {
	imp, ok := val.(HookServantWithContext)
	if !ok || !withContext {
		return fmt.Errorf("testapp: Hook needs a HookServantWithContext added with AddServantWithContext")
	}
	fn := tarsReq.SFuncName
	if fn != "onSubscribe" && fn != "onPublish" {
		return fmt.Errorf("func mismatch")
	}
	return serve(tarsCtx, tarsReq, tarsResp, func(in *argReader, out *argWriter) error {
		var connId, name, room, last, reason, replacement string
		key := map[string]string{"onSubscribe": "token", "onPublish": "text"}[fn]
		for i, p := range []struct {
			name string
			v    *string
		}{{"connId", &connId}, {"name", &name}, {"room", &room}, {key, &last}} {
			if err := in.get(byte(i+1), p.name, readString(p.v)); err != nil {
				return err
			}
		}
		var ret int32
		var err error
		if fn == "onSubscribe" {
			ret, err = imp.OnSubscribe(tarsCtx, connId, name, room, last, &reason)
		} else {
			ret, err = imp.OnPublish(tarsCtx, connId, name, room, last, &reason, &replacement)
		}
		if err != nil {
			return err
		}
		if err = out.put(0, writeInt32(ret), "", "tars_ret"); err == nil {
			err = out.put(5, writeString(reason), "reason")
		}
		if err == nil && fn == "onPublish" {
			err = out.put(6, writeString(replacement), "replacement")
		}
		return err
	})
}
