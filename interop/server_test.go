package interop

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	tarsgo "github.com/TarsCloud/TarsGo/tars"
	"github.com/TarsCloud/TarsGo/tars/protocol"
	"github.com/TarsCloud/TarsGo/tars/protocol/codec"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/basef"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/requestf"
	"github.com/TarsCloud/TarsGo/tars/util/tools"

	"github.com/tarsws/websocketserver/interop/testapp"
	"github.com/tarsws/websocketserver/tars"
)

// startOurServer serves TestApp.Hello and TestApp.Push with package tars's
// Server on 127.0.0.1:0, in this process. Push delivers to len(roomNum)
// connections, so results are checkable.
func startOurServer(t *testing.T) string {
	t.Helper()
	s := &tars.Server{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s.Handle("Test.Our.HelloObj", "hello", func(ctx context.Context, cur *tars.Current, in *tars.Args, out *tars.Results) (int32, error) {
		no, err := in.Int32(1, "no")
		if err != nil {
			return 0, err
		}
		name, err := in.String(2, "name")
		if err != nil {
			return 0, err
		}
		out.PutString(0, "", fmt.Sprintf("hello %s from us #%d v%d", name, no, cur.Version))
		return tars.Success, nil
	})
	s.Handle("Test.Our.PushObj", "pushByRoom", func(ctx context.Context, cur *tars.Current, in *tars.Args, out *tars.Results) (int32, error) {
		room, err := in.String(1, "roomNum")
		if err != nil {
			return 0, err
		}
		if _, err := in.String(2, "message"); err != nil {
			return 0, err
		}
		out.PutInt32(0, "", 0)
		out.PutInt32(3, "delivered", int32(len(room)))
		return tars.Success, nil
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln, tars.ListenOptions{}) }()
	t.Cleanup(func() {
		s.Shutdown(context.Background())
		<-done
	})
	return ln.Addr().String()
}

// TestOurServerWithTarsGoClients: package tars's Server, in process, called
// by TarsGo's client in TARS and TUP from several goroutines, each with its
// own communicator (so its own connections).
func TestOurServerWithTarsGoClients(t *testing.T) {
	addr := startOurServer(t)
	for name, v := range versions {
		t.Run(name, func(t *testing.T) {
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			for i := range 8 {
				wg.Go(func() {
					comm := tarsgo.NewCommunicator()
					h := new(testapp.Hello)
					comm.StringToProxy("Test.Our.HelloObj@"+endpointOf(addr), h)
					h.TarsSetVersion(v)
					push := new(testapp.Push)
					comm.StringToProxy("Test.Our.PushObj@"+endpointOf(addr), push)
					push.TarsSetVersion(v)

					want := fmt.Sprintf("hello n%d from us #%d v%d", i, i, v)
					if got, err := h.Hello(int32(i), fmt.Sprintf("n%d", i)); err != nil || got != want {
						errs <- fmt.Errorf("hello(%d) = %q, %v; want %q", i, got, err, want)
					}
					room := fmt.Sprintf("%0*d", i+1, 0)
					var delivered int32
					if ret, err := push.PushByRoom(room, "m", &delivered); err != nil || ret != 0 || delivered != int32(i+1) {
						errs <- fmt.Errorf("pushByRoom(%q) = %d, delivered %d, %v", room, ret, delivered, err)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// TestOurServerPipelined: many TarsGo-encoded requests written at once on
// one connection; every reply comes back, matched by request id, each
// decoded by TarsGo.
func TestOurServerPipelined(t *testing.T) {
	addr := startOurServer(t)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const n = 50
	var out []byte
	for i := 1; i <= n; i++ {
		args := codec.NewBuffer()
		must(t, args.WriteInt32(int32(i), 1))
		must(t, args.WriteString(fmt.Sprintf("p%d", i), 2))
		frame, err := (&protocol.TarsProtocol{}).RequestPack(&requestf.RequestPacket{
			IVersion: basef.TARSVERSION, IRequestId: int32(i), SServantName: "Test.Our.HelloObj",
			SFuncName: "hello", SBuffer: tools.ByteToInt8(args.ToBytes()), ITimeout: 3000,
			Context: map[string]string{}, Status: map[string]string{},
		})
		must(t, err)
		out = append(out, frame...)
	}
	if _, err := conn.Write(out); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	seen := map[int32]bool{}
	for range n {
		var prefix [4]byte
		if _, err := io.ReadFull(r, prefix[:]); err != nil {
			t.Fatalf("after %d replies: %v", len(seen), err)
		}
		frame := make([]byte, binary.BigEndian.Uint32(prefix[:]))
		copy(frame, prefix[:])
		if _, err := io.ReadFull(r, frame[4:]); err != nil {
			t.Fatal(err)
		}
		rsp, err := (&protocol.TarsProtocol{}).ResponseUnpack(frame)
		must(t, err)
		var got string
		must(t, codec.NewReader(tools.Int8ToByte(rsp.SBuffer)).ReadString(&got, 0, true))
		id := rsp.IRequestId
		if want := fmt.Sprintf("hello p%d from us #%d v1", id, id); rsp.IRet != 0 || got != want || seen[id] {
			t.Errorf("reply id %d: ret %d %q (seen before: %v), want %q", id, rsp.IRet, got, seen[id], want)
		}
		seen[id] = true
	}
}

// TestOurServerErrorsToTarsGo: the return codes TarsGo's client gets.
func TestOurServerErrorsToTarsGo(t *testing.T) {
	addr := startOurServer(t)
	cases := []struct {
		servant, fn string
		buf         []byte
		code        int32
	}{
		{"Test.Our.HelloObj", "nope", nil, basef.TARSSERVERNOFUNCERR},
		{"Test.Our.NoObj", "hello", nil, basef.TARSSERVERNOSERVANTERR},
		{"Test.Our.HelloObj", "hello", tars.AppendString(nil, 1, "not an int"), basef.TARSSERVERDECODEERR},
	}
	for _, c := range cases {
		_, err := rawCall(addr, c.servant, c.fn, c.buf)
		var te *tarsgo.Error
		if !errors.As(err, &te) || te.Code != c.code {
			t.Errorf("%s.%s: got %v, want return code %d", c.servant, c.fn, err, c.code)
		}
	}
	if _, err := rawCall(addr, "Test.Our.HelloObj", "tars_ping", nil); err != nil {
		t.Errorf("tars_ping: %v", err)
	}
	// One-way: no reply comes, and the connection still serves the next call.
	var s rawServant
	tarsgo.NewCommunicator().StringToProxy("Test.Our.HelloObj@"+endpointOf(addr), &s)
	var rsp requestf.ResponsePacket
	args := tars.AppendString(tars.AppendInt(nil, 1, 1), 2, "x")
	if err := s.s.TarsInvoke(context.Background(), 1, "hello", args, nil, nil, &rsp); err != nil {
		t.Errorf("one-way hello: %v", err)
	}
	if err := s.s.TarsInvoke(context.Background(), 0, "hello", args, nil, nil, &rsp); err != nil || rsp.IRet != 0 {
		t.Errorf("hello after one-way: %+v, %v", rsp, err)
	}
}
