// Package greeter is the gRPC sample's service, shared by its server and client: a unary
// call and a server-streaming one, described by hand (grpc.ServiceDesc) over protobuf's
// well-known wrapper messages, so the sample needs no protoc.
package greeter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Method names, as they go on the wire.
const (
	Service   = "flick.examples.Greeter"
	SayHello  = "/" + Service + "/SayHello"
	CountDown = "/" + Service + "/Count"
)

// Server implements the Greeter service.
type Server struct {
	// Instance names this process in answers, so clients see load balancing at work.
	Instance string
}

// SayHello greets: "hello, NAME (from INSTANCE)". A name "sleep:DURATION" sleeps that long
// first, honouring the call's deadline.
func (s *Server) SayHello(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	name := in.GetValue()
	var nap string
	if _, err := fmt.Sscanf(name, "sleep:%s", &nap); err == nil {
		d, err := time.ParseDuration(nap)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "sleep:%s: %v", nap, err)
		}
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	if name == "" {
		name = "world"
	}
	return wrapperspb.String(fmt.Sprintf("hello, %s (from %s)", name, s.Instance)), nil
}

// Count streams n, n-1, ... 1, one every 100 ms.
func (s *Server) Count(in *wrapperspb.Int64Value, stream grpc.ServerStream) error {
	for i := in.GetValue(); i > 0; i-- {
		if err := stream.SendMsg(wrapperspb.Int64(i)); err != nil {
			return err
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-stream.Context().Done():
			return status.FromContextError(stream.Context().Err()).Err()
		}
	}
	return nil
}

// Register adds the service to a gRPC server.
func Register(g *grpc.Server, s *Server) {
	g.RegisterService(&grpc.ServiceDesc{
		ServiceName: Service,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "SayHello",
			Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				in := new(wrapperspb.StringValue)
				if err := dec(in); err != nil {
					return nil, err
				}
				return srv.(*Server).SayHello(ctx, in)
			},
		}},
		Streams: []grpc.StreamDesc{{
			StreamName:    "Count",
			ServerStreams: true,
			Handler: func(srv any, stream grpc.ServerStream) error {
				in := new(wrapperspb.Int64Value)
				if err := stream.RecvMsg(in); err != nil {
					return err
				}
				return srv.(*Server).Count(in, stream)
			},
		}},
	}, s)
}

// Hello calls SayHello.
func Hello(ctx context.Context, conn grpc.ClientConnInterface, name string) (string, error) {
	out := new(wrapperspb.StringValue)
	if err := conn.Invoke(ctx, SayHello, wrapperspb.String(name), out); err != nil {
		return "", err
	}
	return out.GetValue(), nil
}

// Count calls Count and returns every number streamed, with the error that ended the
// stream (nil when it ended cleanly).
func Count(ctx context.Context, conn grpc.ClientConnInterface, n int64) ([]int64, error) {
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, CountDown)
	if err != nil {
		return nil, err
	}
	if err := stream.SendMsg(wrapperspb.Int64(n)); err != nil {
		return nil, err
	}
	if err := stream.CloseSend(); err != nil {
		return nil, err
	}
	var got []int64
	for {
		m := new(wrapperspb.Int64Value)
		if err := stream.RecvMsg(m); err != nil {
			if errors.Is(err, io.EOF) {
				return got, nil
			}
			return got, err
		}
		got = append(got, m.GetValue())
	}
}

// InstanceName is this process's name in answers: the instance id Flick gave it, or the
// revision and pid elsewhere (pids repeat across sandboxes, ids do not).
func InstanceName() string {
	if id := os.Getenv("FLICK_INSTANCE"); id != "" {
		return id
	}
	rev := os.Getenv("K_REVISION")
	if rev == "" {
		rev = "greeter"
	}
	return fmt.Sprintf("%s/%d", rev, os.Getpid())
}
