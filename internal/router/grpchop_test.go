package router

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flickdev/flick/internal/runtime"
)

// chat is a bidirectional test service: it echoes each message, sends back the caller's
// metadata as headers and trailers, and ends with the status the first message asks for.
func chat(_ any, stream grpc.ServerStream) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	stream.SetHeader(metadata.Pairs("x-seen", md.Get("x-ask")[0], "x-raw-bin", md.Get("x-raw-bin")[0]))
	stream.SetTrailer(metadata.Pairs("x-done", "yes"))
	for {
		in := new(wrapperspb.StringValue)
		if err := stream.RecvMsg(in); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if in.GetValue() == "fail" {
			st, _ := status.New(codes.FailedPrecondition, "asked to fail ✓").WithDetails(wrapperspb.String("why"))
			return st.Err()
		}
		if err := stream.SendMsg(wrapperspb.String("echo " + in.GetValue())); err != nil {
			return err
		}
	}
}

// TestGRPCHop calls a real gRPC server through the hop: messages both ways on one stream,
// metadata (binary too) and trailers through, a status with details intact.
func TestGRPCHop(t *testing.T) {
	backend := grpc.NewServer()
	backend.RegisterService(&grpc.ServiceDesc{ServiceName: "test.Chat", HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{StreamName: "Talk", Handler: chat, ServerStreams: true, ClientStreams: true}}}, struct{}{})
	bln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go backend.Serve(bln)
	defer backend.Stop()
	inst := runtime.NewInstance("chat-1", bln.Addr().String(), 0, time.Now())

	rt := &Router{maxBody: 1 << 20}
	rt.grpc.maxSize = 1 << 20
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	front := &http.Server{Protocols: &p, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := rt.forwardGRPC(w, r, inst, r.URL.Path, time.Now().Add(10*time.Second)); err != nil {
			t.Errorf("forwardGRPC: %v", err)
		}
	})}
	fln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go front.Serve(fln)
	defer front.Close()

	conn, err := grpc.NewClient(fln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-ask", "hi", "x-raw-bin", "\x00\xffbytes")
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	talk := func() grpc.ClientStream {
		cs, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/test.Chat/Talk")
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}

	cs := talk()
	for _, msg := range []string{"one", "two", "three"} {
		if err := cs.SendMsg(wrapperspb.String(msg)); err != nil {
			t.Fatal(err)
		}
		out := new(wrapperspb.StringValue)
		if err := cs.RecvMsg(out); err != nil || out.GetValue() != "echo "+msg {
			t.Fatalf("bidi %s: %q, %v", msg, out.GetValue(), err)
		}
	}
	cs.CloseSend()
	if err := cs.RecvMsg(new(wrapperspb.StringValue)); !errors.Is(err, io.EOF) {
		t.Fatalf("end of stream: %v", err)
	}
	hdr, _ := cs.Header()
	if got := hdr.Get("x-seen"); len(got) != 1 || got[0] != "hi" {
		t.Errorf("header x-seen %v", got)
	}
	if got := hdr.Get("x-raw-bin"); len(got) != 1 || got[0] != "\x00\xffbytes" {
		t.Errorf("binary metadata %q", got)
	}
	if got := cs.Trailer().Get("x-done"); len(got) != 1 || got[0] != "yes" {
		t.Errorf("trailer x-done %v", got)
	}

	cs = talk()
	cs.SendMsg(wrapperspb.String("fail"))
	cs.CloseSend()
	err = cs.RecvMsg(new(wrapperspb.StringValue))
	st := status.Convert(err)
	if st.Code() != codes.FailedPrecondition || st.Message() != "asked to fail ✓" || len(st.Details()) != 1 {
		t.Errorf("status through the hop: %v %q %v", st.Code(), st.Message(), st.Details())
	}
}
