package router

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/flickdev/flick/internal/runtime"
)

// The gRPC hop: a gRPC call to an h2c instance goes over grpc-go's own client, one
// connection per instance, with messages passed through as bytes (never decoded). grpc-go's
// transport writes the frames of many calls together, where net/http's HTTP/2 client flushes
// each stream on its own; that costs the router and the instance several times the CPU per
// call. Calls whose messages are compressed take the plain h2c hop, which passes them as
// they are.

// rawMessage is one gRPC message's bytes.
type rawMessage struct{ b []byte }

// rawCodec passes messages through without decoding them.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.(*rawMessage).b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	v.(*rawMessage).b = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// grpcConns keeps one client connection per instance, closed when the instance exits.
type grpcConns struct {
	m       sync.Map // instance id -> *grpc.ClientConn
	maxSize int
}

func (gc *grpcConns) of(inst *runtime.Instance) (*grpc.ClientConn, error) {
	if c, ok := gc.m.Load(inst.ID); ok {
		return c.(*grpc.ClientConn), nil
	}
	c, err := grpc.NewClient("passthrough:///"+inst.Addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", addr)
		}),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{}), grpc.MaxCallRecvMsgSize(gc.maxSize), grpc.MaxCallSendMsgSize(gc.maxSize)),
	)
	if err != nil {
		return nil, err
	}
	if prior, loaded := gc.m.LoadOrStore(inst.ID, c); loaded {
		c.Close()
		return prior.(*grpc.ClientConn), nil
	}
	go func() {
		<-inst.Done()
		gc.m.Delete(inst.ID)
		c.Close()
	}()
	return c, nil
}

// canUseGRPCHop: the call's messages are not compressed (the hop would have to decode them).
func canUseGRPCHop(r *http.Request) bool {
	enc := r.Header.Get("Grpc-Encoding")
	return enc == "" || enc == "identity"
}

// Headers the gRPC hop sets itself or that belong to one hop.
var grpcReserved = map[string]bool{
	"content-type": true, "te": true, "grpc-timeout": true, "grpc-encoding": true, "grpc-accept-encoding": true,
	"user-agent": true, "host": true, "connection": true, "keep-alive": true, "proxy-connection": true,
	"transfer-encoding": true, "upgrade": true, "content-length": true, "grpc-status": true, "grpc-message": true,
	"grpc-status-details-bin": true, ":authority": true,
}

// forwardGRPC makes the call on the instance through the gRPC hop and answers it. It
// returns the HTTP status written (200: gRPC answers carry their status in trailers), or
// an error when nothing could be sent to the instance at all.
func (rt *Router) forwardGRPC(w http.ResponseWriter, r *http.Request, inst *runtime.Instance, path string, deadline time.Time) (int, error) {
	conn, err := rt.grpc.of(inst)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()
	md := metadata.MD{}
	for k, vv := range r.Header {
		lk := strings.ToLower(k)
		if grpcReserved[lk] || strings.HasPrefix(lk, ":") {
			continue
		}
		for _, v := range vv {
			if strings.HasSuffix(lk, "-bin") {
				b, err := decodeBinHeader(v)
				if err != nil {
					continue
				}
				v = string(b)
			}
			md.Append(lk, v)
		}
	}
	xff, host, proto := forwardedHeaders(r)
	for k, v := range map[string]string{"x-forwarded-for": xff, "x-forwarded-host": host, "x-forwarded-proto": proto} {
		if v != "" {
			md.Set(k, v)
		}
	}
	opts := []grpc.CallOption{grpc.CallAuthority(r.Host)}
	if _, sub, ok := strings.Cut(r.Header.Get("Content-Type"), "+"); ok && sub != "" {
		opts = append(opts, grpc.CallContentSubtype(sub))
	}
	cs, err := conn.NewStream(metadata.NewOutgoingContext(ctx, md), &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, path, opts...)
	if err != nil {
		return writeGRPCStatus(w, status.Convert(err)), nil
	}
	sendErr := make(chan error, 1)
	go func() { sendErr <- sendMessages(cs, r.Body, rt.maxBody) }()

	hdr := w.Header()
	// The sender stops when the call ends: closing the body unblocks a read in progress
	// (a client still streaming to a call that already ended).
	stopSending := func() error {
		select {
		case err := <-sendErr:
			return err
		default:
		}
		if r.Body != nil {
			r.Body.Close()
		}
		<-sendErr // the failure to read a body closed here is no failure of the call
		return nil
	}
	respMD, err := cs.Header()
	if err != nil {
		cancel()
		stopSending()
		return writeGRPCStatus(w, status.Convert(err)), nil
	}
	hdr.Set("Content-Type", "application/grpc")
	copyMD(hdr, respMD, "")
	w.WriteHeader(http.StatusOK)
	flusher := http.NewResponseController(w)
	var prefix [5]byte
	var recvErr error
	for {
		var m rawMessage
		if recvErr = cs.RecvMsg(&m); recvErr != nil {
			break
		}
		binary.BigEndian.PutUint32(prefix[1:], uint32(len(m.b)))
		if _, err := w.Write(prefix[:]); err != nil {
			cancel()
			break
		}
		if _, err := w.Write(m.b); err != nil {
			cancel()
			break
		}
		flusher.Flush()
	}
	st := status.New(codes.OK, "")
	if !errors.Is(recvErr, io.EOF) {
		st = status.Convert(recvErr)
	}
	if err := stopSending(); err != nil && st.Code() == codes.OK {
		st = status.New(codes.Internal, err.Error())
	}
	copyMD(hdr, cs.Trailer(), http.TrailerPrefix)
	setStatusTrailers(hdr, http.TrailerPrefix, st)
	return http.StatusOK, nil
}

