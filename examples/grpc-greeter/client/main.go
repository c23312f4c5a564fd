// Command client calls the gRPC sample through Flick's router: over h2c on the plain
// listener, or over TLS (HTTP/2) trusting Flick's local CA.
//
//	go run ./examples/grpc-greeter/client -addr 127.0.0.1:8080 -authority greeter.default.localhost
//	go run ./examples/grpc-greeter/client -addr 127.0.0.1:8443 -authority greeter.default.localhost -cacert <(flick cert ca)
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	greeter "github.com/flickdev/flick/examples/grpc-greeter"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "Flick's data plane: the plain listener (h2c) or, with -cacert, the HTTPS one")
	authority := flag.String("authority", "greeter.default.localhost", "the service's host: {name}.{namespace}.{domain}")
	cacert := flag.String("cacert", "", "PEM file of the CA to trust (flick cert ca): call over TLS")
	name := flag.String("name", "you", "who to greet")
	count := flag.Int64("count", 3, "numbers to stream back")
	timeout := flag.Duration("timeout", 30*time.Second, "deadline of each call")
	flag.Parse()

	creds := insecure.NewCredentials()
	if *cacert != "" {
		pem, err := os.ReadFile(*cacert)
		if err != nil {
			log.Fatal(err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			log.Fatalf("%s holds no certificate", *cacert)
		}
		creds = credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: *authority})
	}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(creds), grpc.WithAuthority(*authority))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	msg, err := greeter.Hello(ctx, conn, *name)
	if err != nil {
		log.Fatalf("SayHello: %v", err)
	}
	fmt.Println(msg)
	nums, err := greeter.Count(ctx, conn, *count)
	if err != nil {
		log.Fatalf("Count: %v", err)
	}
	fmt.Println("streamed:", nums)
}
