package testapp

import (
	"context"
	"fmt"

	"github.com/TarsCloud/TarsGo/tars/protocol/res/requestf"
)

// HelloServantWithContext is TestApp.Hello (tars/hello.tars).
type HelloServantWithContext interface {
	Hello(tarsCtx context.Context, no int32, name string) (ret string, err error)
}

// Hello is the client proxy and the dispatcher of TestApp.Hello.
type Hello struct{ proxy }

// Hello calls string hello(int no, string name).
func (obj *Hello) Hello(no int32, name string, opts ...map[string]string) (string, error) {
	return obj.HelloWithContext(context.Background(), no, name, opts...)
}

// HelloWithContext calls string hello(int no, string name).
func (obj *Hello) HelloWithContext(tarsCtx context.Context, no int32, name string, opts ...map[string]string) (ret string, err error) {
	w, err := newArgWriter(obj.packetVersion())
	if err != nil {
		return ret, err
	}
	if err = w.put(1, writeInt32(no), "no"); err != nil {
		return ret, err
	}
	if err = w.put(2, writeString(name), "name"); err != nil {
		return ret, err
	}
	r, err := obj.invoke(tarsCtx, "hello", w, opts...)
	if err != nil {
		return ret, err
	}
	err = r.get(0, "tars_ret", readString(&ret))
	return ret, err
}

// Dispatch serves a request for TestApp.Hello; val implements
// HelloServantWithContext.
func (obj *Hello) Dispatch(tarsCtx context.Context, val interface{}, tarsReq *requestf.RequestPacket, tarsResp *requestf.ResponsePacket, withContext bool) error {
	imp, ok := val.(HelloServantWithContext)
	if !ok || !withContext {
		return fmt.Errorf("testapp: Hello needs a HelloServantWithContext added with AddServantWithContext")
	}
	switch tarsReq.SFuncName {
	case "hello":
		return serve(tarsCtx, tarsReq, tarsResp, func(in *argReader, out *argWriter) error {
			var no int32
			var name string
			if err := in.get(1, "no", readInt32(&no)); err != nil {
				return err
			}
			if err := in.get(2, "name", readString(&name)); err != nil {
				return err
			}
			ret, err := imp.Hello(tarsCtx, no, name)
			if err != nil {
				return err
			}
			return out.put(0, writeString(ret), "", "tars_ret")
		})
	}
	return fmt.Errorf("func mismatch")
}