// sendMessages reads length-prefixed gRPC messages from the request body and sends them.
func sendMessages(cs grpc.ClientStream, body io.Reader, limit int64) error {
	if body == nil || body == http.NoBody {
		return cs.CloseSend()
	}
	br := bufio.NewReaderSize(body, 16<<10)
	var prefix [5]byte
	for {
		if _, err := io.ReadFull(br, prefix[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return cs.CloseSend()
			}
			return err
		}
		if prefix[0] != 0 {
			return fmt.Errorf("a compressed message without grpc-encoding")
		}
		n := binary.BigEndian.Uint32(prefix[1:])
		if int64(n) > limit {
			return fmt.Errorf("a message of %d bytes is over the limit of %d", n, limit)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			return err
		}
		if err := cs.SendMsg(&rawMessage{b: b}); err != nil {
			return nil // the call ended; RecvMsg says how
		}
	}
}

// copyMD writes gRPC metadata as HTTP headers (binary values in base64), under prefix.
func copyMD(h http.Header, md metadata.MD, prefix string) {
	for k, vv := range md {
		if grpcReserved[k] {
			continue
		}
		key := prefix + http.CanonicalHeaderKey(k)
		for _, v := range vv {
			if strings.HasSuffix(k, "-bin") {
				v = base64.RawStdEncoding.EncodeToString([]byte(v))
			}
			h[key] = append(h[key], v)
		}
	}
}

// setStatusTrailers writes a gRPC status: code, message and details.
func setStatusTrailers(h http.Header, prefix string, st *status.Status) {
	h[prefix+"Grpc-Status"] = []string{strconv.Itoa(int(st.Code()))}
	if msg := st.Message(); msg != "" {
		h[prefix+"Grpc-Message"] = []string{grpcEncodeMessage(msg)}
	}
	if len(st.Proto().GetDetails()) > 0 {
		if b, err := proto.Marshal(st.Proto()); err == nil {
			h[prefix+"Grpc-Status-Details-Bin"] = []string{base64.RawStdEncoding.EncodeToString(b)}
		}
	}
}

// writeGRPCStatus answers with a status alone (trailers-only).
func writeGRPCStatus(w http.ResponseWriter, st *status.Status) int {
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	setStatusTrailers(h, "", st)
	w.WriteHeader(http.StatusOK)
	return http.StatusOK
}

// decodeBinHeader decodes a -bin header, padded or not.
func decodeBinHeader(v string) ([]byte, error) {
	if len(v)%4 == 0 {
		return base64.StdEncoding.DecodeString(v)
	}
	return base64.RawStdEncoding.DecodeString(v)
}
