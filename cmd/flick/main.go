// Command flick is Flick's one binary: the embedded platform (flick server) and its CLI.
package main

import (
	"context"
	"os"

	"github.com/flickdev/flick/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:]))
}
