// Command httpecho is an HTTP/1.1 service for the end-to-end tests of what passes through
// the router: a websocket echo (/ws), a full-duplex line echo (/duplex), and a body with
// trailers (/trailers).
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"

	"golang.org/x/net/websocket"
)

func main() {
	mux := http.NewServeMux()
	mux.Handle("/ws", websocket.Handler(func(c *websocket.Conn) {
		for {
			var msg string
			if err := websocket.Message.Receive(c, &msg); err != nil {
				return
			}
			if err := websocket.Message.Send(c, "echo: "+msg); err != nil {
				return
			}
		}
	}))
	// Each line of the body comes straight back, before the next is read: only a proxy
	// that streams both ways lets a client see an answer to its first line before it sends
	// the second.
	mux.HandleFunc("/duplex", func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.EnableFullDuplex(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
		rc.Flush()
		sc := bufio.NewScanner(r.Body)
		for sc.Scan() {
			fmt.Fprintf(w, "got %s\n", sc.Text())
			rc.Flush()
		}
	})
	mux.HandleFunc("/trailers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		h := sha256.New()
		for i := range 3 {
			line := fmt.Sprintf("part %d\n", i)
			io.WriteString(w, line)
			h.Write([]byte(line))
			http.NewResponseController(w).Flush()
		}
		w.Header().Set("X-Checksum", hex.EncodeToString(h.Sum(nil)))
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), mux))
}
