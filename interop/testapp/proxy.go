package testapp

import (
	"context"
	"fmt"
	"strconv"

	"github.com/TarsCloud/TarsGo/tars/model"
	"github.com/TarsCloud/TarsGo/tars/protocol"
	"github.com/TarsCloud/TarsGo/tars/protocol/codec"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/basef"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/requestf"
	"github.com/TarsCloud/TarsGo/tars/util/current"
	"github.com/TarsCloud/TarsGo/tars/util/endpoint"
	"github.com/TarsCloud/TarsGo/tars/util/tools"
)

// proxy is what every client stub shares: the TarsGo servant proxy and the
// packet version to call with.
type proxy struct {
	servant model.Servant
	version int16
}

// SetServant is called by Communicator.StringToProxy.
func (p *proxy) SetServant(s model.Servant) { p.servant = s }

// TarsSetTimeout sets the call timeout in milliseconds.
func (p *proxy) TarsSetTimeout(ms int) { p.servant.TarsSetTimeout(ms) }

// TarsSetProtocol replaces the packet protocol of the servant proxy.
func (p *proxy) TarsSetProtocol(proto model.Protocol) { p.servant.TarsSetProtocol(proto) }

// Endpoints lists the active endpoints of the servant proxy.
func (p *proxy) Endpoints() []*endpoint.Endpoint { return p.servant.Endpoints() }

// TarsSetVersion makes later calls use packet version v (basef.TARSVERSION
// or basef.TUPVERSION). TUP switches the servant proxy to TupProtocol.
func (p *proxy) TarsSetVersion(v int16) {
	p.version = v
	if sv, ok := p.servant.(interface{ TarsSetVersion(int16) }); ok {
		sv.TarsSetVersion(v)
	}
	if v == basef.TUPVERSION {
		p.servant.TarsSetProtocol(&TupProtocol{})
	}
}

func (p *proxy) packetVersion() int16 {
	if p.version == 0 {
		return basef.TARSVERSION
	}
	return p.version
}

// invoke sends fn with the arguments in w and returns a reader over the
// reply's results. opts are the optional context and status maps, as in
// tars2go proxies; they are filled with the reply's maps.
func (p *proxy) invoke(ctx context.Context, fn string, w *argWriter, opts ...map[string]string) (*argReader, error) {
	buf, err := w.bytes()
	if err != nil {
		return nil, err
	}
	var ctxMap, statusMap map[string]string
	if len(opts) > 0 {
		ctxMap = opts[0]
	}
	if len(opts) > 1 {
		statusMap = opts[1]
	}
	var rsp requestf.ResponsePacket
	if err := p.servant.TarsInvoke(ctx, 0, fn, buf, statusMap, ctxMap, &rsp); err != nil {
		return nil, err
	}
	copyInto(ctxMap, rsp.Context)
	copyInto(statusMap, rsp.Status)
	return newArgReader(w.version, tools.Int8ToByte(rsp.SBuffer))
}

func copyInto(dst, src map[string]string) {
	if dst == nil {
		return
	}
	clear(dst)
	for k, v := range src {
		dst[k] = v
	}
}

// TupProtocol is TarsGo's TarsProtocol that also reads TUP replies. TUP
// servers (TarsCpp, and TarsGo's own server) answer in the RequestPacket
// layout with the result code in status["STATUS_RESULT_CODE"]; TarsGo's
// client only reads the ResponsePacket layout.
type TupProtocol struct{ protocol.TarsProtocol }

// ResponseUnpack decodes one framed reply of either layout, by its version.
func (p *TupProtocol) ResponseUnpack(pkg []byte) (*requestf.ResponsePacket, error) {
	if len(pkg) < 4 {
		return nil, fmt.Errorf("testapp: reply of %d bytes has no length prefix", len(pkg))
	}
	var version int16
	if err := codec.NewReader(pkg[4:]).ReadInt16(&version, 1, true); err != nil {
		return nil, fmt.Errorf("testapp: reply version: %w", err)
	}
	if version != basef.TUPVERSION {
		return p.TarsProtocol.ResponseUnpack(pkg)
	}
	var req requestf.RequestPacket
	if err := req.ReadFrom(codec.NewReader(pkg[4:])); err != nil {
		return nil, fmt.Errorf("testapp: TUP reply: %w", err)
	}
	rsp := &requestf.ResponsePacket{
		IVersion:     req.IVersion,
		CPacketType:  req.CPacketType,
		IRequestId:   req.IRequestId,
		IMessageType: req.IMessageType,
		SBuffer:      req.SBuffer,
		Status:       req.Status,
		Context:      req.Context,
		SResultDesc:  req.Status["STATUS_RESULT_DESC"],
	}
	if code, ok := req.Status["STATUS_RESULT_CODE"]; ok {
		n, err := strconv.ParseInt(code, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("testapp: TUP reply STATUS_RESULT_CODE %q: %w", code, err)
		}
		rsp.IRet = int32(n)
	}
	return rsp, nil
}

// serve decodes a request's arguments, runs handle and fills the reply the
// way tars2go's Dispatch does.
func serve(ctx context.Context, req *requestf.RequestPacket, rsp *requestf.ResponsePacket, handle func(in *argReader, out *argWriter) error) error {
	in, err := newArgReader(req.IVersion, tools.Int8ToByte(req.SBuffer))
	if err != nil {
		return err
	}
	out, err := newArgWriter(req.IVersion)
	if err != nil {
		return err
	}
	if err := handle(in, out); err != nil {
		return err
	}
	buf, err := out.bytes()
	if err != nil {
		return err
	}
	status, _ := current.GetResponseStatus(ctx)
	rctx, _ := current.GetResponseContext(ctx)
	*rsp = requestf.ResponsePacket{
		IVersion:    req.IVersion,
		IRequestId:  req.IRequestId,
		SBuffer:     tools.ByteToInt8(buf),
		Status:      status,
		Context:     rctx,
		CPacketType: 0,
	}
	return nil
}
