package testapp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/TarsCloud/TarsGo/tars/protocol/codec"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/basef"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/requestf"
	"github.com/TarsCloud/TarsGo/tars/util/tools"
)

// Item and Order are the structs of TestApp.Order, a servant browsers call:
//
//	struct Item { 0 require string sku; 1 require int qty; };
//	struct Order { 0 require string id; 1 require vector<Item> items; 2 require int total; };
//	interface Order {
//	    int getOrder(string id, vector<Item> items, out Order order, out string caller);
//	    int secret();
//	};
//
// Only its JSON (version 5) branch is written here, as tars2go generates it.
type Item struct {
	Sku string `json:"sku"`
	Qty int32  `json:"qty"`
}

type Order struct {
	Id    string `json:"id"`
	Items []Item `json:"items"`
	Total int32  `json:"total"`
}

// OrderServantWithContext is TestApp.Order.
type OrderServantWithContext interface {
	GetOrder(tarsCtx context.Context, id string, items []Item, order *Order, caller *string) (int32, error)
	Secret(tarsCtx context.Context) (int32, error)
}

// OrderDispatcher is the dispatcher of TestApp.Order.
type OrderDispatcher struct{ proxy }

// Dispatch serves a JSON request for TestApp.Order.
func (obj *OrderDispatcher) Dispatch(tarsCtx context.Context, val interface{}, tarsReq *requestf.RequestPacket, tarsResp *requestf.ResponsePacket, withContext bool) error {
	imp, ok := val.(OrderServantWithContext)
	if !ok || !withContext {
		return fmt.Errorf("testapp: Order needs an OrderServantWithContext added with AddServantWithContext")
	}
	if tarsReq.IVersion != basef.JSONVERSION {
		return fmt.Errorf("decode reqpacket fail, error version: %d", tarsReq.IVersion)
	}
	var jsonData map[string]interface{}
	decoder := json.NewDecoder(bytes.NewReader(tools.Int8ToByte(tarsReq.SBuffer)))
	decoder.UseNumber()
	if err := decoder.Decode(&jsonData); err != nil {
		return fmt.Errorf("decode reqpacket failed, error: %+v", err)
	}
	param := func(name string, v any) error {
		jsonStr, _ := json.Marshal(jsonData[name])
		return json.Unmarshal(jsonStr, v)
	}
	rspJson := map[string]interface{}{}
	switch tarsReq.SFuncName {
	case "getOrder":
		var id string
		var items []Item
		var order Order
		var caller string
		if err := param("id", &id); err != nil {
			return err
		}
		if err := param("items", &items); err != nil {
			return err
		}
		funRet, err := imp.GetOrder(tarsCtx, id, items, &order, &caller)
		if err != nil {
			return err
		}
		rspJson["tars_ret"], rspJson["order"], rspJson["caller"] = funRet, order, caller
	case "secret":
		funRet, err := imp.Secret(tarsCtx)
		if err != nil {
			return err
		}
		rspJson["tars_ret"] = funRet
	default:
		return fmt.Errorf("func mismatch")
	}
	rspByte, err := json.Marshal(rspJson)
	if err != nil {
		return err
	}
	buf := codec.NewBuffer()
	if err := buf.WriteSliceUint8(rspByte); err != nil {
		return err
	}
	*tarsResp = requestf.ResponsePacket{IVersion: tarsReq.IVersion, CPacketType: 0, IRequestId: tarsReq.IRequestId,
		IMessageType: 0, IRet: 0, SBuffer: tools.ByteToInt8(buf.ToBytes()), SResultDesc: "",
		Context: map[string]string{}, Status: map[string]string{}}
	return nil
}

// PushToConn calls int pushToConn(string connId, string message, out int delivered).
func (obj *Push) PushToConn(connId, message string, delivered *int32, opts ...map[string]string) (ret int32, err error) {
	w, err := newArgWriter(obj.packetVersion())
	if err != nil {
		return ret, err
	}
	if err = w.put(1, writeString(connId), "connId"); err != nil {
		return ret, err
	}
	if err = w.put(2, writeString(message), "message"); err != nil {
		return ret, err
	}
	if err = w.put(3, writeInt32(*delivered), "delivered"); err != nil {
		return ret, err
	}
	r, err := obj.invoke(context.Background(), "pushToConn", w, opts...)
	if err != nil {
		return ret, err
	}
	if err = r.get(0, "tars_ret", readInt32(&ret)); err != nil {
		return ret, err
	}
	err = r.get(3, "delivered", readInt32(delivered))
	return ret, err
}
