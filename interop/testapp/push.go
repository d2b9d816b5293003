package testapp

import (
	"context"
	"fmt"

	"github.com/TarsCloud/TarsGo/tars/protocol/res/requestf"
)

// PushServantWithContext is TestApp.Push (tars/Push.tars).
type PushServantWithContext interface {
	PushByRoom(tarsCtx context.Context, roomNum string, message string, delivered *int32) (ret int32, err error)
	PushAll(tarsCtx context.Context, message string, delivered *int32) (ret int32, err error)
}

// Push is the client proxy and the dispatcher of TestApp.Push.
type Push struct{ proxy }

// PushByRoom calls int pushByRoom(string roomNum, string message, out int delivered).
func (obj *Push) PushByRoom(roomNum, message string, delivered *int32, opts ...map[string]string) (int32, error) {
	return obj.PushByRoomWithContext(context.Background(), roomNum, message, delivered, opts...)
}

// PushByRoomWithContext calls pushByRoom.
func (obj *Push) PushByRoomWithContext(tarsCtx context.Context, roomNum, message string, delivered *int32, opts ...map[string]string) (ret int32, err error) {
	w, err := newArgWriter(obj.packetVersion())
	if err != nil {
		return ret, err
	}
	if err = w.put(1, writeString(roomNum), "roomNum"); err != nil {
		return ret, err
	}
	if err = w.put(2, writeString(message), "message"); err != nil {
		return ret, err
	}
	// Like tars2go, send the current value of the out parameter.
	if err = w.put(3, writeInt32(*delivered), "delivered"); err != nil {
		return ret, err
	}
	r, err := obj.invoke(tarsCtx, "pushByRoom", w, opts...)
	if err != nil {
		return ret, err
	}
	if err = r.get(0, "tars_ret", readInt32(&ret)); err != nil {
		return ret, err
	}
	err = r.get(3, "delivered", readInt32(delivered))
	return ret, err
}

// PushAll calls int pushAll(string message, out int delivered).
func (obj *Push) PushAll(message string, delivered *int32, opts ...map[string]string) (int32, error) {
	return obj.PushAllWithContext(context.Background(), message, delivered, opts...)
}

// PushAllWithContext calls pushAll.
func (obj *Push) PushAllWithContext(tarsCtx context.Context, message string, delivered *int32, opts ...map[string]string) (ret int32, err error) {
	w, err := newArgWriter(obj.packetVersion())
	if err != nil {
		return ret, err
	}
	if err = w.put(1, writeString(message), "message"); err != nil {
		return ret, err
	}
	if err = w.put(2, writeInt32(*delivered), "delivered"); err != nil {
		return ret, err
	}
	r, err := obj.invoke(tarsCtx, "pushAll", w, opts...)
	if err != nil {
		return ret, err
	}
	if err = r.get(0, "tars_ret", readInt32(&ret)); err != nil {
		return ret, err
	}
	err = r.get(2, "delivered", readInt32(delivered))
	return ret, err
}

// Dispatch serves a request for TestApp.Push; val implements
// PushServantWithContext.
func (obj *Push) Dispatch(tarsCtx context.Context, val interface{}, tarsReq *requestf.RequestPacket, tarsResp *requestf.ResponsePacket, withContext bool) error {
	imp, ok := val.(PushServantWithContext)
	if !ok || !withContext {
		return fmt.Errorf("testapp: Push needs a PushServantWithContext added with AddServantWithContext")
	}
	switch tarsReq.SFuncName {
	case "pushByRoom":
		return serve(tarsCtx, tarsReq, tarsResp, func(in *argReader, out *argWriter) error {
			var room, msg string
			var delivered int32
			if err := in.get(1, "roomNum", readString(&room)); err != nil {
				return err
			}
			if err := in.get(2, "message", readString(&msg)); err != nil {
				return err
			}
			ret, err := imp.PushByRoom(tarsCtx, room, msg, &delivered)
			if err != nil {
				return err
			}
			if err := out.put(0, writeInt32(ret), "", "tars_ret"); err != nil {
				return err
			}
			return out.put(3, writeInt32(delivered), "delivered")
		})
	case "pushAll":
		return serve(tarsCtx, tarsReq, tarsResp, func(in *argReader, out *argWriter) error {
			var msg string
			var delivered int32
			if err := in.get(1, "message", readString(&msg)); err != nil {
				return err
			}
			ret, err := imp.PushAll(tarsCtx, msg, &delivered)
			if err != nil {
				return err
			}
			if err := out.put(0, writeInt32(ret), "", "tars_ret"); err != nil {
				return err
			}
			return out.put(2, writeInt32(delivered), "delivered")
		})
	}
	return fmt.Errorf("func mismatch")
}
