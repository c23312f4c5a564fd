// Command server is the gRPC sample: it serves the Greeter over h2c on $PORT, as a Flick
// (or Knative) Service whose port is named h2c.
package main

import (
	"log"
	"net"
	"os"

	"google.golang.org/grpc"

	greeter "github.com/flickdev/flick/examples/grpc-greeter"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		log.Fatal(err)
	}
	g := grpc.NewServer()
	greeter.Register(g, &greeter.Server{Instance: greeter.InstanceName()})
	log.Printf("greeter serving gRPC (h2c) on %s", ln.Addr())
	if err := g.Serve(ln); err != nil {
		log.Fatal(err)
	}
}
